// Endpoint readiness through the real collector: stale and dead pods, an
// empty pool, the endpoints file reloading live, TLS and gRPC health.
import { credentials, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';

const body = JSON.stringify({ model: 'm', prompt: 'hello' });

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(pods: FakePod[], flags: () => string[], waitReady = pods.length): Promise<{ app: App; client: EnvoyClient }> {
  await Promise.all(pods.filter((p) => p.port === 0).map((p) => p.start()));
  const f = flags();
  const started = await startTestApp(f.length ? f : [`--endpoints=${pods.map((p) => p.key).join(',')}`], { waitReady });
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
      '--metrics-scrape-timeout=100ms',
    ]);
    await pods[0].stop(); // dead: connection refused from now on
    pods[1].state.delayMs = 1000; // slow: every scrape times out
    const healthyBefore = pods[2].scrapes;
    await waitFor(() => app.director.candidates(undefined).length === 1);
    // The healthy pod kept being scraped at the normal pace meanwhile.
    expect(pods[2].scrapes - healthyBefore).toBeGreaterThan(5);
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
    const def = loadSync(healthProtoPath, { keepCase: true, enums: String });
    const Health = (loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: ServiceClientConstructor } } } }).grpc.health.v1.Health;
    for (const port of [app.ports.health, app.ports.grpc]) {
      const c = new Health(`127.0.0.1:${port}`, credentials.createInsecure());
      const check = (service: string) =>
        new Promise<string>((resolve, reject) =>
          (c as unknown as { Check(r: object, cb: (e: Error | null, res: { status: string }) => void): void }).Check({ service }, (e, res) =>
            e ? reject(e) : resolve(res.status),
          ),
        );
      expect(await check('liveness')).toBe('SERVING');
      expect(await check('readiness')).toBe('SERVING');
      expect(await check('envoy.service.ext_proc.v3.ExternalProcessor')).toBe('SERVING');
      await expect(check('nope')).rejects.toThrow(/NOT_FOUND|unknown/i);
      c.close();
    }
    app.health.setReady(false);
    expect(app.health.ready).toBe(false);
  });
});

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
