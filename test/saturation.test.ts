import { describe, expect, it } from 'vitest';
import { thrown } from './helpers/thrown.ts';
import { EppError } from '../src/errors.ts';
import { createLogger } from '../src/log.ts';
import { EngineResolver, engineFromConfig, extractMetrics } from '../src/metrics/engines.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import type { SaturationDetector } from '../src/scheduling/framework.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import type { Datastore } from '../src/pool/datastore.ts';
import { create, makePool, request, state, makeDirector } from './helpers/scheduling.ts';

const head = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';
const log = createLogger('silent');

function load(yaml: string, pool: Datastore) {
  return loadConfig(parseConfigText(head + yaml, 'test.yaml'), createRegistry(), { pool, log, metrics: undefined, random: Math.random }, 'test.yaml');
}

describe('utilization-detector', () => {
  it('saturation = mean of max(queue / 5, kv / 0.8); stale or missing metrics count 1.0; no endpoints = 1.0', () => {
    const { pool, endpoints } = makePool([
      { waitingQueueSize: 5, kvCacheUsage: 0.2 }, // 1.0 (queue)
      { waitingQueueSize: 0, kvCacheUsage: 0.4 }, // 0.5 (kv)
      { waitingQueueSize: 1, kvCacheUsage: 0 }, // 0.2
    ]);
    const d = create<SaturationDetector>('utilization-detector', {}, pool);
    expect(d.saturation(endpoints)).toBeCloseTo((1 + 0.5 + 0.2) / 3, 9);
    expect(d.saturation([])).toBe(1);
    endpoints[2].metricsUpdatedAt = performance.now() - 1000; // older than the default 200ms
    expect(d.saturation(endpoints)).toBeCloseTo((1 + 0.5 + 1) / 3, 9);
    const custom = create<SaturationDetector>('utilization-detector', { queueDepthThreshold: 10, kvCacheUtilThreshold: 0.5, metricsStalenessThreshold: '2s' }, pool);
    expect(custom.saturation(endpoints)).toBeCloseTo((0.5 + 0.8 + 0.1) / 3, 9);
  });

  it('as a filter drops endpoints over a threshold (× 1 + headroom) or stale, and fails open', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 5 }, { kvCacheUsage: 0.85 }, { waitingQueueSize: 4, kvCacheUsage: 0.79 }]);
    const f = create<SaturationDetector & { filter: (s: unknown, e: typeof endpoints) => typeof endpoints }>('utilization-detector', {}, pool);
    expect(f.filter(state(undefined), endpoints).map((e) => e.name)).toEqual(['pod-3']);
    const roomy = create<typeof f>('utilization-detector', { headroom: 0.25 }, pool);
    expect(roomy.filter(state(undefined), endpoints).map((e) => e.name)).toEqual(['pod-1', 'pod-2', 'pod-3']);
    const all = [endpoints[0], endpoints[1]];
    expect(f.filter(state(undefined), all)).toBe(all);
  });
});

describe('concurrency-detector', () => {
  it('saturation = in-flight requests (or tokens) ÷ total capacity', () => {
    const { pool, endpoints } = makePool([{ inFlight: 100, inFlightTokens: 10 }, { inFlight: 50, inFlightTokens: 30 }]);
    expect(create<SaturationDetector>('concurrency-detector', {}, pool).saturation(endpoints)).toBe(0.75);
    expect(create<SaturationDetector>('concurrency-detector', { maxConcurrency: 75 }, pool).saturation(endpoints)).toBe(1);
    expect(create<SaturationDetector>('concurrency-detector', { concurrencyMode: 'tokens', maxTokenConcurrency: 20 }, pool).saturation(endpoints)).toBe(1);
    expect(() => create('concurrency-detector', { concurrencyMode: 'bytes' }, pool)).toThrow(/concurrencyMode/);
  });
});

