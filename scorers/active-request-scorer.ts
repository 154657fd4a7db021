// active-request-scorer (llm-d): requests this EPP has in flight per endpoint.
// At most idleThreshold ⇒ 1.0; busier endpoints are spread over
// [0, maxBusyScore] by how far they are from the busiest, which scores 0.
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class ActiveRequestScorer implements Scorer {
  readonly type = 'active-request-scorer';
  readonly category = 'distribution';
  readonly name: string;
  readonly #idle: number;
  readonly #maxBusy: number;

  constructor(name: string, idle: number, maxBusy: number) {
    this.name = name;
    this.#idle = idle;
    this.#maxBusy = maxBusy;
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    let max = 0;
    for (const e of endpoints) if (e.inFlight > max) max = e.inFlight;
    for (let i = 0; i < endpoints.length; i++) {
      const c = endpoints[i].inFlight;
      // As llm-d: busy endpoints get maxBusyScore × (max − n) / max.
      out[i] = c <= this.#idle ? 1 : (this.#maxBusy * (max - c)) / max;
    }
    return out;
  }
}

export const activeRequestScorer = definePlugin({
  type: 'active-request-scorer',
  description: 'In-flight requests per endpoint (tracked by llm-epp): ≤ idleThreshold ⇒ 1.0; busier ones maxBusyScore × (max − n) / max, the busiest 0.',
  params: {
    idleThreshold: { type: 'number', integer: true, min: 0, default: 0, doc: 'In-flight requests that still count as idle.' },
    maxBusyScore: { type: 'number', min: 0, max: 1, default: 1, doc: 'Score ceiling for busy endpoints.' },
    requestTimeout: { type: 'string', doc: 'Deprecated in llm-d and ignored: requests are released when their stream ends.', deprecated: 'ignored; in-flight requests are released when their stream ends' },
    inFlightLoadProducerName: { type: 'string', doc: 'The inflight-load-producer instance (llm-epp keeps one in-flight count per endpoint).' },
  },
  create: (name, p) => new ActiveRequestScorer(name, p.idleThreshold, p.maxBusyScore),
});
