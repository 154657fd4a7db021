// --state-sync: replicas sharing routing state through a real redis-server
// (started here; `.ci/run` installs it). What one replica learns routes the
// other's requests; a new replica warms from the history before it is ready;
// Redis going away leaves every replica serving on its own state, and sharing
// resumes when Redis is back. Plus SharedState's load accounting between two
// threads' worth of state on real BroadcastChannels.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import type { Routing } from '../src/request-control/director.ts';
import { createLogger } from '../src/log.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { SharedState } from '../src/sync/shared-state.ts';
import { ThreadTransport } from '../src/sync/thread-transport.ts';
import { freePort, startRedisServer } from '../bench/lib/processes.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';

const SYSTEM = 'You are a support agent for ACME. Follow the policy below exactly. '.repeat(120);
const chat = (system: string, question: string) => JSON.stringify({ model: 'llama', messages: [{ role: 'system', content: system }, { role: 'user', content: question }] });

async function metric(app: App, name: string): Promise<number> {
  const m = app.metrics.registry.getSingleMetric(name);
  if (!m) return NaN;
  return (await m.get()).values.reduce((a, v) => a + v.value, 0);
}

const stopRedis = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGKILL'))));

describe('--state-sync with a real redis-server', () => {
  const pods = [new FakePod(), new FakePod(), new FakePod(), new FakePod()];
  let redisPort: number;
  let redis: ChildProcess;
  const apps: { app: App; client: EnvoyClient }[] = [];

  const replica = async () => {
    const r = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, '--fallback-endpoints=0', `--state-sync=redis://127.0.0.1:${redisPort}?key=test-state`]);
    apps.push(r);
    await waitFor(() => r.app.datastore.list().every((e) => e.metrics !== undefined));
    return r;
  };
  const route = async (client: EnvoyClient, body: string) => {
    const r = await client.send({ path: '/v1/chat/completions', body });
    expect(r.violations).toEqual([]);
    return r.setHeaders.get('x-gateway-destination-endpoint')!;
  };

  beforeAll(async () => {
    await Promise.all(pods.map((p) => p.start()));
    redisPort = await freePort('127.0.0.1');
    redis = await startRedisServer(redisPort);
  });
  afterAll(async () => {
    for (const { app, client } of apps) {
      client.close();
      await app.stop(100, 0);
    }
    await stopRedis(redis);
    await Promise.all(pods.map((p) => p.stop()));
  });

  it('holds flow control\'s capacity fleet-wide: a replica queues while another fills the pods, and dispatches when that one\'s request ends', async () => {
    // One request in flight per pod saturates the pool (4 pods); the concurrency detector reads the fleet's counts.
    const config = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates: [flowControl]
plugins:
- {name: one-each, type: concurrency-detector, parameters: {maxConcurrency: 1}}
- {type: queue-scorer}
- {type: max-score-picker}
schedulingProfiles:
- {name: default, plugins: [{pluginRef: queue-scorer}, {pluginRef: max-score-picker}]}
flowControl:
  saturationDetector: {pluginRef: one-each}
  defaultRequestTTL: 10s
`;
    const start = async () => {
      // Scrapes far apart: what wakes b's queue is a's load arriving, not a scrape.
      const r = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, `--config-text=${config}`, `--state-sync=redis://127.0.0.1:${redisPort}?key=test-flow`, '--refresh-metrics-interval=20s', '--metrics-staleness-threshold=60s']);
      mine.push(r);
      await waitFor(() => r.app.datastore.list().every((e) => e.metrics !== undefined));
      return r.app;
    };
    // Kept apart from `apps`, which the other tests index.
    const mine: { app: App; client: EnvoyClient }[] = [];
    const [a, b] = [await start(), await start()];
    const incoming = (id: string) => ({ requestId: id, headers: new Map<string, string>(), path: '/v1/chat/completions', body: Buffer.from(chat('s', id)), subset: undefined, receivedAt: performance.now() });
    const held: Routing[] = [];
    for (let i = 0; i < 4; i++) held.push((await a.director.handleRequest(incoming(`a${i}`))) as Routing);
    // b learns a's load through Redis, and its gate shuts.
    await waitFor(() => b.datastore.list().every((e) => e.inFlight === 1));
    const waiting = b.director.handleRequest(incoming('b0'));
    expect(waiting).toBeInstanceOf(Promise);
    await waitFor(() => b.flow!.stats().queued === 1);
    // One of a's requests ends: b hears of it and dispatches.
    a.director.responseComplete(held.pop()!);
    const routed = (await waiting) as Routing;
    expect(b.flow!.stats().queued).toBe(0);
    b.director.responseComplete(routed);
    for (const h of held) a.director.responseComplete(h);
    for (const { app, client } of mine) {
      client.close();
      await app.stop(100, 0);
    }
  });

  it('routes a conversation another replica started to the pod that holds its prefix', async () => {
    const a = await replica();
    const b = await replica();
    expect(await metric(a.app, 'llm_epp_state_sync_connected')).toBe(1);
    const first = await route(a.client, chat(SYSTEM, 'How do I reset my password?'));
    const end = Date.now() + 5000;
    while ((await metric(b.app, 'llm_d_epp_prefix_indexer_size')) === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    // B never routed anything: its index holds A's blocks, from Redis.
    expect(await metric(b.app, 'llm_d_epp_prefix_indexer_size')).toBeGreaterThan(0);
    expect(await metric(b.app, 'llm_d_epp_request_total')).toBe(0);
    for (let i = 0; i < 5; i++) expect(await route(b.client, chat(SYSTEM, `Question ${i}: where is my order?`))).toBe(first);
  });

  it('warms a new replica from the history before it reports ready', async () => {
    const first = await route(apps[0].client, chat(SYSTEM.toUpperCase(), 'Start of another conversation'));
    await new Promise((r) => setTimeout(r, 200));
    const c = await replica();
    expect(c.app.health.ready).toBe(true);
    expect(await metric(c.app, 'llm_d_epp_prefix_indexer_size')).toBeGreaterThan(0);
    expect(await route(c.client, chat(SYSTEM.toUpperCase(), 'Next question'))).toBe(first);
  });

  it('relays between Redis and the workers of a --workers=2 replica, both ways', async () => {
    const d = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, '--fallback-endpoints=0', '--workers=2', `--state-sync=redis://127.0.0.1:${redisPort}?key=test-state`]);
    apps.push(d);
    await waitFor(() => d.app.datastore.list().every((e) => e.metrics !== undefined));
    // Another replica's blocks reach its workers through the control thread.
    const first = await route(apps[0].client, chat(SYSTEM.replaceAll('ACME', 'Initech'), 'Opening question'));
    await new Promise((r) => setTimeout(r, 300));
    expect(await route(d.client, chat(SYSTEM.replaceAll('ACME', 'Initech'), 'Second question'))).toBe(first);
    // Its workers' blocks reach the other replicas.
    const second = await route(d.client, chat(SYSTEM.replaceAll('ACME', 'Umbrella'), 'Opening question'));
    await new Promise((r) => setTimeout(r, 300));
    expect(await route(apps[1].client, chat(SYSTEM.replaceAll('ACME', 'Umbrella'), 'Second question'))).toBe(second);
  });

  it('keeps serving when Redis goes away, and shares again when it is back', async () => {
    const [a, b] = apps;
    await stopRedis(redis);
    const end = Date.now() + 5000;
    while ((await metric(a.app, 'llm_epp_state_sync_connected')) !== 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(await metric(a.app, 'llm_epp_state_sync_connected')).toBe(0);
    // Routing goes on, readiness untouched; what is sent meanwhile is dropped, not queued.
    for (let i = 0; i < 5; i++) expect(pods.map((p) => p.key)).toContain(await route(a.client, chat(`offline ${i} ${'x'.repeat(3000)}`, 'hi')));
    expect(a.app.health.ready).toBe(true);
    expect(await metric(a.app, 'llm_epp_state_sync_batches_total')).toBeGreaterThan(0);

    redis = await startRedisServer(redisPort);
    const back = Date.now() + 10_000;
    while (((await metric(a.app, 'llm_epp_state_sync_connected')) !== 1 || (await metric(b.app, 'llm_epp_state_sync_connected')) !== 1) && Date.now() < back) await new Promise((r) => setTimeout(r, 50));
    expect(await metric(b.app, 'llm_epp_state_sync_connected')).toBe(1);
    const before = await metric(b.app, 'llm_d_epp_prefix_indexer_size');
    const first = await route(a.client, chat(SYSTEM.replaceAll('ACME', 'Globex'), 'After the outage'));
    const until = Date.now() + 5000;
    while ((await metric(b.app, 'llm_d_epp_prefix_indexer_size')) === before && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(await route(b.client, chat(SYSTEM.replaceAll('ACME', 'Globex'), 'Follow-up'))).toBe(first);
  });
});