describe('admission of sheddable requests', () => {
  function director(yaml: string, specs: Parameters<typeof makePool>[0]) {
    const { pool } = makePool(specs);
    const config = load(yaml, pool);
    const scheduler = new PipelineScheduler(config, log);
    const metrics = new EppMetrics(pool, { poolName: 'p', stalenessThresholdMs: 2000, version: 't', processMetrics: false });
    return { config, d: makeDirector(pool, scheduler, { metricsStalenessThresholdMs: 2000, fallbackEndpoints: 0, disableEndpointSubsetFilter: false }, metrics, log) };
  }
  const body = { model: 'm', prompt: 'hello' };
  const sheddable = { ...request(body), priority: -1 };

  it('the default utilization-detector rejects priority < 0 with 429 when saturated, and never rejects priority ≥ 0', () => {
    const { config, d } = director('plugins:\n- type: queue-scorer\n', [{ waitingQueueSize: 6 }, { kvCacheUsage: 0.9 }]);
    expect(config.saturationDetector.type).toBe('utilization-detector');
    expect(thrown(() => d.pick(sheddable, undefined), EppError).status).toBe(429);
    // queue-scorer alone: the pod with the empty queue.
    expect(d.pick(request(body), undefined).primary.name).toBe('pod-2');
    expect(d.pick({ ...request(body), priority: 3 }, undefined).primary.name).toBe('pod-2');
  });

  it('below saturation sheddable requests are routed; a configured concurrency-detector is the one used', () => {
    const calm = director('plugins:\n- type: queue-scorer\n', [{ waitingQueueSize: 1 }, { kvCacheUsage: 0.3 }]);
    expect(calm.d.pick(sheddable, undefined).primary.name).toBe('pod-2');
    const conc = director('plugins:\n- type: queue-scorer\n- name: sat\n  type: concurrency-detector\n  parameters: {maxConcurrency: 2}\nsaturationDetector: {pluginRef: sat}\n', [{ waitingQueueSize: 50 }, { waitingQueueSize: 50 }]);
    expect(conc.config.saturationDetector.name).toBe('sat');
    // Queues are long but nothing is in flight: not saturated for this detector.
    const r1 = conc.d.pick(sheddable, undefined);
    const r2 = conc.d.pick(sheddable, undefined);
    conc.d.pick(sheddable, undefined);
    conc.d.pick(sheddable, undefined);
    // 4 in flight over 2 endpoints × 2 = saturated.
    expect(() => conc.d.pick(sheddable, undefined)).toThrow(/saturated/);
    conc.d.responseComplete(r1);
    conc.d.responseComplete(r2);
    // Both queues are equal (50 + 2 routed since the last scrape each): either pod, but a pod.
    expect(['pod-1', 'pod-2']).toContain(conc.d.pick(sheddable, undefined).primary.name);
  });
});

