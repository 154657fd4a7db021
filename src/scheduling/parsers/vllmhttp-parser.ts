// vllmhttp-parser: vLLM's /inference/v1/generate, whose prompt arrives
// pre-tokenized in token_ids (the model may be omitted); the token ids are the
// routing text.
import { definePlugin } from '../registry.ts';
import { RequestParser } from './request-parser.ts';

export const vllmhttpParser = definePlugin({
  type: 'vllmhttp-parser',
  description: 'Reads vLLM /inference/v1/generate bodies: token_ids (pre-tokenized prompt) and an optional model.',
  params: {},
  create: (name) => new RequestParser('vllmhttp-parser', name, ['generate']),
});
