// Who can reach what: /metrics behind a bearer token (a token file, or the
// Kubernetes TokenReview + SubjectAccessReview APIs), the health and metrics
// servers bound to one address, and config inputs capped in size.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { startTestApp } from './helpers/app-harness.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { healthClient } from './helpers/health-client.ts';

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function start(flags: string[], kubeConfig?: unknown): Promise<App> {
  const pod = new FakePod();
  await pod.start();
  const { app, client } = await startTestApp([`--endpoints=${pod.key}`, ...flags], { kubeConfig });
  cleanup.push(async () => {
    client.close();
    await app.stop(100);
    await pod.stop();
  });
  return app;
}

const scrape = (app: App, token?: string, host = '127.0.0.1') =>
  fetch(`http://${host}:${app.ports.metrics}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} }).then((r) => r.status);

describe('--metrics-endpoint-auth', () => {
  it('with a token file: 401 without or with a wrong token, 200 with one of the file\'s tokens; a rotated file takes effect', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-auth-'));
    const file = join(dir, 'tokens');
    writeFileSync(file, '# scrapers\nprometheus-token\nother-token\n');
    const app = await start(['--metrics-endpoint-auth', `--metrics-endpoint-auth-token-file=${file}`]);
    expect(await scrape(app)).toBe(401);
    expect(await scrape(app, 'wrong')).toBe(401);
    expect(await scrape(app, 'prometheus-token')).toBe(200);
    expect(await scrape(app, 'other-token')).toBe(200);
    await new Promise((r) => setTimeout(r, 20)); // a new mtime
    writeFileSync(file, 'rotated-token\n');
    expect(await scrape(app, 'prometheus-token')).toBe(401);
    expect(await scrape(app, 'rotated-token')).toBe(200);
  });

  it('without a token file: TokenReview authenticates, SubjectAccessReview authorizes get /metrics; the API down is a 500', async () => {
    const seen: { kind: string; spec: Record<string, unknown> }[] = [];
    const api: Server = createServer((req, res) => {
      let text = '';
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        const obj = JSON.parse(text) as { kind: string; spec: { token?: string; user?: string; nonResourceAttributes?: { path: string; verb: string } } };
        seen.push(obj);
        res.setHeader('content-type', 'application/json');
        if (req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
          const users: Record<string, string> = { good: 'system:serviceaccount:monitoring:prometheus', nosy: 'system:serviceaccount:default:nosy' };
          const user = users[obj.spec.token ?? ''];
          res.end(JSON.stringify({ ...obj, status: user ? { authenticated: true, user: { username: user, groups: ['system:serviceaccounts'] } } : { authenticated: false } }));
        } else if (req.url === '/apis/authorization.k8s.io/v1/subjectaccessreviews') {
          const a = obj.spec.nonResourceAttributes;
          const allowed = obj.spec.user === 'system:serviceaccount:monitoring:prometheus' && a?.path === '/metrics' && a.verb === 'get';
          res.end(JSON.stringify({ ...obj, status: { allowed } }));
        } else {
          res.statusCode = 404;
          res.end('{}');
        }
      });
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => api.close(() => r())));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${(api.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'epp' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'epp' }],
      currentContext: 'fake',
    });
    const app = await start(['--metrics-endpoint-auth'], kc);
    expect(await scrape(app)).toBe(401);
    expect(await scrape(app, 'bad')).toBe(401);
    expect(await scrape(app, 'nosy')).toBe(403);
    expect(await scrape(app, 'good')).toBe(200);
    const reviews = seen.length;
    expect(await scrape(app, 'good')).toBe(200);
    expect(seen.length).toBe(reviews); // cached
    expect(seen.find((s) => s.kind === 'SubjectAccessReview')?.spec).toMatchObject({ nonResourceAttributes: { path: '/metrics', verb: 'get' } });
    api.closeAllConnections();
    await new Promise<void>((r) => api.close(() => r()));
    expect(await scrape(app, 'unseen-token')).toBe(500);
  });
});

describe('bind addresses', () => {
  it('--grpc-health-bind-address and --metrics-bind-address listen on that address only', async () => {
    const app = await start(['--grpc-health-bind-address=127.0.0.2', '--metrics-bind-address=127.0.0.3']);
    expect(await scrape(app, undefined, '127.0.0.3')).toBe(200);
    await expect(scrape(app, undefined, '127.0.0.1')).rejects.toThrow();
    const h = healthClient(app.ports.health);
    await expect(h.check('liveness')).rejects.toThrow();
    h.close();
    const h2 = healthClient(app.ports.health, '127.0.0.2');
    expect(await h2.check('liveness')).toBe('SERVING');
    h2.close();
  });
});

describe('config size', () => {
  it('refuses a --config-file or --config-text over --max-config-bytes before parsing it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-cfg-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n' + '#'.repeat(4096) + '\n');
    await expect(start([`--config-file=${file}`, '--max-config-bytes=1Ki'])).rejects.toThrow(/larger than --max-config-bytes/);
    await expect(start(['--config-text=' + 'x'.repeat(2048), '--max-config-bytes=1Ki'])).rejects.toThrow(/larger than --max-config-bytes/);
  });
});
