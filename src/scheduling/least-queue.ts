// Built-in pick used until a scheduling configuration is given: the shortest
// waiting queue wins, ties broken at random; the runners-up are the fallbacks.
import type { Endpoint } from '../pool/endpoint.ts';
import type { Scheduler, SchedulingRequest, SchedulingResult } from './types.ts';

function queueOf(ep: Endpoint): number {
  return ep.metrics?.waitingQueueSize ?? Number.POSITIVE_INFINITY;
}

export class LeastQueueScheduler implements Scheduler {
  readonly name = 'least-queue';
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  schedule(_request: SchedulingRequest, candidates: readonly Endpoint[], maxEndpoints: number): SchedulingResult {
    const n = candidates.length;
    const k = Math.min(maxEndpoints, n);
    // Random tie-break key per candidate, then a partial selection of the k
    // best: O(n·k) with k = 1 + fallbacks, cheaper than sorting all n.
    const tie = new Float64Array(n);
    for (let i = 0; i < n; i++) tie[i] = this.#random();
    const taken = new Uint8Array(n);
    const out: Endpoint[] = [];
    for (let r = 0; r < k; r++) {
      let best = -1;
      for (let i = 0; i < n; i++) {
        if (taken[i]) continue;
        if (best < 0) {
          best = i;
          continue;
        }
        const qi = queueOf(candidates[i]);
        const qb = queueOf(candidates[best]);
        if (qi < qb || (qi === qb && tie[i] < tie[best])) best = i;
      }
      taken[best] = 1;
      out.push(candidates[best]);
    }
    return { endpoints: out };
  }
}
