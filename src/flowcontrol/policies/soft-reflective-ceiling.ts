// soft-reflective-ceiling-policy: the highest band's ceiling is 1; band i of
// N gets the reflective ceiling 1 - i·s/(N-1) for saturation s. Below it a
// band is open; at s ≥ 1 every lower band is closed; in between it opens on
// one dispatch opportunity in round(s / (1 - s)), all such bands on the same
// opportunities (one shared tick), so the dispatch rate falls off smoothly.
import { definePlugin } from '../../scheduling/registry.ts';
import type { UsageLimitPolicy } from '../types.ts';

export const SOFT_REFLECTIVE_CEILING_POLICY = 'soft-reflective-ceiling-policy';

export class SoftReflectiveCeilingPolicy implements UsageLimitPolicy {
  readonly type = SOFT_REFLECTIVE_CEILING_POLICY;
  readonly flowControl = 'usage-limit' as const;
  readonly name: string;
  /** Dispatch opportunities seen in the alternating regime (wrapped to stay a small integer). */
  #tick = 0;

  constructor(name: string = SOFT_REFLECTIVE_CEILING_POLICY) {
    this.name = name;
  }

  computeLimit(saturation: number, priorities: readonly number[], ceilings: number[]): void {
    const n = priorities.length;
    if (n === 0) return;
    ceilings[0] = 1;
    if (n === 1) return;
    // Ceilings fall with rank, so some band alternates iff the lowest one does (its ceiling is 1 - s).
    let open = false;
    if (saturation >= 1 - saturation && saturation < 1) {
      const period = Math.max(1, Math.round(saturation / (1 - saturation + 1e-9)));
      this.#tick = (this.#tick + 1) % 0x3fffffff;
      open = this.#tick % period === 0;
    }
    for (let i = 1; i < n; i++) {
      const reflective = 1 - (i * saturation) / (n - 1);
      if (saturation < reflective) ceilings[i] = 1;
      else if (saturation >= 1) ceilings[i] = 0;
      else ceilings[i] = open ? 1 : 0;
    }
  }
}

export const softReflectiveCeilingPolicy = definePlugin({
  type: SOFT_REFLECTIVE_CEILING_POLICY,
  description: 'Flow control usage limit: lower bands are gated progressively as saturation rises (reflective ceiling 1 - i·s/(N-1)), alternating open on 1 in round(s/(1-s)) dispatch opportunities once reached. Takes no parameters.',
  stability: 'alpha',
  params: {},
  create: (name) => new SoftReflectiveCeilingPolicy(name),
});
