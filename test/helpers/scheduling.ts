// Building blocks for plugin unit tests: endpoints with given metrics, a
// cycle state for a request, and plugins created through the real registry.
import { mulberry32 } from '../../src/random.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { parseRequestBody } from '../../src/openai/request.ts';
import { Datastore } from '../../src/pool/datastore.ts';
import type { Endpoint, ModelServerMetrics } from '../../src/pool/endpoint.ts';
import { createRegistry } from '../../src/builtin-plugins.ts';
import { CycleState, type Plugin, type PluginContext } from '../../src/scheduling/framework.ts';
import { Director, type DirectorOptions } from '../../src/request-control/director.ts';
import { RequestPlugins } from '../../src/request-control/request-plugins.ts';
import { PipelineScheduler } from '../../src/scheduling/pipeline.ts';
import type { Scheduler, SchedulingRequest, SchedulingResult } from '../../src/scheduling/types.ts';
import type { EppMetrics } from '../../src/observability/metrics.ts';

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

/** Seeded PRNG (mulberry32) so distribution tests are repeatable. */
export function seeded(seed = 42): () => number {
  return mulberry32(seed);
}

export function context(pool: Datastore, random: () => number = seeded()): PluginContext {
  return { pool, log: createLogger('silent'), metrics: undefined, random, plugins: new Map(), allowExperimental: true };
}

/** One plugin on its own, created and linked as the config loader does. */
export function create<T extends Plugin>(type: string, params: unknown, pool: Datastore, random?: () => number): T {
  const registry = createRegistry();
  const ctx = context(pool, random);
  const p = registry.create(type, type, params, ctx);
  const plugins = new Map<string, Plugin>([[type, p]]);
  p.link?.(plugins, (t) => registry.create(t, t, undefined, { ...ctx, plugins }));
  return p as T;
}

/** A Director over `scheduler`; a PipelineScheduler's config also brings its request plugins and saturation detector. */
export function makeDirector(pool: Datastore, scheduler: Scheduler, options: DirectorOptions, metrics: EppMetrics, log: Logger): Director {
  const plugins =
    scheduler instanceof PipelineScheduler ? new RequestPlugins(scheduler.config.plugins.values(), scheduler.timer, scheduler.config.saturationDetector) : undefined;
  return new Director({ pool, scheduler, plugins, options, metrics, log });
}

/** One request as request control runs it over a PipelineScheduler: producers, the profiles, then PreRequest hooks. */
export function runCycle(scheduler: PipelineScheduler, request: SchedulingRequest, candidates: readonly Endpoint[], max: number): SchedulingResult {
  const plugins = new RequestPlugins(scheduler.config.plugins.values(), scheduler.timer);
  const st = new CycleState(request);
  plugins.produce(st, candidates);
  const result = scheduler.schedule(st, candidates, max);
  if (result.endpoints.length > 0) plugins.preRequest(st, result.endpoints[0], result.profiles);
  return result;
}
