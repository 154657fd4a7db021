// Endpoint readiness through the real collector: stale and dead pods, an
// empty pool, the endpoints file reloading live, TLS and gRPC health.
import { KubeConfig } from '@kubernetes/client-node';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { FakeKube, inferencePool, pod as kubePod } from './helpers/fake-kube.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { healthClient, readiness } from './helpers/health-client.ts';

const body = JSON.stringify({ model: 'm', prompt: 'hello' });

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(pods: FakePod[], flags: () => string[], waitReady = pods.length, kubeConfig?: unknown): Promise<{ app: App; client: EnvoyClient }> {
  await Promise.all(pods.filter((p) => p.port === 0).map((p) => p.start()));
  const f = flags();
  const started = await startTestApp(f.length ? f : [`--endpoints=${pods.map((p) => p.key).join(',')}`], { waitReady, kubeConfig });
  cleanup.push(async () => {
    started.client.close();
    await started.app.stop(100);
    await Promise.all(pods.map((p) => p.stop()));
  });
  return started;
}

describe('endpoint readiness', () => {
  it('skips a pod whose metrics went stale and keeps routing to the others', async () => {
    const pods = [new FakePod({ waiting: 0 }), new FakePod({ waiting: 3 })];
    const { app, client } = await setup(pods, () => [`--endpoints=${pods.map((p) => p.key).join(',')}`, '--metrics-staleness-threshold=150ms']);
    expect((await client.send({ body })).setHeaders.get('x-gateway-destination-endpoint')?.split(',')[0]).toBe(pods[0].key);
    // The best pod's metrics page starts failing: after the threshold it is skipped.
    pods[0].state.status = 500;
    await waitFor(() => app.director.candidates(undefined).length === 1);
    for (let i = 0; i < 5; i++) {
      const r = await client.send({ body });
      expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(pods[1].key);
    }
    expect(app.datastore.get(pods[0].key)?.scrapeError).toContain('500');
    // It comes back when its metrics do.
    pods[0].state.status = 200;
    await waitFor(() => app.director.candidates(undefined).length === 2);
  });

  it('keeps routing while a dead pod\'s scrapes fail, and a slow pod does not delay the others', async () => {
    const pods = [new FakePod(), new FakePod(), new FakePod()];
    const { app, client } = await setup(pods, () => [
      `--endpoints=${pods.map((p) => p.key).join(',')}`,
      '--metrics-staleness-threshold=200ms',
      '--metrics-scrape-timeout=3s',
    ]);
    await pods[0].stop(); // dead: connection refused from now on
    pods[1].state.delayMs = 3000; // slow: its next scrape hangs for seconds
    const slowBefore = pods[1].scrapes;
    await waitFor(() => pods[1].scrapes > slowBefore);
    // While that scrape hangs, the healthy pod goes on being scraped (counted,
    // not timed: a scraper that waited on the slow pod would stall here for 3 s).
    const healthyBefore = pods[2].scrapes;
    await waitFor(() => pods[2].scrapes >= healthyBefore + 5, 2500);
    await waitFor(() => app.director.candidates(undefined).length === 1);
    const r = await client.send({ body });
    expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(pods[2].key);
    pods[1].state.delayMs = 0;
  });

  it('answers 503 when no endpoint is ready', async () => {
    const pod = new FakePod({ status: 503 });
    const { client } = await setup([pod], () => [], 0);
    const r = await client.send({ body });
    expect(r.immediate?.status).toBe(503);
    expect(JSON.parse(r.immediate!.body).error.message).toContain('no ready endpoints');
    const h = await client.send({ method: 'GET', path: '/v1/models' });
    expect(h.immediate?.status).toBe(503);
  });

  it('reloads --endpoints-file on change, keeps the last good pool on a bad edit, and carries labels', async () => {
    const pods = [new FakePod(), new FakePod()];
    await Promise.all(pods.map((p) => p.start()));
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-'));
    const file = join(dir, 'endpoints.yaml');
    const yaml = (ps: FakePod[]) =>
      'endpoints:\n' +
      ps.map((p) => `  - address: ${p.host}\n    port: ${p.port}\n    name: pod-${p.port}\n    labels:\n      llm-d.ai/role: decode\n`).join('');
    writeFileSync(file, yaml([pods[0]]));
    const { app } = await setup(pods, () => [`--endpoints-file=${file}`], 1);
    expect(app.datastore.list().map((e) => e.key)).toEqual([pods[0].key]);
    expect(app.datastore.list()[0].labels['llm-d.ai/role']).toBe('decode');
    expect(app.datastore.list()[0].name).toBe(`pod-${pods[0].port}`);
    const first = app.datastore.get(pods[0].key);

    // Replace the file the way editors and ConfigMaps do (write + rename).
    writeFileSync(join(dir, 'tmp'), yaml(pods));
    renameSync(join(dir, 'tmp'), file);
    await waitFor(() => app.datastore.list().length === 2);
    expect(app.datastore.get(pods[0].key)).toBe(first); // same object: metrics and in-flight kept
    await waitFor(() => app.director.candidates(undefined).length === 2);

    writeFileSync(file, 'endpoints:\n  - address: not-an-ip\n    port: 1\n');
    await app.fileSource!.reload();
    expect(app.datastore.list().length).toBe(2);

    writeFileSync(file, yaml([pods[1]]));
    await app.fileSource!.reload();
    expect(app.datastore.list().map((e) => e.key)).toEqual([pods[1].key]);
  });
});

