// endpoint-attribute-scorer (llm-d Router, alpha): scores endpoints by one
// numeric attribute (e.g. GPUUtilization from dcgm-extractor), linearly
// between a range — the candidates' own min and max (adaptiveRange, the
// default) or a fixed one (fixedRange, values clamped) — lower or higher
// being better. An endpoint without the attribute scores 0 (and takes no
// part in the adaptive range); equal values all score 1.
import type { Endpoint } from '../src/pool/endpoint.ts';
import { attributeRef, mapping, numberField, strictFields, type AttributeRef } from '../src/scheduling/attribute-ref.ts';
import type { CycleState, Plugin, Scorer } from '../src/scheduling/framework.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

interface Algorithm {
  readonly lowerIsBetter: boolean;
  /** Undefined: adaptive. */
  readonly fixed: { readonly min: number; readonly max: number } | undefined;
}

class EndpointAttributeScorer implements Scorer {
  readonly type = 'endpoint-attribute-scorer';
  readonly category = 'distribution';
  readonly name: string;
  readonly #attr: AttributeRef;
  readonly #alg: Algorithm;

  constructor(name: string, attr: AttributeRef, alg: Algorithm) {
    this.name = name;
    this.#attr = attr;
    this.#alg = alg;
  }

  checkConfig(plugins: ReadonlyMap<string, Plugin>): void {
    this.#attr.check(plugins, `plugin "${this.name}" (endpoint-attribute-scorer)`);
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const n = endpoints.length;
    const out = new Float64Array(n);
    const values = new Float64Array(n);
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = this.#attr.read(endpoints[i]);
      values[i] = v ?? NaN;
      if (v !== undefined) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
    if (this.#alg.fixed) ({ min, max } = this.#alg.fixed);
    const span = max - min;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v !== v) continue; // missing: 0
      if (!(span > 0)) {
        out[i] = 1;
        continue;
      }
      const x = Math.min(1, Math.max(0, (v - min) / span));
      out[i] = this.#alg.lowerIsBetter ? 1 - x : x;
    }
    return out;
  }
}

function algorithm(raw: unknown, where: string): Algorithm {
  const alg = mapping(raw, `${where}: parameter "algorithm"`);
  strictFields(alg, ['type', 'normalization'], `${where}: algorithm`);
  if (alg.type !== 'linear_lower_is_better' && alg.type !== 'linear_higher_is_better') {
    throw new ConfigError(`${where}: algorithm.type must be linear_lower_is_better or linear_higher_is_better, got ${JSON.stringify(alg.type)}`);
  }
  let fixed: Algorithm['fixed'];
  if (alg.normalization !== undefined && alg.normalization !== null) {
    const norm = mapping(alg.normalization, `${where}: algorithm.normalization`);
    strictFields(norm, ['adaptiveRange', 'fixedRange'], `${where}: algorithm.normalization`);
    if (norm.adaptiveRange !== undefined && norm.fixedRange !== undefined) throw new ConfigError(`${where}: algorithm.normalization: give adaptiveRange or fixedRange, not both`);
    if (norm.fixedRange !== undefined) {
      const r = mapping(norm.fixedRange, `${where}: algorithm.normalization.fixedRange`);
      strictFields(r, ['min', 'max'], `${where}: algorithm.normalization.fixedRange`);
      const min = numberField(r.min ?? 0, `${where}: fixedRange.min`);
      const max = numberField(r.max, `${where}: fixedRange.max`);
      if (!(min < max)) throw new ConfigError(`${where}: fixedRange.min (${min}) must be less than max (${max})`);
      fixed = { min, max };
    } else if (norm.adaptiveRange !== undefined && norm.adaptiveRange !== null) {
      strictFields(mapping(norm.adaptiveRange, `${where}: algorithm.normalization.adaptiveRange`), [], `${where}: algorithm.normalization.adaptiveRange`);
    }
  }
  return { lowerIsBetter: alg.type === 'linear_lower_is_better', fixed };
}

export const endpointAttributeScorer = definePlugin({
  type: 'endpoint-attribute-scorer',
  stability: 'alpha',
  description: 'Scores endpoints linearly by a numeric attribute (e.g. GPUUtilization from dcgm-extractor), over the candidates\' range or a fixed one; missing attribute: 0.',
  params: {
    attributeKey: { type: 'string', doc: 'Attribute to read, e.g. GPUUtilization (required).' },
    producer: { type: 'string', doc: 'Plugin type publishing it: dcgm-extractor, core-metrics-extractor (the default: its customMetrics), or "" for any.' },
    algorithm: { type: 'object', doc: '{type: linear_lower_is_better|linear_higher_is_better, normalization: {adaptiveRange: {}} (default) or {fixedRange: {min, max}}} (required).' },
  },
  create: (name, p) => {
    const where = `plugin "${name}" (endpoint-attribute-scorer)`;
    const attr = attributeRef(p.attributeKey, p.producer, where, 'attributeKey');
    if (p.algorithm === undefined) throw new ConfigError(`${where}: parameter "algorithm" is required`);
    return new EndpointAttributeScorer(name, attr, algorithm(p.algorithm, where));
  },
});
