// The metrics collector with an engine-type label it does not know: the pod
// is read as vLLM (engineForLabels' documented fallback, as GAIE does), so it
// still becomes pickable, and the operator is warned once per endpoint.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsCollector } from '../src/metrics/collector.ts';
import { EngineResolver, engineFromConfig } from '../src/metrics/engines.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { captureLogger } from './helpers/log-capture.ts';

const ENGINE_LABEL = 'inference.networking.k8s.io/engine-type';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('metrics collector engine selection', () => {
  it('reads a pod with an unknown engine-type label as vLLM, warning once per endpoint', async () => {
    const pod = await new FakePod({ waiting: 4, running: 2, kv: 0.25 }).start();
    const store = new Datastore();
    store.replaceAll([{ address: pod.host, port: pod.port, labels: { [ENGINE_LABEL]: 'mystery-engine' } }]);
    const cap = captureLogger('info');
    const collector = new MetricsCollector(
      store,
      { intervalMs: 20, timeoutMs: 1000, scheme: 'http', path: '/metrics', port: 0, insecureSkipVerify: false },
      cap.logger,
    );
    cleanup.push(async () => {
      await collector.stop();
      await pod.stop();
    });
    collector.start();
    const ep = store.list()[0];
    await waitFor(() => ep.metrics !== undefined && pod.scrapes >= 5);
    expect(ep.scrapeError).toBeUndefined();
    expect(ep.metrics).toMatchObject({ waitingQueueSize: 4, runningRequests: 2, kvCacheUsage: 0.25 });

    const warnings = () => cap.lines().filter((l) => String(l.msg).includes('unknown engine-type'));
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ level: 40, endpoint: ep.key, engine: 'mystery-engine', using: 'vllm' });
    expect(cap.lines().filter((l) => l.msg === 'model server metrics scrape failed')).toEqual([]);

    // Relabelled to another unknown engine: one more warning; to a known one: none.
    store.replaceAll([{ address: pod.host, port: pod.port, labels: { [ENGINE_LABEL]: 'other-engine' } }]);
    let seen = pod.scrapes;
    await waitFor(() => pod.scrapes >= seen + 5);
    expect(warnings().map((l) => l.engine)).toEqual(['mystery-engine', 'other-engine']);
    store.replaceAll([{ address: pod.host, port: pod.port, labels: { [ENGINE_LABEL]: 'vllm' } }]);
    seen = pod.scrapes;
    await waitFor(() => pod.scrapes >= seen + 5);
    expect(warnings()).toHaveLength(2);
    expect(ep.scrapeError).toBeUndefined();
  });

  it('uses the engines it is given (a config\'s core-metrics-extractor)', async () => {
    const pod = await new FakePod({ waiting: 4, running: 2 }).start();
    const store = new Datastore();
    store.replaceAll([{ address: pod.host, port: pod.port, labels: { [ENGINE_LABEL]: 'swapped' } }]);
    // A custom engine reading the queue from the running gauge and vice versa, so its use shows.
    const engines = new EngineResolver({ engines: [engineFromConfig({ name: 'swapped', queuedRequestsSpec: 'vllm:num_requests_running', runningRequestsSpec: 'vllm:num_requests_waiting' })] });
    const cap = captureLogger('info');
    const collector = new MetricsCollector(store, { intervalMs: 20, timeoutMs: 1000, scheme: 'http', path: '/metrics', port: 0, insecureSkipVerify: false, engines }, cap.logger);
    cleanup.push(async () => {
      await collector.stop();
      await pod.stop();
    });
    collector.start();
    const ep = store.list()[0];
    await waitFor(() => ep.metrics !== undefined);
    expect(ep.metrics).toMatchObject({ waitingQueueSize: 2, runningRequests: 4 });
    expect(cap.lines().filter((l) => String(l.msg).includes('unknown engine-type'))).toEqual([]);
  });

  it('routes to such a pod end to end', async () => {
    const pod = await new FakePod().start();
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-engine-'));
    const file = join(dir, 'endpoints.yaml');
    writeFileSync(file, `endpoints:\n  - address: ${pod.host}\n    port: ${pod.port}\n    labels:\n      ${ENGINE_LABEL}: mystery-engine\n`);
    const { app, client } = await startTestApp([`--endpoints-file=${file}`], { waitReady: 1 });
    cleanup.push(async () => {
      client.close();
      await app.stop(100);
      await pod.stop();
    });
    const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'hi' }) });
    expect(r.violations).toEqual([]);
    expect(r.immediate).toBeUndefined();
    expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(pod.key);
  });

  it('takes engines and the metrics path from the config\'s data layer (core-metrics-extractor, metrics-data-source)', async () => {
    // "mine" reads vLLM's running gauge as its queue: pod A (running 9) then looks busier than B (waiting 3).
    const a = await new FakePod({ waiting: 0, running: 9 }).start();
    const b = await new FakePod({ waiting: 3, running: 0 }).start();
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-engine-'));
    const file = join(dir, 'endpoints.yaml');
    writeFileSync(file, `endpoints:\n  - address: ${a.host}\n    port: ${a.port}\n    labels:\n      ${ENGINE_LABEL}: mine\n  - address: ${b.host}\n    port: ${b.port}\n`);
    const config = (extra: string) =>
      `apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n${extra}schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue-scorer\n`;
    const mine = config('- type: core-metrics-extractor\n  parameters:\n    engineConfigs:\n    - {name: mine, queuedRequestsSpec: "vllm:num_requests_running", runningRequestsSpec: "vllm:num_requests_waiting"}\n');
    const { app, client } = await startTestApp([`--endpoints-file=${file}`, `--config-text=${mine}`], { waitReady: 2 });
    cleanup.push(async () => {
      client.close();
      await app.stop(100);
      await a.stop();
      await b.stop();
    });
    const epA = app.datastore.list().find((e) => e.port === a.port)!;
    expect(epA.metrics).toMatchObject({ waitingQueueSize: 9, runningRequests: 0 });
    for (let i = 0; i < 3; i++) {
      const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: `hi ${i}` }) });
      expect(r.setHeaders.get('x-gateway-destination-endpoint')!.split(',')[0]).toBe(b.key);
    }
    // A metrics path that the pods do not serve: nothing becomes ready, requests get 503.
    const wrong = config('- type: metrics-data-source\n  parameters: {path: /not-metrics}\n');
    const other = await startTestApp([`--endpoints-file=${file}`, `--config-text=${wrong}`], { waitReady: 0 });
    cleanup.push(async () => {
      other.client.close();
      await other.app.stop(100);
    });
    await waitFor(() => other.app.datastore.list().every((e) => e.scrapeError === 'HTTP 404'));
    const r = await other.client.send({ body: JSON.stringify({ model: 'm', prompt: 'hi' }) });
    expect(r.immediate?.status).toBe(503);
  });
});

describe('metrics collector and routed requests', () => {
  it('a successful scrape covers the requests routed before it was sent, not those routed while it was in flight', async () => {
    const pod = await new FakePod({ delayMs: 150 }).start();
    const store = new Datastore();
    store.replaceAll([{ address: pod.host, port: pod.port }]);
    const ep = store.list()[0];
    const collector = new MetricsCollector(store, { intervalMs: 60_000, timeoutMs: 2000, scheme: 'http', path: '/metrics', port: 0, insecureSkipVerify: true }, captureLogger('silent').logger);
    cleanup.push(async () => {
      await collector.stop();
      await pod.stop();
    });
    ep.dispatched = 2; // routed before the first scrape is sent
    collector.start(); // sends the first scrape at once
    ep.dispatched = 5; // three more while it is in flight
    await waitFor(() => ep.metrics !== undefined);
    expect(ep.dispatchedAtScrape).toBe(2);
  });
});
