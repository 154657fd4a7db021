// passthrough-parser: claims no path, so it takes every request no earlier
// parser claimed, and reads no body: such requests are routed on headers and
// endpoint load alone (e.g. non-LLM payloads such as KServe v2 `inputs`).
import { definePlugin } from '../registry.ts';
import { RequestParser } from './request-parser.ts';

export const passthroughParser = definePlugin({
  type: 'passthrough-parser',
  description: 'Fallback parser: takes requests no other configured parser claims and forwards the body unread (routing on headers and load only).',
  params: {},
  create: (name) => new RequestParser('passthrough-parser', name, []),
});
