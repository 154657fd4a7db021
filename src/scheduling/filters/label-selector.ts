// label-selector-filter (old name by-label-selector): a Kubernetes label
// selector (matchLabels and matchExpressions) over endpoint labels.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: readonly string[];
}

export function parseSelector(matchLabels: Record<string, unknown> | undefined, matchExpressions: unknown, where: string): Requirement[] {
  const reqs: Requirement[] = [];
  for (const [k, v] of Object.entries(matchLabels ?? {})) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new ConfigError(`${where}: matchLabels.${k} must be a string`);
    reqs.push({ key: k, operator: 'In', values: [String(v)] });
  }
  if (matchExpressions !== undefined) {
    if (!Array.isArray(matchExpressions)) throw new ConfigError(`${where}: matchExpressions must be a list`);
    matchExpressions.forEach((raw, i) => {
      const w = `${where}: matchExpressions[${i}]`;
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${w}: must be a mapping`);
      const e = raw as Record<string, unknown>;
      for (const k of Object.keys(e)) if (!['key', 'operator', 'values'].includes(k)) throw new ConfigError(`${w}: unknown field "${k}"`);
      if (typeof e.key !== 'string' || e.key === '') throw new ConfigError(`${w}: "key" is required`);
      if (e.operator !== 'In' && e.operator !== 'NotIn' && e.operator !== 'Exists' && e.operator !== 'DoesNotExist') {
        throw new ConfigError(`${w}: "operator" must be In, NotIn, Exists or DoesNotExist`);
      }
      const values = e.values ?? [];
      if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) throw new ConfigError(`${w}: "values" must be a list of strings`);
      if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) throw new ConfigError(`${w}: ${e.operator} needs values`);
      if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) throw new ConfigError(`${w}: ${e.operator} takes no values`);
      reqs.push({ key: e.key, operator: e.operator, values });
    });
  }
  return reqs;
}

export function matches(reqs: readonly Requirement[], labels: Readonly<Record<string, string>>): boolean {
  for (const r of reqs) {
    const v = labels[r.key];
    switch (r.operator) {
      case 'In':
        if (v === undefined || !r.values.includes(v)) return false;
        break;
      case 'NotIn':
        if (v !== undefined && r.values.includes(v)) return false;
        break;
      case 'Exists':
        if (v === undefined) return false;
        break;
      case 'DoesNotExist':
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}

class LabelSelectorFilter implements Filter {
  readonly type = 'label-selector-filter';
  readonly name: string;
  readonly #reqs: Requirement[];

  constructor(name: string, reqs: Requirement[]) {
    this.name = name;
    this.#reqs = reqs;
  }

  filter(_state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    return endpoints.filter((e) => matches(this.#reqs, e.labels));
  }
}

export const labelSelectorFilter = definePlugin({
  type: 'label-selector-filter',
  deprecatedAliases: ['by-label-selector'],
  description: 'Keeps endpoints whose labels match a Kubernetes label selector (matchLabels; matchExpressions with In, NotIn, Exists, DoesNotExist).',
  params: {
    matchLabels: { type: 'object', doc: 'Label → required value.' },
    matchExpressions: { type: 'list', doc: 'List of {key, operator, values}.' },
  },
  create(name, params) {
    const where = `plugin "${name}" (label-selector-filter)`;
    const reqs = parseSelector(params.matchLabels, params.matchExpressions, where);
    if (reqs.length === 0) throw new ConfigError(`${where}: give matchLabels or matchExpressions`);
    return new LabelSelectorFilter(name, reqs);
  },
});
