// endpoint-attribute-filter (llm-d Router, alpha): keeps the endpoints whose
// numeric attribute passes a threshold (e.g. GPUUtilization <= 0.9 from
// dcgm-extractor). onMissing decides endpoints without the attribute;
// fallbackOnEmpty keeps every candidate when all would be dropped.
import type { Endpoint } from '../../pool/endpoint.ts';
import { attributeRef, mapping, numberField, strictFields, type AttributeRef } from '../attribute-ref.ts';
import type { CycleState, Filter, Plugin } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

const OPERATORS: Readonly<Record<string, (v: number, t: number) => boolean>> = {
  LessThan: (v, t) => v < t,
  LessThanOrEqual: (v, t) => v <= t,
  GreaterThan: (v, t) => v > t,
  GreaterThanOrEqual: (v, t) => v >= t,
  Equal: (v, t) => v === t,
  NotEqual: (v, t) => v !== t,
};

export class EndpointAttributeFilter implements Filter {
  readonly type = 'endpoint-attribute-filter';
  readonly name: string;
  readonly #attr: AttributeRef;
  readonly #pass: (v: number) => boolean;
  readonly #keepMissing: boolean;
  readonly #fallbackOnEmpty: boolean;

  constructor(name: string, attr: AttributeRef, pass: (v: number) => boolean, keepMissing: boolean, fallbackOnEmpty: boolean) {
    this.name = name;
    this.#attr = attr;
    this.#pass = pass;
    this.#keepMissing = keepMissing;
    this.#fallbackOnEmpty = fallbackOnEmpty;
  }

  checkConfig(plugins: ReadonlyMap<string, Plugin>): void {
    this.#attr.check(plugins, `plugin "${this.name}" (endpoint-attribute-filter)`);
  }

  filter(_state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    const kept = endpoints.filter((e) => {
      const v = this.#attr.read(e);
      return v === undefined ? this.#keepMissing : this.#pass(v);
    });
    return kept.length === 0 && this.#fallbackOnEmpty ? endpoints : kept;
  }
}

function threshold(raw: unknown, where: string): (v: number) => boolean {
  const alg = mapping(raw, `${where}: parameter "algorithm"`);
  strictFields(alg, ['type', 'threshold'], `${where}: algorithm`);
  if (alg.type !== 'threshold') throw new ConfigError(`${where}: algorithm.type must be "threshold" (the only algorithm llm-d Router v0.10 has), got ${JSON.stringify(alg.type)}`);
  const t = mapping(alg.threshold, `${where}: algorithm.threshold`);
  strictFields(t, ['operator', 'value'], `${where}: algorithm.threshold`);
  const op = typeof t.operator === 'string' ? OPERATORS[t.operator] : undefined;
  if (!op) throw new ConfigError(`${where}: algorithm.threshold.operator must be one of ${Object.keys(OPERATORS).join(', ')}, got ${JSON.stringify(t.operator)}`);
  if (t.value === undefined) throw new ConfigError(`${where}: algorithm.threshold.value is required`);
  const value = numberField(t.value, `${where}: algorithm.threshold.value`);
  return (v) => op(v, value);
}

export const endpointAttributeFilter = definePlugin({
  type: 'endpoint-attribute-filter',
  stability: 'alpha',
  description: 'Keeps endpoints whose numeric attribute passes a threshold (e.g. GPUUtilization from dcgm-extractor, or a core-metrics-extractor customMetrics key).',
  params: {
    attribute: { type: 'string', doc: 'Attribute to read, e.g. GPUUtilization (required).' },
    producer: { type: 'string', doc: 'Plugin type publishing it: dcgm-extractor, core-metrics-extractor (the default: its customMetrics), or "" for any.' },
    onMissing: { type: 'string', enum: ['Pass', 'Fail'], default: 'Pass', doc: 'Keep (Pass) or drop (Fail) endpoints without the attribute.' },
    fallbackOnEmpty: { type: 'boolean', default: false, doc: 'Keep every candidate when all would be dropped.' },
    algorithm: { type: 'object', doc: '{type: threshold, threshold: {operator: LessThan|LessThanOrEqual|GreaterThan|GreaterThanOrEqual|Equal|NotEqual, value}} (required).' },
  },
  create: (name, p) => {
    const where = `plugin "${name}" (endpoint-attribute-filter)`;
    const attr = attributeRef(p.attribute, p.producer, where, 'attribute');
    if (p.algorithm === undefined) throw new ConfigError(`${where}: parameter "algorithm" is required`);
    return new EndpointAttributeFilter(name, attr, threshold(p.algorithm, where), p.onMissing === 'Pass', p.fallbackOnEmpty);
  },
});
