// concurrency-detector: saturation = requests (or prompt tokens) in flight
// over all endpoints ÷ the endpoints' total capacity. In-flight counts are the
// director's per-endpoint accounting (taken at pick, released when the
// response ends). Used as a filter it drops endpoints at capacity
// (× (1 + headroom)), failing open.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter, SaturationDetector } from '../framework.ts';
import { definePlugin } from '../registry.ts';

export interface ConcurrencyParams {
  concurrencyMode: 'requests' | 'tokens';
  maxConcurrency: number;
  maxTokenConcurrency: number;
  headroom: number;
}

export class ConcurrencyDetector implements SaturationDetector, Filter {
  readonly type = 'concurrency-detector';
  readonly name: string;
  readonly params: ConcurrencyParams;

  constructor(name: string, params: ConcurrencyParams) {
    this.name = name;
    this.params = params;
  }

  #load(ep: Endpoint): number {
    return this.params.concurrencyMode === 'tokens' ? ep.inFlightTokens : ep.inFlight;
  }

  #capacity(): number {
    return this.params.concurrencyMode === 'tokens' ? this.params.maxTokenConcurrency : this.params.maxConcurrency;
  }

  saturation(endpoints: readonly Endpoint[]): number {
    if (endpoints.length === 0) return 1;
    let load = 0;
    for (const ep of endpoints) load += this.#load(ep);
    return load / (this.#capacity() * endpoints.length);
  }

  filter(_state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    const max = this.#capacity() * (1 + this.params.headroom);
    const kept = endpoints.filter((ep) => this.#load(ep) < max);
    return kept.length === 0 ? endpoints : kept;
  }
}

export const concurrencyDetector = definePlugin({
  type: 'concurrency-detector',
  description: 'Saturation = in-flight requests (or prompt tokens) over all endpoints ÷ total capacity; at ≥ 1 sheddable requests (priority < 0) get 429. Also usable as a filter dropping endpoints at capacity (fails open).',
  params: {
    concurrencyMode: { type: 'string', default: 'requests', enum: ['requests', 'tokens'], doc: 'Count requests or prompt tokens in flight.' },
    maxConcurrency: { type: 'number', default: 100, exclusiveMin: 0, doc: 'Requests in flight per endpoint at saturation (mode requests).' },
    maxTokenConcurrency: { type: 'number', default: 1_000_000, exclusiveMin: 0, doc: 'Prompt tokens in flight per endpoint at saturation (mode tokens).' },
    headroom: { type: 'number', default: 0, min: 0, doc: 'Filter only: capacity is multiplied by 1 + headroom.' },
  },
  create: (name, p) =>
    new ConcurrencyDetector(name, { concurrencyMode: p.concurrencyMode as 'requests' | 'tokens', maxConcurrency: p.maxConcurrency, maxTokenConcurrency: p.maxTokenConcurrency, headroom: p.headroom }),
});