describe('SharedState load accounting between two threads\' state', () => {
  it('adds the other origin\'s in-flight load, drops it when the origin leaves, and never counts dispatches twice', async () => {
    const log = createLogger('silent');
    const pools = [new Datastore(), new Datastore()];
    for (const p of pools) p.replaceAll([{ address: '10.0.0.1', port: 8000 }, { address: '10.0.0.2', port: 8000 }]);
    const channel = `test-${Math.random()}`;
    const [s0, s1] = pools.map((p, i) => new SharedState(new ThreadTransport(channel, { routing: true }), p, log, { origin: `r/${i}`, flushMs: 0, heartbeatMs: 50, originTimeoutMs: 300 }));
    const ep0 = pools[0].get('10.0.0.1:8000')!;
    ep0.inFlight += 2;
    ep0.inFlightTokens += 100;
    ep0.dispatched += 2;
    s0.loadChanged(ep0);
    const seen = pools[1].get('10.0.0.1:8000')!;
    await waitFor(() => seen.inFlight === 2);
    expect(seen.inFlightTokens).toBe(100);
    expect(seen.dispatched).toBe(2);
    // s1's own charge on top; s0 sees it and its own, and reports only its own.
    seen.inFlight += 1;
    seen.dispatched += 1;
    s1.loadChanged(seen);
    await waitFor(() => ep0.inFlight === 3);
    expect(s0.ownLoad(ep0)).toEqual({ inFlight: 2, tokens: 100, dispatched: 2 });
    // s0 releases one request.
    ep0.inFlight -= 1;
    s0.loadChanged(ep0);
    await waitFor(() => seen.inFlight === 2);
    // s0 goes silent (a dead replica): its in-flight load leaves s1's view; its dispatches stay counted.
    await s0.close();
    await waitFor(() => seen.inFlight === 1, 2000);
    expect(seen.dispatched).toBe(3);
    await s1.close();
  });
});
