// --workers: request workers on one port, sharing routing state. Sixteen
// gateway connections (each its own HTTP/2 connection, as Envoy's worker
// threads open them) spread over two workers; a conversation's prefix stays on
// its pod whichever worker decides; a worker that dies is restarted while the
// other keeps serving; /metrics adds the workers' series up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';

const SYSTEM = 'You are a support agent for ACME. Follow the policy below exactly. '.repeat(120);
const chat = (system: string, question: string) => JSON.stringify({ model: 'llama', messages: [{ role: 'system', content: system }, { role: 'user', content: question }] });

type Json = { name: string; values: { value: number; labels: Record<string, string> }[] }[];
const total = (json: Json, name: string) => (json.find((m) => m.name === name)?.values ?? []).reduce((a, v) => a + v.value, 0);

describe('--workers=2', () => {
  const pods = [new FakePod(), new FakePod(), new FakePod(), new FakePod()];
  let app: App;
  let clients: EnvoyClient[];

  beforeAll(async () => {
    await Promise.all(pods.map((p) => p.start()));
    ({ app } = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, '--fallback-endpoints=0', '--workers=2']));
    clients = Array.from({ length: 16 }, () => new EnvoyClient(`127.0.0.1:${app.ports.grpc}`, { ownConnection: true }));
    await waitFor(() => app.datastore.list().every((e) => e.metrics !== undefined));
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await app.stop(100, 0);
    await Promise.all(pods.map((p) => p.stop()));
  });

  const route = async (client: EnvoyClient, body: string) => {
    const r = await client.send({ path: '/v1/chat/completions', body });
    expect(r.violations).toEqual([]);
    return r.setHeaders.get('x-gateway-destination-endpoint')!;
  };
  /** Each worker's metrics, as the control thread collects them for /metrics. */
  const perWorker = async () => (await app.workers!.collectMetrics()) as Json[];

  it('serves ext_proc from both workers on one port', async () => {
    expect(app.workers!.listening).toBe(2);
    for (const c of clients) expect(pods.map((p) => p.key)).toContain(await route(c, chat(`unique ${Math.random()}`, 'hi')));
    const byWorker = (await perWorker()).map((j) => total(j, 'llm_d_epp_request_total'));
    expect(byWorker).toHaveLength(2);
    // The kernel spread the 16 connections over both workers.
    for (const n of byWorker) expect(n).toBeGreaterThan(0);
    expect(byWorker[0] + byWorker[1]).toBe(16);
  });

  it('keeps a shared prefix on one pod whichever worker decides', async () => {
    const sizes = async () => (await perWorker()).map((j) => total(j, 'llm_d_epp_prefix_indexer_size'));
    const first = await route(clients[0], chat(SYSTEM, 'How do I reset my password?'));
    for (let i = 1; i < clients.length; i++) {
      // Both workers' indexes hold the same blocks before the next decision.
      const end = Date.now() + 5000;
      for (;;) {
        const s = await sizes();
        if (s.length === 2 && s[0] === s[1] && s[0] > 0) break;
        if (Date.now() > end) throw new Error(`prefix indexes did not converge: ${s.join(' vs ')}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(await route(clients[i], chat(SYSTEM, `Question ${i}: where is my order?`))).toBe(first);
    }
  });

  it('adds the workers up in /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`)).text();
    const routed = [...text.matchAll(/^llm_d_epp_request_total\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(routed).toBe(32);
    // Pool gauges once (the control thread's), not once per thread.
    expect(text.match(/^llm_d_epp_ready_endpoints\{name="llm-epp"\} (\d+)$/m)?.[1]).toBe('4');
    expect(text).toMatch(/^llm_epp_workers\{state="listening"\} 2$/m);
  });

  it('restarts a worker that dies while the other keeps serving', async () => {
    await app.workers!.kill(0);
    // Every connection gets an answer: those on the dead worker reconnect to a live one.
    for (const c of clients) {
      let dest: string | undefined;
      for (let attempt = 0; attempt < 3 && !dest; attempt++) dest = await route(c, chat(`after ${Math.random()}`, 'hi')).catch(() => undefined);
      expect(pods.map((p) => p.key)).toContain(dest);
    }
    await waitFor(() => app.workers!.listening === 2, 10_000);
    const text = await (await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`)).text();
    expect(text).toMatch(/^llm_epp_worker_restarts_total 1$/m);
    expect(app.health.ready).toBe(true);
  });
});
