// probabilistic-admitter: sheds sheddable requests (priority < 0) with a
// probability that rises steeply with the pool's saturation,
// p = min(saturation^power · k, 1), where saturation is the mean over the
// candidate endpoints of max(queue / queueDepthThreshold,
// kv / kvCacheUtilThreshold) and an endpoint without metrics counts 1.
// Requests with priority ≥ 0, and any request when there are no candidates,
// are always admitted.
import type { Endpoint } from '../../pool/endpoint.ts';
import { definePlugin } from '../../scheduling/registry.ts';
import { endpointLoad } from '../../scheduling/saturation/utilization-detector.ts';
import type { Admitter } from '../../scheduling/framework.ts';

export const PROBABILISTIC_ADMITTER = 'probabilistic-admitter';

export interface ProbabilisticAdmitterParams {
  queueDepthThreshold: number;
  kvCacheUtilThreshold: number;
  power: number;
  k: number;
}

export class ProbabilisticAdmitter implements Admitter {
  readonly type = PROBABILISTIC_ADMITTER;
  readonly name: string;
  readonly params: ProbabilisticAdmitterParams;
  readonly #random: () => number;

  constructor(name: string, params: ProbabilisticAdmitterParams, random: () => number) {
    this.name = name;
    this.params = params;
    this.#random = random;
  }

  saturation(candidates: readonly Endpoint[]): number {
    const { queueDepthThreshold: q, kvCacheUtilThreshold: kv } = this.params;
    let total = 0;
    for (const ep of candidates) total += endpointLoad(ep.metrics, q, kv);
    return total / candidates.length;
  }

  /** The shedding probability at `saturation`. */
  probability(saturation: number): number {
    return Math.min(saturation ** this.params.power * this.params.k, 1);
  }

  admit(priority: number, candidates: readonly Endpoint[]): string | undefined {
    if (priority >= 0 || candidates.length === 0) return undefined;
    const saturation = this.saturation(candidates);
    const p = this.probability(saturation);
    if (this.#random() < p) return `probabilistic-admitter: rejected, saturation=${saturation.toFixed(3)} prob=${p.toFixed(2)}`;
    return undefined;
  }
}

export const probabilisticAdmitter = definePlugin({
  type: PROBABILISTIC_ADMITTER,
  description: 'Admission: sheds sheddable requests (priority < 0) with probability min(saturation^power · k, 1), saturation being the mean of max(queue / queueDepthThreshold, kv / kvCacheUtilThreshold) over the candidates; priority ≥ 0 is always admitted.',
  params: {
    queueDepthThreshold: { type: 'number', default: 5, integer: true, exclusiveMin: 0, doc: 'Waiting requests at which an endpoint counts fully loaded.' },
    kvCacheUtilThreshold: { type: 'number', default: 0.8, exclusiveMin: 0, doc: 'KV-cache use (0..1) at which an endpoint counts fully loaded.' },
    power: { type: 'number', default: 5, exclusiveMin: 0, doc: 'Steepness of the shedding curve.' },
    k: { type: 'number', default: 300, exclusiveMin: 0, doc: 'Scale: every sheddable request is shed from saturation (1/k)^(1/power).' },
  },
  create: (name, p, ctx) => new ProbabilisticAdmitter(name, { queueDepthThreshold: p.queueDepthThreshold, kvCacheUtilThreshold: p.kvCacheUtilThreshold, power: p.power, k: p.k }, ctx.random),
});
