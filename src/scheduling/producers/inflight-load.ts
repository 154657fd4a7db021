// inflight-load-producer: llm-d configs declare it next to token-load-scorer
// and active-request-scorer. llm-epp always counts in-flight requests and
// prompt tokens per endpoint (request-control/director.ts), so the
// declaration is all there is to it.
import { definePlugin } from '../registry.ts';

export const inflightLoadProducer = definePlugin({
  type: 'inflight-load-producer',
  description: 'Accepted for llm-d configs: llm-epp always tracks in-flight requests and prompt tokens per endpoint, which active-request-scorer and token-load-scorer read.',
  params: {},
  create: (name) => ({ type: 'inflight-load-producer', name }),
});
