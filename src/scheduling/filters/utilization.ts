// utilization-filter (llm-d Router, alpha; the renamed active-request-filter):
// drops endpoints over any configured cap — in-flight requests llm-epp
// tracks, or the running requests, waiting queue or KV-cache use the model
// server reports. A missing metric counts as 0. With fallbackOnEmpty, a cycle
// that would drop everything keeps the candidates unfiltered.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter, Plugin } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

const METRICS = {
  'active-requests': (e: Endpoint) => e.inFlight,
  'running-requests': (e: Endpoint) => e.metrics?.runningRequests ?? 0,
  'waiting-queue': (e: Endpoint) => e.metrics?.waitingQueueSize ?? 0,
  'kv-cache-utilization': (e: Endpoint) => e.metrics?.kvCacheUsage ?? 0,
} as const;
type MetricName = keyof typeof METRICS;

interface Condition {
  readonly read: (e: Endpoint) => number;
  readonly max: number;
}

export class UtilizationFilter implements Filter {
  readonly type = 'utilization-filter';
  readonly name: string;
  readonly #conditions: readonly Condition[];
  readonly #fallbackOnEmpty: boolean;
  readonly #producerName: string | undefined;

  constructor(name: string, conditions: readonly Condition[], fallbackOnEmpty: boolean, producerName: string | undefined) {
    this.name = name;
    this.#conditions = conditions;
    this.#fallbackOnEmpty = fallbackOnEmpty;
    this.#producerName = producerName;
  }

  checkConfig(plugins: ReadonlyMap<string, Plugin>): void {
    const n = this.#producerName;
    if (n !== undefined && plugins.get(n)?.type !== 'inflight-load-producer') {
      throw new ConfigError(`plugin "${this.name}" (utilization-filter): inFlightLoadProducerName "${n}" names no inflight-load-producer`);
    }
  }

  filter(_state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    const kept = endpoints.filter((e) => {
      for (const c of this.#conditions) if (c.read(e) > c.max) return false;
      return true;
    });
    return kept.length === 0 && this.#fallbackOnEmpty ? endpoints : kept;
  }
}

function readConditions(name: string, raw: unknown[]): Condition[] {
  const where = `plugin "${name}" (utilization-filter): parameter "conditions"`;
  if (raw.length === 0) throw new ConfigError(`${where} needs at least one condition`);
  return raw.map((c, i) => {
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new ConfigError(`${where}[${i}] must be a mapping with "metric" and "maxValue"`);
    const o = c as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'metric' && k !== 'maxValue') throw new ConfigError(`${where}[${i}]: unknown field "${k}" (known: metric, maxValue)`);
    if (typeof o.metric !== 'string' || !(o.metric in METRICS)) throw new ConfigError(`${where}[${i}].metric must be one of ${Object.keys(METRICS).join(', ')}, got ${JSON.stringify(o.metric)}`);
    const max = typeof o.maxValue === 'string' && o.maxValue.trim() !== '' ? Number(o.maxValue) : o.maxValue;
    if (typeof max !== 'number' || !Number.isFinite(max) || max < 0) throw new ConfigError(`${where}[${i}].maxValue must be a number ≥ 0, got ${JSON.stringify(o.maxValue)}`);
    if (o.metric === 'kv-cache-utilization' && max > 1) throw new ConfigError(`${where}[${i}].maxValue of kv-cache-utilization is a fraction and must be ≤ 1`);
    return { read: METRICS[o.metric as MetricName], max };
  });
}

export const utilizationFilter = definePlugin({
  type: 'utilization-filter',
  stability: 'alpha',
  description: 'Drops endpoints over any cap: active-requests (in flight, tracked by llm-epp), running-requests, waiting-queue, kv-cache-utilization (reported by the model server).',
  params: {
    conditions: { type: 'list', doc: 'List of {metric, maxValue}; an endpoint must satisfy all (required).' },
    fallbackOnEmpty: { type: 'boolean', default: false, doc: 'Keep every candidate when all would be dropped.' },
    inFlightLoadProducerName: { type: 'string', doc: 'active-requests: the inflight-load-producer instance (llm-epp has one in-flight count, so only checked to exist).' },
  },
  create: (name, p) => {
    if (p.conditions === undefined) throw new ConfigError(`plugin "${name}" (utilization-filter): parameter "conditions" is required`);
    return new UtilizationFilter(name, readConditions(name, p.conditions), p.fallbackOnEmpty, p.inFlightLoadProducerName);
  },
});
