// anthropic-parser: the Anthropic Messages API (/v1/messages and
// /v1/messages/count_tokens): model, then tools, system and the turns as the
// routing text, so requests sharing a conversation prefix share prefix blocks.
import { definePlugin } from '../registry.ts';
import { RequestParser } from './request-parser.ts';

export const anthropicParser = definePlugin({
  type: 'anthropic-parser',
  description: 'Reads Anthropic Messages bodies (/v1/messages, /v1/messages/count_tokens): model, tools, system and messages.',
  params: {},
  create: (name) => new RequestParser('anthropic-parser', name, ['messages']),
});