describe('serving', () => {
  it('serves ext_proc over TLS with a self-signed certificate by default', async () => {
    const pod = new FakePod();
    const { client, app } = await setup([pod], () => [`--endpoints=${pod.key}`, '--secure-serving']);
    expect(app.certPem?.toString()).toContain('BEGIN CERTIFICATE');
    const r = await client.send({ body });
    expect(r.violations).toEqual([]);
    expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(pod.key);
  });

  it('answers gRPC health on the health port and on the ext_proc port', async () => {
    const pod = new FakePod();
    const { app } = await setup([pod], () => [`--endpoints=${pod.key}`]);
    const clients = [healthClient(app.ports.health), healthClient(app.ports.grpc)];
    cleanup.push(async () => clients.forEach((c) => c.close()));
    for (const c of clients) {
      expect(await c.check('liveness')).toBe('SERVING');
      expect(await readiness(c)).toEqual(['SERVING', 'SERVING', 'SERVING']);
      await expect(c.check('nope')).rejects.toThrow(/NOT_FOUND|unknown/i);
    }
    // Readiness dropped (what stop() and a lost leadership do): both ports say so, liveness stays.
    app.health.setReady(false);
    for (const c of clients) {
      expect(await readiness(c)).toEqual(['NOT_SERVING', 'NOT_SERVING', 'NOT_SERVING']);
      expect(await c.check('liveness')).toBe('SERVING');
    }
    app.health.setReady(true);
    for (const c of clients) expect(await readiness(c)).toEqual(['SERVING', 'SERVING', 'SERVING']);
  });

  it('reports readiness NOT_SERVING until the Kubernetes pool has been read, then SERVING', async () => {
    const kube = await new FakeKube().start();
    const modelPod = await new FakePod({}, '127.0.0.2').start();
    kube.upsert('/apis/inference.networking.k8s.io/v1/namespaces/ns/inferencepools', inferencePool('pool', { app: 'vllm' }, [modelPod.port]));
    kube.upsert('/api/v1/namespaces/ns/pods', kubePod('p0', modelPod.host, { app: 'vllm' }));
    // The API server answers no pool or pod request until released: start-up gives up
    // waiting after 10 s and serves. (Objectives and rewrites pass, or it waits 10 s more.)
    const gate = await holdingProxy(kube.port, /\/(inferencepools|pods)\b/);
    cleanup.push(async () => {
      await gate.close();
      await kube.stop();
    });
    // Pushed after the gate's cleanup, so the app stops first.
    const { app } = await setup([modelPod], () => ['--pool-name=pool', '--pool-namespace=ns'], 0, gate.kubeConfig);
    expect(app.datastore.synced).toBe(false);
    const c = healthClient(app.ports.health);
    cleanup.push(async () => c.close());
    expect(await c.check('liveness')).toBe('SERVING');
    expect(await readiness(c)).toEqual(['NOT_SERVING', 'NOT_SERVING', 'NOT_SERVING']);
    gate.release();
    const end = Date.now() + 10_000;
    while ((await c.check('readiness')) !== 'SERVING') {
      if (Date.now() > end) throw new Error('readiness never became SERVING');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await readiness(c)).toEqual(['SERVING', 'SERVING', 'SERVING']);
    expect(app.datastore.list().map((e) => e.key)).toEqual([modelPod.key]);
  }, 30_000);
});

/** An HTTP proxy to the fake API server that holds requests whose path matches `holds` until release(). */
async function holdingProxy(targetPort: number, holds: RegExp): Promise<{ kubeConfig: KubeConfig; release(): void; close(): Promise<void> }> {
  let held: (() => void)[] | undefined = [];
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const up = httpRequest({ host: '127.0.0.1', port: targetPort, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      res.flushHeaders(); // watches: the client counts a watch as started on its headers
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = createServer((req, res) => {
    req.pause();
    if (held && holds.test(req.url ?? '')) held.push(() => forward(req, res));
    else forward(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'gated', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'tester' }],
    contexts: [{ name: 'gated', cluster: 'gated', user: 'tester' }],
    currentContext: 'gated',
  });
  return {
    kubeConfig,
    release() {
      const waiting = held ?? [];
      held = undefined;
      for (const go of waiting) go();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('operator certificate', () => {
  it('serves the certificate from --cert-path (tls.crt, tls.key) and fails clearly when it is missing', async () => {
    const { loadTlsMaterial } = await import('../src/tls.ts');
    const made = await loadTlsMaterial('');
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-cert-'));
    writeFileSync(join(dir, 'tls.crt'), made.cert);
    writeFileSync(join(dir, 'tls.key'), made.key);
    const pod = new FakePod();
    const { app, client } = await setup([pod], () => [`--endpoints=${pod.key}`, '--secure-serving', `--cert-path=${dir}`]);
    expect(app.certPem?.equals(made.cert)).toBe(true);
    const r = await client.send({ body });
    expect(r.violations).toEqual([]);
    expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(pod.key);
    await expect(loadTlsMaterial(join(dir, 'nope'))).rejects.toThrow(/cannot read tls.crt and tls.key/);
  });
});
