// static-usage-limit-policy (llm-d's default usage limit): one ceiling for
// every band. With the default threshold 1.0 a band dispatches while the
// pool's saturation is below 1 — the plain saturation gate.
import { definePlugin } from '../../scheduling/registry.ts';
import type { UsageLimitPolicy } from '../types.ts';

export const STATIC_USAGE_LIMIT_POLICY = 'static-usage-limit-policy';

export class StaticUsageLimitPolicy implements UsageLimitPolicy {
  readonly type = STATIC_USAGE_LIMIT_POLICY;
  readonly flowControl = 'usage-limit' as const;
  readonly name: string;
  readonly threshold: number;

  constructor(name: string = STATIC_USAGE_LIMIT_POLICY, threshold = 1) {
    this.name = name;
    this.threshold = threshold;
  }

  computeLimit(_saturation: number, priorities: readonly number[], ceilings: number[]): void {
    for (let i = 0; i < priorities.length; i++) ceilings[i] = this.threshold;
  }
}

export const staticUsageLimitPolicy = definePlugin({
  type: STATIC_USAGE_LIMIT_POLICY,
  description: 'Flow control usage limit: every band dispatches while pool saturation < threshold. The default (threshold 1.0: the saturation gate alone).',
  params: {
    threshold: { type: 'number', default: 1, min: 0, doc: 'Saturation below which every band dispatches.' },
  },
  create: (name, p) => new StaticUsageLimitPolicy(name, p.threshold),
});
