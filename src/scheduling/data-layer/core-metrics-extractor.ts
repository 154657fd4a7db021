// core-metrics-extractor (GAIE / llm-d data layer): which metric names carry
// each engine's queue, running requests, KV use, LoRA and cache info. The app
// hands the resolver to the collector.
import { EngineResolver, engineFromConfig, type EngineConfigEntry, type EngineMapping } from '../../metrics/engines.ts';
import type { Plugin } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

export class CoreMetricsExtractor implements Plugin {
  readonly type = 'core-metrics-extractor';
  readonly name: string;
  readonly engines: EngineResolver;

  constructor(name: string, engines: EngineResolver) {
    this.name = name;
    this.engines = engines;
  }
}

export function isCoreMetricsExtractor(p: Plugin): p is CoreMetricsExtractor {
  return p.type === 'core-metrics-extractor';
}

const SPEC_FIELDS = ['name', 'queuedRequestsSpec', 'runningRequestsSpec', 'kvUsageSpec', 'loraSpec', 'cacheInfoSpec'] as const;
const FIELDS: readonly string[] = [...SPEC_FIELDS, 'customMetrics'];

/** customMetrics: [{attributeKey, metricSpec}], as llm-d Router reads them. */
function customMetrics(raw: unknown, w: string): { attributeKey: string; metricSpec: string }[] | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) throw new ConfigError(`${w}: "customMetrics" must be a list of {attributeKey, metricSpec}`);
  const keys = new Set<string>();
  return raw.map((c, i) => {
    const cw = `${w}: customMetrics[${i}]`;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new ConfigError(`${cw}: must be a mapping {attributeKey, metricSpec}`);
    for (const k of Object.keys(c)) if (k !== 'attributeKey' && k !== 'metricSpec') throw new ConfigError(`${cw}: unknown field "${k}" (allowed: attributeKey, metricSpec)`);
    const { attributeKey, metricSpec } = c as Record<string, unknown>;
    if (typeof attributeKey !== 'string' || attributeKey === '') throw new ConfigError(`${cw}: "attributeKey" is required`);
    if (typeof metricSpec !== 'string' || metricSpec === '') throw new ConfigError(`${cw}: "metricSpec" is required`);
    if (keys.has(attributeKey)) throw new ConfigError(`${cw}: attributeKey "${attributeKey}" is given twice`);
    keys.add(attributeKey);
    return { attributeKey, metricSpec };
  });
}

export const coreMetricsExtractor = definePlugin({
  type: 'core-metrics-extractor',
  description:
    'Maps each engine\'s metric names to queue, running, KV use, LoRA and cache info; the pod label engineLabelKey picks the engine (vllm, sglang, trtllm-serve, triton-tensorrt-llm, tgi, or an engineConfigs entry), unknown values fall back to defaultEngine.',
  params: {
    engineLabelKey: { type: 'string', doc: 'Pod label naming the engine (default: llm-d.ai/engine-type, then GAIE\'s inference.networking.k8s.io/engine-type).' },
    defaultEngine: { type: 'string', default: 'vllm', doc: 'Engine for pods without the label or with an unknown value.' },
    engineConfigs: {
      type: 'list',
      default: [],
      doc: 'Custom or overridden engines: {name, queuedRequestsSpec, runningRequestsSpec, kvUsageSpec, loraSpec, cacheInfoSpec, customMetrics}, each spec a selector `family{label=value}`; "" disables KV/LoRA/cache info; omitted fields keep the built-in engine of that name. customMetrics: [{attributeKey, metricSpec}] reads a scalar series into an endpoint attribute for endpoint-attribute-filter / -scorer.',
    },
  },
  create: (name, p) => {
    const where = `plugin "${name}" (core-metrics-extractor)`;
    const engines: EngineMapping[] = [];
    p.engineConfigs.forEach((raw, i) => {
      const w = `${where}: engineConfigs[${i}]`;
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${w}: must be a mapping`);
      const e = raw as Record<string, unknown>;
      for (const k of Object.keys(e)) if (!FIELDS.includes(k)) throw new ConfigError(`${w}: unknown field "${k}" (allowed: ${FIELDS.join(', ')})`);
      for (const k of SPEC_FIELDS) if (e[k] !== undefined && typeof e[k] !== 'string') throw new ConfigError(`${w}: "${k}" must be a string`);
      if (typeof e.name !== 'string' || e.name === '') throw new ConfigError(`${w}: "name" is required`);
      const custom = customMetrics(e.customMetrics, w);
      try {
        engines.push(engineFromConfig({ ...(e as unknown as EngineConfigEntry), customMetrics: custom }));
      } catch (err) {
        throw new ConfigError(`${w}: ${(err as Error).message}`);
      }
    });
    try {
      return new CoreMetricsExtractor(name, new EngineResolver({ labelKeys: p.engineLabelKey ? [p.engineLabelKey] : undefined, defaultEngine: p.defaultEngine, engines }));
    } catch (err) {
      throw new ConfigError(`${where}: ${(err as Error).message}`);
    }
  },
});
