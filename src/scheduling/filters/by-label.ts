// by-label (deprecated in llm-d, kept for old configs): keep endpoints whose
// `label` has one of `validValues`, optionally also those without the label.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

class ByLabelFilter implements Filter {
  readonly type = 'by-label';
  readonly name: string;
  readonly #label: string;
  readonly #values: ReadonlySet<string>;
  readonly #allowsNoLabel: boolean;

  constructor(name: string, label: string, values: readonly string[], allowsNoLabel: boolean) {
    this.name = name;
    this.#label = label;
    this.#values = new Set(values);
    this.#allowsNoLabel = allowsNoLabel;
  }

  filter(_state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    return endpoints.filter((e) => {
      const v = e.labels[this.#label];
      return v === undefined ? this.#allowsNoLabel : this.#values.has(v);
    });
  }
}

export const byLabelFilter = definePlugin({
  type: 'by-label',
  deprecated: 'use label-selector-filter',
  description: 'Deprecated: keeps endpoints whose `label` has one of `validValues` (and unlabelled ones if `allowsNoLabel`). Prefer label-selector-filter.',
  params: {
    label: { type: 'string', doc: 'Label key (required).' },
    validValues: { type: 'string[]', default: [], doc: 'Accepted values.' },
    allowsNoLabel: { type: 'boolean', default: false, doc: 'Also keep endpoints without the label.' },
  },
  create(name, p) {
    if (!p.label) throw new ConfigError(`plugin "${name}" (by-label): parameter "label" is required`);
    if (p.validValues.length === 0 && !p.allowsNoLabel) throw new ConfigError(`plugin "${name}" (by-label): give validValues or allowsNoLabel: true`);
    return new ByLabelFilter(name, p.label, p.validValues, p.allowsNoLabel);
  },
});
