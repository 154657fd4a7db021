// load-aware-scorer (llm-d): an empty queue scores 0.5; otherwise
// 0.5 × (1 − min(q, threshold) / threshold), reaching 0 at the threshold.
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class LoadAwareScorer implements Scorer {
  readonly type = 'load-aware-scorer';
  readonly category = 'distribution';
  readonly name: string;
  readonly #threshold: number;

  constructor(name: string, threshold: number) {
    this.name = name;
    this.#threshold = threshold;
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    const t = this.#threshold;
    for (let i = 0; i < endpoints.length; i++) {
      const q = endpoints[i].metrics?.waitingQueueSize ?? 0;
      out[i] = q <= 0 ? 0.5 : 0.5 * (1 - Math.min(q, t) / t);
    }
    return out;
  }
}

export const loadAwareScorer = definePlugin({
  type: 'load-aware-scorer',
  description: 'q = 0 ⇒ 0.5; otherwise 0.5 × (1 − min(q, threshold) / threshold), q = waiting queue.',
  params: { threshold: { type: 'number', exclusiveMin: 0, default: 128, doc: 'Queue length at which the score reaches 0.' } },
  create: (name, p) => new LoadAwareScorer(name, p.threshold),
});
