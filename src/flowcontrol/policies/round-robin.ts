// round-robin-fairness-policy: the flows of a band take turns, in fairness-id
// order, each turn one dispatch; flows with nothing queued are skipped. A
// flow with a thousand queued requests cannot starve one with a single
// request: that one waits at most one turn of every other flow.
import { definePlugin } from '../../scheduling/registry.ts';
import type { BandView, FairnessPolicy, FlowQueueView } from '../types.ts';

export const ROUND_ROBIN_FAIRNESS_POLICY = 'round-robin-fairness-policy';

/** Per-band cursor: the fairness id served last. */
interface Cursor {
  last: string | undefined;
}

export class RoundRobinFairnessPolicy implements FairnessPolicy {
  readonly type = ROUND_ROBIN_FAIRNESS_POLICY;
  readonly flowControl = 'fairness' as const;
  readonly name: string;

  constructor(name: string = ROUND_ROBIN_FAIRNESS_POLICY) {
    this.name = name;
  }

  newState(): unknown {
    return { last: undefined } satisfies Cursor;
  }

  pick(band: BandView): FlowQueueView | undefined {
    const cursor = band.fairnessState as Cursor;
    const flows = band.activeFlows;
    const n = flows.length;
    if (n === 0) {
      cursor.last = undefined;
      return undefined;
    }
    // The first flow after the last one served (flows are sorted by id), wrapping around.
    let start = 0;
    const last = cursor.last;
    if (last !== undefined) {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (flows[mid].fairnessId <= last) lo = mid + 1;
        else hi = mid;
      }
      start = lo === n ? 0 : lo;
    }
    for (let i = 0; i < n; i++) {
      const flow = flows[(start + i) % n];
      if (flow.length > 0) {
        cursor.last = flow.fairnessId;
        return flow;
      }
    }
    cursor.last = undefined;
    return undefined;
  }
}

export const roundRobinFairnessPolicy = definePlugin({
  type: ROUND_ROBIN_FAIRNESS_POLICY,
  description: 'Flow control fairness: the flows (fairness ids) of a band take turns, one dispatch each, in id order, skipping empty ones; no flow can starve another.',
  params: {},
  create: (name) => new RoundRobinFairnessPolicy(name),
});
