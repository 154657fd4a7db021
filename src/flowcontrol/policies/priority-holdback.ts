// priority-holdback-policy: lower bands stop dispatching at lower saturation,
// keeping headroom for higher ones. Ceilings run from maxCeiling (highest
// priority) down to minCeiling (lowest), spaced by rank (equal steps) or by
// value (proportional to the priority numbers). A single band is never held
// back (its ceiling is maxCeiling).
import { ConfigError } from '../../scheduling/params.ts';
import { definePlugin } from '../../scheduling/registry.ts';
import type { UsageLimitPolicy } from '../types.ts';

export const PRIORITY_HOLDBACK_POLICY = 'priority-holdback-policy';

export type HoldbackDomain = 'rank' | 'value';

export class PriorityHoldbackPolicy implements UsageLimitPolicy {
  readonly type = PRIORITY_HOLDBACK_POLICY;
  readonly flowControl = 'usage-limit' as const;
  readonly name: string;
  readonly minCeiling: number;
  readonly maxCeiling: number;
  readonly domain: HoldbackDomain;

  constructor(name: string, minCeiling: number, maxCeiling = 1, domain: HoldbackDomain = 'rank') {
    this.name = name;
    this.minCeiling = minCeiling;
    this.maxCeiling = maxCeiling;
    this.domain = domain;
  }

  computeLimit(_saturation: number, priorities: readonly number[], ceilings: number[]): void {
    const n = priorities.length;
    if (n === 0) return;
    const max = this.maxCeiling;
    const spread = max - this.minCeiling;
    if (n === 1) {
      ceilings[0] = max;
      return;
    }
    if (this.domain === 'rank') {
      for (let i = 0; i < n; i++) ceilings[i] = max - (i * spread) / (n - 1);
      return;
    }
    const pMax = priorities[0];
    const pMin = priorities[n - 1];
    const range = pMax - pMin;
    for (let i = 0; i < n; i++) ceilings[i] = range === 0 ? max : this.minCeiling + ((priorities[i] - pMin) / range) * spread;
  }
}

export const priorityHoldbackPolicy = definePlugin({
  type: PRIORITY_HOLDBACK_POLICY,
  description: 'Flow control usage limit: lower-priority bands stop dispatching at lower saturation (ceilings from maxCeiling for the highest band down to minCeiling for the lowest), so they wait in queue while higher bands keep headroom.',
  stability: 'alpha',
  params: {
    shape: { type: 'string', default: 'linear', enum: ['linear'], doc: 'Interpolation curve between the ceilings (only "linear").' },
    domain: { type: 'string', default: 'rank', enum: ['rank', 'value'], doc: '"rank": equal steps by rank; "value": proportional to the priority numbers.' },
    minCeiling: { type: 'number', doc: 'Required. Ceiling of the lowest band, in [0, 1).' },
    maxCeiling: { type: 'number', default: 1, doc: 'Ceiling of the highest band, in (0, 1].' },
  },
  create: (name, p) => {
    const where = `plugin "${name}" (${PRIORITY_HOLDBACK_POLICY})`;
    if (p.minCeiling === undefined) throw new ConfigError(`${where}: parameter "minCeiling" is required (the ceiling of the lowest-priority band, in [0, 1))`);
    const problems: string[] = [];
    if (p.minCeiling < 0 || p.minCeiling >= 1) problems.push(`"minCeiling" must be in [0, 1), got ${p.minCeiling}`);
    if (p.maxCeiling <= 0 || p.maxCeiling > 1) problems.push(`"maxCeiling" must be in (0, 1], got ${p.maxCeiling}`);
    if (p.minCeiling >= p.maxCeiling) problems.push(`"minCeiling" (${p.minCeiling}) must be less than "maxCeiling" (${p.maxCeiling})`);
    if (problems.length) throw new ConfigError(`${where}: ${problems.join('; ')}`);
    return new PriorityHoldbackPolicy(name, p.minCeiling, p.maxCeiling, p.domain as HoldbackDomain);
  },
});