describe('data-layer and parser sections (GAIE Helm / llm-d configs)', () => {
  it('accepts metrics-data-source, core-metrics-extractor and openai-parser, in a data section or just declared', () => {
    const { pool } = makePool([{}]);
    const gaieHelm =
      'plugins:\n- type: queue-scorer\n- type: metrics-data-source\n  parameters: {scheme: https, path: /stats, insecureSkipVerify: false}\n- type: core-metrics-extractor\n  parameters:\n    engineLabelKey: app.kubernetes.io/engine\n    engineConfigs:\n    - {name: vllm, loraSpec: ""}\n    - {name: mine, queuedRequestsSpec: "q_depth", runningRequestsSpec: "batch{kind=live}", kvUsageSpec: kv}\n- type: openai-parser\n' +
      'data:\n  sources:\n  - pluginRef: metrics-data-source\n    extractors:\n    - pluginRef: core-metrics-extractor\nparser: {pluginRef: openai-parser}\nsaturationDetector: {pluginRef: utilization-detector}\n- type: utilization-detector\n';
    // The last line above is deliberately misplaced YAML: a clear parse error, not a crash.
    expect(() => load(gaieHelm, pool)).toThrow(/invalid YAML/);
    const ok = load(gaieHelm.replace('saturationDetector: {pluginRef: utilization-detector}\n- type: utilization-detector\n', ''), pool);
    expect(ok.dataLayer).toMatchObject({ scheme: 'https', path: '/stats', insecureSkipVerify: false });
    const engines = ok.dataLayer.engines!;
    expect(engines.labelKeys).toEqual(['app.kubernetes.io/engine']);
    expect(engines.forLabels({ 'app.kubernetes.io/engine': 'mine' }).engine.waiting.name).toBe('q_depth');
    expect(engines.forLabels({}).engine.lora).toBeUndefined(); // "" disabled vLLM's LoRA metric
    expect(engines.forLabels({ 'app.kubernetes.io/engine': 'llama.cpp' })).toMatchObject({ unknown: 'llama.cpp', engine: { name: 'vllm' } });
    const page = 'q_depth 3\nbatch{kind="live"} 7\nbatch{kind="idle"} 1\nkv 0.25\n';
    expect(extractMetrics(engines.forLabels({ 'app.kubernetes.io/engine': 'mine' }).engine, parsePrometheusText(page))).toMatchObject({ waitingQueueSize: 3, runningRequests: 7, kvCacheUsage: 0.25 });
    const declaredOnly = load('plugins:\n- type: queue-scorer\n- type: metrics-data-source\n  parameters: {path: /m}\n', pool);
    expect(declaredOnly.dataLayer).toMatchObject({ path: '/m' });
    expect(load('plugins:\n- type: queue-scorer\n', pool).dataLayer.path).toBeUndefined();
    // GAIE always has these two; a section may name them without declaring them.
    const ensured = load('plugins:\n- type: queue-scorer\nparser: {pluginRef: openai-parser}\nsaturationDetector: {pluginRef: utilization-detector}\n', pool);
    expect(ensured.saturationDetector.type).toBe('utilization-detector');
    expect(ensured.plugins.get('openai-parser')?.type).toBe('openai-parser');
  });

  it('engineFromConfig keeps a built-in engine\'s fields that an entry leaves out; EngineResolver defaults', () => {
    const sg = engineFromConfig({ name: 'sglang', kvUsageSpec: 'sglang:kv_frac' });
    expect(sg.waiting.name).toBe('sglang:num_queue_reqs');
    expect(sg.kvUsage.map((s) => s.name)).toEqual(['sglang:kv_frac']);
    const r = new EngineResolver();
    expect(r.forLabels({ 'llm-d.ai/engine-type': 'sglang' }).engine.name).toBe('sglang');
    expect(r.forLabels({ 'inference.networking.k8s.io/engine-type': 'tgi', 'llm-d.ai/engine-type': 'sglang' }).engine.name).toBe('sglang');
    expect(() => new EngineResolver({ defaultEngine: 'x' })).toThrow(/defaultEngine "x"/);
  });
});

describe('bench/config', () => {
  it('every benchmark config loads', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const dir = new URL('../bench/config/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    const { pool } = makePool([{}]);
    const { flowControlOf } = await import('../src/flowcontrol/config.ts');
    for (const f of files) {
      // bench:flow-control passes --allow-experimental-plugins (its priority-holdback-policy is alpha).
      const c = loadConfig(parseConfigText(readFileSync(new URL(f, dir), 'utf8'), f), createRegistry(), { pool, log, metrics: undefined, random: Math.random, allowExperimental: true }, f);
      expect(c.profiles.size, f).toBe(1);
      expect(() => flowControlOf(c, f), f).not.toThrow();
    }
  });
});

describe('in-flight accounting and the served endpoint', () => {
  it('moves a request\'s in-flight load to the endpoint the gateway reports as having served it', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 0 }, { waitingQueueSize: 5 }]);
    const scheduler = new PipelineScheduler(load('plugins:\n- type: queue-scorer\n', pool), log);
    const metrics = new EppMetrics(pool, { poolName: 'p', stalenessThresholdMs: 2000, version: 't', processMetrics: false });
    const d = makeDirector(pool, scheduler, { metricsStalenessThresholdMs: 2000, fallbackEndpoints: 1, disableEndpointSubsetFilter: false }, metrics, log);
    const r = d.pick(request({ model: 'm', prompt: 'x'.repeat(400) }), undefined);
    const [primary, fallback] = endpoints;
    expect(r.primary).toBe(primary);
    expect([primary.inFlight, primary.inFlightTokens, fallback.inFlight]).toEqual([1, 100, 0]);
    d.responseReceived(r, fallback.key); // Envoy retried on the fallback
    expect([primary.inFlight, primary.inFlightTokens, fallback.inFlight, fallback.inFlightTokens]).toEqual([0, 0, 1, 100]);
    d.responseReceived(r, 'unknown:1'); // not in the pool: nothing moves
    d.responseReceived(r, fallback.key); // reported twice: counted once
    expect([primary.inFlight, fallback.inFlight]).toEqual([0, 1]);
    d.responseComplete(r);
    expect([primary.inFlight, fallback.inFlight, fallback.inFlightTokens]).toEqual([0, 0, 0]);
  });
});
