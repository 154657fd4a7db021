// global-strict-fairness-policy (llm-d's default fairness): no fairness. The
// band behaves as one queue: the flow whose head request the band's ordering
// policy ranks first is served.
import { definePlugin } from '../../scheduling/registry.ts';
import type { BandView, FairnessPolicy, FlowQueueView } from '../types.ts';

export const GLOBAL_STRICT_FAIRNESS_POLICY = 'global-strict-fairness-policy';

export class GlobalStrictFairnessPolicy implements FairnessPolicy {
  readonly type = GLOBAL_STRICT_FAIRNESS_POLICY;
  readonly flowControl = 'fairness' as const;
  readonly name: string;

  constructor(name: string = GLOBAL_STRICT_FAIRNESS_POLICY) {
    this.name = name;
  }

  newState(): unknown {
    return undefined;
  }

  pick(band: BandView): FlowQueueView | undefined {
    let best: FlowQueueView | undefined;
    let bestHead;
    for (const flow of band.activeFlows) {
      const head = flow.peek();
      if (head === undefined) continue;
      if (bestHead === undefined || band.ordering.less(head, bestHead)) {
        best = flow;
        bestHead = head;
      }
    }
    return best;
  }
}

export const globalStrictFairnessPolicy = definePlugin({
  type: GLOBAL_STRICT_FAIRNESS_POLICY,
  description: 'Flow control fairness: none; the band is one queue in its ordering policy\'s order across all flows. The default fairness policy.',
  params: {},
  create: (name) => new GlobalStrictFairnessPolicy(name),
});
