// inference_extension_scheduler_e2e_duration_seconds: one observation per
// scheduling decision, observed by Director.pick around Scheduler.schedule
// (src/request-control/director.ts). Requests turned away before scheduling (no candidates,
// sheddable while saturated) make no decision and no observation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { Director, type DirectorOptions } from '../src/request-control/director.ts';
import { RequestPlugins } from '../src/request-control/request-plugins.ts';
import { PluginTimer } from '../src/scheduling/plugin-timer.ts';
import { EppError } from '../src/errors.ts';
import { createLogger } from '../src/log.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import type { Datastore } from '../src/pool/datastore.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { DEFAULT_CONFIG, loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import type { Scheduler, SchedulingRequest } from '../src/scheduling/types.ts';
import { startTestApp } from './helpers/app-harness.ts';
import { thrown } from './helpers/thrown.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { context, makePool, request, type EpSpec, makeDirector } from './helpers/scheduling.ts';

const NAME = 'llm_d_epp_scheduler_e2e_duration_seconds';
const OLD_NAME = 'inference_extension_scheduler_e2e_duration_seconds';
const OPTS: DirectorOptions = { metricsStalenessThresholdMs: 60_000, fallbackEndpoints: 0, disableEndpointSubsetFilter: false };
const silent = createLogger('silent');

/** The llm_d_epp_ series, after checking that its deprecated twin saw the same observations. */
async function histogram(metrics: EppMetrics): Promise<{ count: number; sum: number; buckets: Map<string, number> }> {
  const now = await read(metrics, NAME);
  const old = await read(metrics, OLD_NAME);
  expect(old).toEqual(now);
  return now;
}

async function read(metrics: EppMetrics, name: string): Promise<{ count: number; sum: number; buckets: Map<string, number> }> {
  const NAME = name;
  const values = (await metrics.registry.getSingleMetric(name)!.get()).values as { metricName?: string; labels: Record<string, string | number>; value: number }[];
  const buckets = new Map<string, number>();
  let count = 0;
  let sum = 0;
  for (const v of values) {
    if (v.metricName === `${NAME}_count`) count = v.value;
    else if (v.metricName === `${NAME}_sum`) sum = v.value;
    else if (v.metricName === `${NAME}_bucket`) buckets.set(String(v.labels.le), v.value);
  }
  return { count, sum, buckets };
}

function setup(specs: EpSpec[], scheduler?: (pool: Datastore) => Scheduler) {
  const { pool, endpoints } = makePool(specs);
  const metrics = new EppMetrics(pool, { poolName: 'p', stalenessThresholdMs: 60_000, version: 'test', processMetrics: false });
  const s = scheduler
    ? scheduler(pool)
    : new PipelineScheduler(loadConfig(parseConfigText(DEFAULT_CONFIG, 'default'), createRegistry(), context(pool), 'default'), silent, metrics);
  return { director: makeDirector(pool, s, OPTS, metrics, silent), metrics, pool, endpoints };
}

const req = (priority = 0): SchedulingRequest => ({ ...request({ model: 'm', prompt: 'hello there' }), priority });

function expectEppError(fn: () => unknown, code: string): void {
  expect(thrown(fn, EppError).code).toBe(code);
}

describe('scheduler e2e latency histogram (Director.pick)', () => {
  it('gets exactly one observation per scheduling decision with the real pipeline', async () => {
    const { director, metrics } = setup([{ waitingQueueSize: 3 }, {}, { kvCacheUsage: 0.5 }]);
    expect((await histogram(metrics)).count).toBe(0);
    const routing = director.pick(req(), undefined);
    expect(routing.primary.name).toBe('pod-2');
    expect((await histogram(metrics)).count).toBe(1);
    for (let i = 0; i < 4; i++) director.responseComplete(director.pick(req(), undefined));
    const h = await histogram(metrics);
    expect(h.count).toBe(5);
    expect(h.sum).toBeGreaterThan(0);
    // The +Inf bucket holds every observation.
    expect(h.buckets.get('+Inf')).toBe(5);
  });

  it('observes how long Scheduler.schedule took', async () => {
    const slow: Scheduler = {
      name: 'slow',
      schedule(_r, candidates) {
        const until = performance.now() + 3;
        while (performance.now() < until) {
          // busy wait: 3 ms inside the scheduler
        }
        return { endpoints: [candidates[0]], profiles: new Map() };
      },
    };
    const { director, metrics } = setup([{}], () => slow);
    director.pick(req(), undefined);
    director.pick(req(), undefined);
    const h = await histogram(metrics);
    expect(h.count).toBe(2);
    expect(h.sum).toBeGreaterThanOrEqual(0.006);
    expect(h.sum).toBeLessThan(1);
    // Each observation took ≥ 3 ms: none falls in the ≤ 2 ms bucket.
    expect(h.buckets.get('0.002')).toBe(0);
  });

  it('a decision that finds no endpoint (every candidate filtered out) is observed too, then answered 503', async () => {
    const none: Scheduler = { name: 'none', schedule: () => ({ endpoints: [], profiles: new Map() }) };
    const { director, metrics } = setup([{}, {}], () => none);
    expectEppError(() => director.pick(req(), undefined), 'ServiceUnavailable');
    expect((await histogram(metrics)).count).toBe(1);
  });

  it('no candidates: no decision, no observation', async () => {
    let calls = 0;
    const counting: Scheduler = { name: 'c', schedule: (_r, c) => ((calls++), { endpoints: [c[0]], profiles: new Map() }) };
    const { director, metrics, endpoints } = setup([{}], () => counting);
    // The subset hint names no pod of the pool.
    expectEppError(() => director.pick(req(), ['10.9.9.9:8000']), 'ServiceUnavailable');
    // Stale metrics.
    endpoints[0].metricsUpdatedAt = performance.now() - 120_000;
    expectEppError(() => director.pick(req(), undefined), 'ServiceUnavailable');
    expect(calls).toBe(0);
    expect((await histogram(metrics)).count).toBe(0);
  });

  it('a sheddable request rejected while the pool is saturated makes no decision and no observation', async () => {
    let calls = 0;
    const counting: Scheduler = { name: 's', schedule: (_r, c) => ((calls++), { endpoints: [c[0]], profiles: new Map() }) };
    const { pool, metrics } = setup([{}], () => counting);
    const saturated = new RequestPlugins([], new PluginTimer(metrics, silent), { type: 't', name: 'always-saturated', saturation: () => 1 });
    const director = new Director({ pool, scheduler: counting, plugins: saturated, options: OPTS, metrics, log: silent });
    expectEppError(() => director.pick(req(-1), undefined), 'ResourceExhausted');
    expect((await histogram(metrics)).count).toBe(0);
    // A non-sheddable request is still scheduled (and observed).
    director.pick(req(0), undefined);
    expect(calls).toBe(1);
    expect((await histogram(metrics)).count).toBe(1);
  });
});

describe('scheduler e2e latency histogram on /metrics (whole app)', () => {
  const pods = [new FakePod({ waiting: 1 }), new FakePod({ waiting: 0 })];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    await Promise.all(pods.map((p) => p.start()));
    ({ app, client } = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`], { waitReady: 2 }));
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await Promise.all(pods.map((p) => p.stop()));
  });

  async function count(): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`);
    const samples = parsePrometheusText(await res.text()).get(`${NAME}_count`) ?? [];
    return samples[0]?.value ?? 0;
  }

  it('the exported _count grows by one per routed request', async () => {
    const before = await count();
    for (let i = 0; i < 3; i++) {
      const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: `request ${i}` }) });
      expect(r.setHeaders.get('x-gateway-destination-endpoint')?.split(',').sort()).toEqual(pods.map((p) => p.key).sort());
    }
    expect(await count()).toBe(before + 3);
  });
});
