// openai-parser: OpenAI completions, chat completions (and their /render
// forms), responses and embeddings. Paths no parser claims are read as
// completions when this parser is configured, as the GAIE v1.5 EPP read them.
import { definePlugin } from '../registry.ts';
import { RequestParser } from './request-parser.ts';

export const openaiParser = definePlugin({
  type: 'openai-parser',
  description: 'Reads OpenAI API bodies: /v1/completions, /v1/chat/completions (and their /render forms), /v1/responses, /v1/embeddings (model, prompt or messages, stream options, cache_salt).',
  params: {},
  create: (name) => new RequestParser('openai-parser', name, ['completions', 'chat', 'responses', 'embeddings']),
});
