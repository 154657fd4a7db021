// openai-parser (GAIE / llm-d request handler): llm-epp's one request parser
// (src/openai/request.ts); configs may declare it, nothing changes.
import type { Plugin } from '../framework.ts';
import { definePlugin } from '../registry.ts';

export class OpenAIParser implements Plugin {
  readonly type = 'openai-parser';
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

export const openaiParser = definePlugin({
  type: 'openai-parser',
  description: 'The OpenAI request parser (completions, chat completions, responses, embeddings); llm-epp\'s only parser, used with or without this declaration.',
  params: {},
  create: (name) => new OpenAIParser(name),
});
