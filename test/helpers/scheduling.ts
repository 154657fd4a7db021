// Building blocks for plugin unit tests: endpoints with given metrics, a
// cycle state for a request, and plugins created through the real registry.
import { rng } from '../../bench/load/workloads.ts';
import { createLogger } from '../../src/log.ts';
import type { ModelServerMetrics } from '../../src/metrics/engines.ts';
import { parseRequestBody } from '../../src/openai/request.ts';
import { Datastore } from '../../src/pool/datastore.ts';
import type { Endpoint } from '../../src/pool/endpoint.ts';
import { createRegistry } from '../../src/scheduling/builtin-plugins.ts';
import { CycleState, type Plugin, type PluginContext } from '../../src/scheduling/framework.ts';
import type { SchedulingRequest } from '../../src/scheduling/types.ts';

export interface EpSpec extends Partial<ModelServerMetrics> {
  labels?: Record<string, string>;
  name?: string;
  inFlight?: number;
  inFlightTokens?: number;
}

export function makePool(specs: EpSpec[]): { pool: Datastore; endpoints: Endpoint[] } {
  const pool = new Datastore();
  pool.replaceAll(specs.map((s, i) => ({ address: `10.0.0.${i + 1}`, port: 8000, labels: s.labels, name: s.name ?? `pod-${i + 1}` })));
  const endpoints = [...pool.list()];
  endpoints.forEach((e, i) => {
    const s = specs[i];
    e.metrics = { waitingQueueSize: s.waitingQueueSize ?? 0, runningRequests: s.runningRequests ?? 0, kvCacheUsage: s.kvCacheUsage ?? 0, lora: s.lora, cacheBlockSize: s.cacheBlockSize, cacheNumGpuBlocks: s.cacheNumGpuBlocks };
    e.metricsUpdatedAt = performance.now();
    e.inFlight = s.inFlight ?? 0;
    e.inFlightTokens = s.inFlightTokens ?? 0;
  });
  return { pool, endpoints };
}

export function request(body: Record<string, unknown> | undefined, headers: Record<string, string> = {}, path = '/v1/completions'): SchedulingRequest {
  const parsed = body ? parseRequestBody(Buffer.from(JSON.stringify(body)), path) : undefined;
  const model = parsed?.model ?? '';
  return { requestId: 'test', model, targetModel: model, parsed, headers: new Map(Object.entries(headers)), priority: 0, fairnessId: 'default-flow' };
}

export function state(body: Record<string, unknown> | undefined, headers: Record<string, string> = {}): CycleState {
  return new CycleState(request(body, headers));
}

/** Seeded PRNG (mulberry32, the load generator's) so distribution tests are repeatable. */
export function seeded(seed = 42): () => number {
  return rng(seed);
}

export function context(pool: Datastore, random: () => number = seeded()): PluginContext {
  return { pool, log: createLogger('silent'), metrics: undefined, random, plugins: new Map() };
}

export function create<T extends Plugin>(type: string, params: unknown, pool: Datastore, random?: () => number): T {
  return createRegistry().create(type, type, params, context(pool, random)) as T;
}
