// token-load-scorer: 1 − min(1, in-flight prompt tokens / queueThresholdTokens),
// with in-flight tokens tracked by llm-epp (prompt bytes ÷ 4 per request).
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class TokenLoadScorer implements Scorer {
  readonly type = 'token-load-scorer';
  readonly category = 'distribution';
  readonly name: string;
  readonly #threshold: number;

  constructor(name: string, threshold: number) {
    this.name = name;
    this.#threshold = threshold;
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    for (let i = 0; i < endpoints.length; i++) out[i] = 1 - Math.min(1, endpoints[i].inFlightTokens / this.#threshold);
    return out;
  }
}

export const tokenLoadScorer = definePlugin({
  type: 'token-load-scorer',
  description: '1 − min(1, inFlightTokens / queueThresholdTokens).',
  params: {
    queueThresholdTokens: { type: 'number', exclusiveMin: 0, default: 4_194_304, doc: 'In-flight tokens at which the score reaches 0 (≈ 128 requests × 32K tokens).' },
    inFlightLoadProducerName: { type: 'string', doc: 'The inflight-load-producer instance (llm-epp keeps one in-flight count per endpoint).' },
  },
  create: (name, p) => new TokenLoadScorer(name, p.queueThresholdTokens),
});
