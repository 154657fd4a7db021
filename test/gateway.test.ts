// The benchmark gateway: Envoy's job with an EPP (ext_proc in full duplex,
// destination header, fallback walk, response through the EPP), and the
// baselines without one.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway } from '../bench/gateway/gateway.ts';
import { startTestApp } from './helpers/app-harness.ts';
import { FakePod } from './helpers/fake-pod.ts';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

function listen(server: Server, host: string, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** An OpenAI-ish upstream: SSE with a pause between chunks, or JSON. */
function upstream(name: string, seen: string[]): Server {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push(body);
      const stream = JSON.parse(body || '{}').stream === true;
      if (!stream) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pod: name, usage: { prompt_tokens: 1, completion_tokens: 1 } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: {"pod":"${name}","choices":[{"delta":{"content":"a"}}]}\n\n`);
      setTimeout(() => {
        res.write('data: [DONE]\n\n');
        res.end();
      }, 150);
    });
  });
}

describe('benchmark gateway', () => {
  it('routes through llm-epp, walks the fallback list on connect failure, and streams the response back through the EPP', async () => {
    // Two "pods" on their own IPs: metrics on one port, completions on another.
    const metrics = [new FakePod({ waiting: 0 }, '127.0.0.2'), new FakePod({ waiting: 5 }, '127.0.0.3')];
    await metrics[0].start();
    const mp = metrics[0].port;
    const seenA: string[] = [];
    const seenB: string[] = [];
    const a = upstream('a', seenA);
    const b = upstream('b', seenB);
    const cp = await listen(a, '127.0.0.2');
    await listen(b, '127.0.0.3', cp);
    // The second metrics server must share the first's port number.
    const m1 = createServer((_req, res) => res.writeHead(200).end(metrics[1].page()));
    await listen(m1, '127.0.0.3', mp);
    const { app } = await startTestApp(
      [`--endpoints=127.0.0.2:${cp},127.0.0.3:${cp}`, `--model-server-metrics-port=${mp}`, '--fallback-endpoints=1'],
      { waitReady: 2 },
    );
    const gw = await startGateway({ strategy: 'epp', epp: `127.0.0.1:${app.ports.grpc}` });
    cleanup.push(async () => {
      await gw.stop();
      await app.stop(100);
      await metrics[0].stop();
      for (const s of [a, b, m1]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    });
    const url = `http://127.0.0.1:${gw.port}/v1/completions`;
    const body = JSON.stringify({ model: 'm', prompt: 'hello', stream: true });

    // Streaming: the first SSE chunk arrives before the upstream finishes.
    const t0 = performance.now();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-llm-epp-endpoint')).toBe(`127.0.0.2:${cp}`); // the shorter queue
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const tFirst = performance.now() - t0;
    expect(first).toContain('"pod":"a"');
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('[DONE]');
    expect(performance.now() - t0 - tFirst).toBeGreaterThan(100); // the rest came later: not buffered
    expect(seenA).toEqual([body]); // the body reached the pod unchanged, via the EPP's echo

    // The primary stops accepting connections: the gateway walks to the fallback.
    a.closeAllConnections();
    await new Promise<void>((r) => a.close(() => r()));
    const res2 = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: 'again' }) });
    expect(res2.status).toBe(200);
    expect(res2.headers.get('x-llm-epp-endpoint')).toBe(`127.0.0.3:${cp}`);
    expect(((await res2.json()) as { pod: string }).pod).toBe("b");
  });

  it('answers the EPP\'s error with its status', async () => {
    const pod = await new FakePod().start();
    const { app } = await startTestApp([`--endpoints=${pod.key}`], { waitReady: 1 });
    const gw = await startGateway({ strategy: 'epp', epp: `127.0.0.1:${app.ports.grpc}` });
    cleanup.push(async () => {
      await gw.stop();
      await app.stop(100);
      await pod.stop();
    });
    const res = await fetch(`http://127.0.0.1:${gw.port}/v1/completions`, { method: 'POST', body: '{"prompt":"no model"}' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain("model");
  });

  it('round-robin and least-request baselines spread requests without an EPP', async () => {
    const seen: string[][] = [[], [], []];
    const servers = seen.map((s, i) => upstream(`u${i}`, s));
    const ports = await Promise.all(servers.map((s) => listen(s, '127.0.0.1')));
    const endpoints = ports.map((p) => `127.0.0.1:${p}`);
    const rr = await startGateway({ strategy: 'round-robin', endpoints });
    const lr = await startGateway({ strategy: 'least-request', endpoints });
    cleanup.push(async () => {
      await rr.stop();
      await lr.stop();
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    });
    for (let i = 0; i < 6; i++) await (await fetch(`http://127.0.0.1:${rr.port}/v1/completions`, { method: 'POST', body: '{}' })).text();
    expect([...rr.served.values()]).toEqual([2, 2, 2]);
    await Promise.all(Array.from({ length: 6 }, () => fetch(`http://127.0.0.1:${lr.port}/v1/completions`, { method: 'POST', body: '{"stream":true}' }).then((r) => r.text())));
    expect([...lr.served.values()].sort()).toEqual([2, 2, 2]);
  });
});
