// The benchmark gateway: Envoy's job with an EPP (ext_proc in full duplex,
// destination header, fallback walk, response through the EPP), and the
// baselines without one.
import { EventEmitter } from 'node:events';
import { Server as GrpcServer, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { createServer, type Server } from 'node:http';
import type { ClientHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EppStream } from '../bench/gateway/epp-channel.ts';
import { encodeBody, encodeHeaders, readStreamedBody } from '../bench/gateway/ext-proc-wire.ts';
import { GatewayError, startGateway, type GatewayStats } from '../bench/gateway/gateway.ts';
import { continueResponse, header, immediateResponse, requestHeadersResponse, streamedBody, type ProcessingRequest, type ProcessingResponse } from '../src/extproc/messages.ts';
import { decodeRequest, encodeResponse, externalProcessorService } from '../src/extproc/proto.ts';
import { buildReport } from '../bench/load/report.ts';
import { runStages } from '../bench/load/runner.ts';
import { DROPPED_REASON_HEADER } from '../src/errors.ts';
import { FAIRNESS_HEADER, OBJECTIVE_HEADER, makeWorkload } from '../bench/load/workloads.ts';
import { startTestApp } from './helpers/app-harness.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { startSimPod } from '../bench/sim/server.ts';

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

/** A pod that serves a vLLM metrics page and answers completions, recording the bodies it got. */
async function completionsPod(): Promise<{ key: string; bodies: Buffer[]; close: () => Promise<void> }> {
  const page = new FakePod().page();
  const bodies: Buffer[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/metrics') return void res.writeHead(200).end(page);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true,"usage":{"prompt_tokens":1,"completion_tokens":1}}');
    });
  });
  const port = await listen(server, '127.0.0.1');
  return {
    key: `127.0.0.1:${port}`,
    bodies,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('benchmark gateway: TLS to the EPP, large bodies, its own stats', () => {
  it('talks TLS to an llm-epp with a self-signed certificate, verified with --epp-ca, and carries a 300 KB body intact', async () => {
    const pod = await completionsPod();
    const { app } = await startTestApp([`--endpoints=${pod.key}`, '--secure-serving=true'], { waitReady: 1 });
    cleanup.push(async () => {
      await app.stop(100);
      await pod.close();
    });
    // Unverified certificate: refused with the way out.
    await expect(startGateway({ strategy: 'epp', epp: `127.0.0.1:${app.ports.grpc}`, eppTls: {} })).rejects.toThrow(/cannot verify.*--epp-ca/);
    await expect(startGateway({ strategy: 'epp', epp: `127.0.0.1:${app.ports.grpc}` })).rejects.toThrow(GatewayError);
    const gw = await startGateway({ strategy: 'epp', epp: `127.0.0.1:${app.ports.grpc}`, eppTls: { ca: app.certPem } });
    cleanup.push(() => gw.stop());
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'long '.repeat(60_000) }));
    const res = await fetch(`http://127.0.0.1:${gw.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true });
    expect(res.headers.get('x-llm-epp-endpoint')).toBe(pod.key);
    expect(pod.bodies).toHaveLength(1);
    expect(pod.bodies[0].equals(body)).toBe(true);
  });

  it('answers GET /gateway/stats with its requests, errors, CPU and event-loop lag', async () => {
    const pod = await completionsPod();
    const dead = createServer();
    const deadPort = await listen(dead, '127.0.0.1');
    await new Promise<void>((r) => dead.close(() => r()));
    const gw = await startGateway({ strategy: 'round-robin', endpoints: [pod.key, `127.0.0.1:${deadPort}`] });
    const only = await startGateway({ strategy: 'round-robin', endpoints: [`127.0.0.1:${deadPort}`] });
    cleanup.push(async () => {
      await gw.stop();
      await only.stop();
      await pod.close();
    });
    for (let i = 0; i < 4; i++) expect((await fetch(`http://127.0.0.1:${gw.port}/v1/completions`, { method: 'POST', body: '{}' })).status).toBe(200); // the dead one is walked past
    const failed = await fetch(`http://127.0.0.1:${only.port}/v1/completions`, { method: 'POST', body: '{}' });
    expect(failed.status).toBe(502);
    expect(((await failed.json()) as { error: { type: string } }).error.type).toBe('gateway_error');
    const stats = (await (await fetch(`http://127.0.0.1:${gw.port}/gateway/stats`)).json()) as GatewayStats;
    expect(stats).toMatchObject({ requests: 4, errors: 0, inFlight: 0 });
    expect(stats.cpuMs).toBeGreaterThan(0);
    expect(Object.keys(stats.loopLag).sort()).toEqual(['count', 'maxMs', 'p50Ms', 'p99Ms']);
    expect(stats.loopLag.p99Ms).toBeGreaterThanOrEqual(stats.loopLag.p50Ms);
    expect(only.stats()).toMatchObject({ requests: 1, errors: 1 });
  });
});

describe('benchmark gateway: ext_proc on the wire', () => {
  const unframe = (bufs: Buffer[]) => {
    const all = Buffer.concat(bufs);
    expect(all[0]).toBe(0);
    expect(all.readUInt32BE(1)).toBe(all.length - 5);
    return decodeRequest(all.subarray(5));
  };

  it('hand-encoded requests decode to what they say', () => {
    const h = unframe([encodeHeaders('request', { pairs: [':method', 'POST', 'x-cafe', 'caf\u00e9'], endOfStream: false, protocolConfig: true })]);
    expect(h.request_headers!.headers!.headers!.map((v) => [v.key, Buffer.from(v.raw_value!).toString('latin1')])).toEqual([
      [':method', 'POST'],
      ['x-cafe', 'caf\u00e9'], // a value's bytes as they came (latin1 is byte for byte)
    ]);
    expect(h.request_headers!.end_of_stream).toBe(false);
    expect(h.protocol_config).toMatchObject({ request_body_mode: 4, response_body_mode: 4 });
    const r = unframe([encodeHeaders('response', { pairs: [':status', '200'], endOfStream: true, served: '10.0.0.1:8000' })]);
    expect(r.response_headers!.end_of_stream).toBe(true);
    expect(r.metadata_context!.filter_metadata!['envoy.lb'].fields!['x-gateway-destination-endpoint-served'].stringValue).toBe('10.0.0.1:8000');
    for (const size of [0, 10, 70_000]) {
      for (const eos of [false, true]) {
        const chunk = Buffer.alloc(size, 7);
        const b = unframe(encodeBody('response', size ? chunk : undefined, eos));
        expect(Buffer.from(b.response_body!.body ?? [])).toEqual(chunk);
        expect(b.response_body!.end_of_stream ?? false).toBe(eos);
      }
    }
    // A large chunk is sent as it is, not copied.
    const big = Buffer.alloc(70_000);
    expect(encodeBody('request', big, true)).toContain(big);
  });

  it('reads streamed body replies without a decoder, and leaves every other reply to it', () => {
    for (const [which, kind] of [['request', 'request_body'], ['response', 'response_body']] as const) {
      const body = Buffer.from('{"x":1}');
      expect(readStreamedBody(encodeResponse(streamedBody(kind, body, true)))).toEqual({ which, body, endOfStream: true });
      expect(readStreamedBody(encodeResponse(streamedBody(kind, Buffer.alloc(0), false)))).toEqual({ which, body: Buffer.alloc(0), endOfStream: false });
    }
    expect(readStreamedBody(encodeResponse(requestHeadersResponse([header('x-gateway-destination-endpoint', 'a:1')], undefined)))).toBeUndefined();
    expect(readStreamedBody(encodeResponse(continueResponse('response_body')))).toBeUndefined();
  });

  it('reassembles gRPC messages split anywhere across DATA chunks', () => {
    const messages = [Buffer.alloc(0), Buffer.from('abc'), Buffer.alloc(100_000, 1), Buffer.from('z')];
    const wire = Buffer.concat(
      messages.flatMap((m) => {
        const prefix = Buffer.alloc(5);
        prefix.writeUInt32BE(m.length, 1);
        return [prefix, m];
      }),
    );
    for (const cut of [1, 2, 3, 7, 4096, wire.length]) {
      const fake = new EventEmitter() as unknown as ClientHttp2Stream;
      const got: Buffer[] = [];
      let closed: Error | undefined | null = null;
      new EppStream(fake, { onMessage: (m) => got.push(Buffer.from(m)), onClose: (e) => (closed = e) });
      for (let i = 0; i < wire.length; i += cut) (fake as unknown as EventEmitter).emit('data', wire.subarray(i, i + cut));
      (fake as unknown as EventEmitter).emit('trailers', { 'grpc-status': '0' });
      (fake as unknown as EventEmitter).emit('close');
      expect(got, `cut ${cut}`).toEqual(messages);
      expect(closed).toBeUndefined();
    }
  });
});

describe('benchmark gateway: oracle and EPP replicas', () => {
  it('oracle: sends a prompt to the pod whose cache holds it, whatever the order of the pods', async () => {
    const pods = await Promise.all([0, 1, 2].map(() => startSimPod({ model: 'm', timeScale: 0.02 })));
    const gw = await startGateway({ strategy: 'oracle', endpoints: pods.map((p) => `127.0.0.1:${p.port}`) });
    cleanup.push(async () => {
      await gw.stop();
      for (const p of pods) await p.close();
    });
    const prompt = 'A long shared system prompt about routing. '.repeat(40);
    const body = JSON.stringify({ model: 'm', prompt, max_tokens: 1 });
    // Warm pod 2 directly, not through the gateway.
    const warm = await fetch(`http://127.0.0.1:${pods[2].port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(warm.status).toBe(200);
    await warm.arrayBuffer();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`http://127.0.0.1:${gw.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      expect(res.headers.get('x-llm-epp-endpoint')).toBe(`127.0.0.1:${pods[2].port}`);
    }
    // A pod that cannot answer the oracle's question ranks last; the request still goes through.
    await pods[2].close();
    const res = await fetch(`http://127.0.0.1:${gw.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(res.headers.get('x-llm-epp-endpoint')).not.toBe(`127.0.0.1:${pods[2].port}`);
  });

  it('spreads ext_proc streams over several EPP replicas in turn', async () => {
    const pod = await startSimPod({ model: 'm', timeScale: 0.02 });
    const apps = await Promise.all([0, 1].map(() => startTestApp([`--endpoints=127.0.0.1:${pod.port}`], { waitReady: 1 })));
    const gw = await startGateway({ strategy: 'epp', epp: apps.map(({ app }) => `127.0.0.1:${app.ports.grpc}`).join(',') });
    cleanup.push(async () => {
      await gw.stop();
      for (const { app } of apps) await app.stop(100);
      await pod.close();
    });
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`http://127.0.0.1:${gw.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: `hello ${i}`, max_tokens: 1 }) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const handled = await Promise.all(apps.map(async ({ app }) => (await app.metrics.requestTotal.get()).values.reduce((n, v) => n + v.value, 0)));
    expect(handled).toEqual([2, 2]);
  });

  it('refuses a malformed replica address', async () => {
    await expect(startGateway({ strategy: 'epp', epp: '127.0.0.1:1,nonsense' })).rejects.toThrow(/--epp must be host:port/);
  });
});

describe('benchmark gateway: tenants and the EPP\'s immediate answers', () => {
  /**
   * An ext_proc server that answers every request's headers at once: 429 with
   * x-llm-d-request-dropped-reason for fairness id "noisy", 503 without a reason otherwise,
   * keeping the request headers it was sent.
   */
  async function sheddingEpp(seen: Array<Map<string, string>>): Promise<{ port: number; stop: () => Promise<void> }> {
    const server = new GrpcServer();
    server.addService(externalProcessorService, {
      process: (call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
        call.on('data', (m: ProcessingRequest) => {
          const hs = m.request_headers?.headers?.headers;
          if (!hs) return;
          const headers = new Map(hs.map((h) => [h.key, h.raw_value ? Buffer.from(h.raw_value).toString('latin1') : (h.value ?? '')]));
          seen.push(headers);
          const noisy = headers.get(FAIRNESS_HEADER) === 'noisy';
          const extra: Array<[string, string]> = noisy ? [[DROPPED_REASON_HEADER, 'rejected-saturated']] : [];
          call.write(immediateResponse(noisy ? 429 : 503, Buffer.from('{"error":"shed"}'), 'shed', true, extra));
          call.end();
        });
        call.on('error', () => {});
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    return { port, stop: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
  }

  it("passes the client's tenant headers to the EPP and its 429's dropped reason back; the load generator counts both per tenant", async () => {
    const seen: Array<Map<string, string>> = [];
    const epp = await sheddingEpp(seen);
    const gw = await startGateway({ strategy: 'epp', epp: `127.0.0.1:${epp.port}` });
    cleanup.push(async () => {
      await gw.stop();
      await epp.stop();
    });
    const run = await runStages({
      url: `http://127.0.0.1:${gw.port}`,
      workload: makeWorkload('tenants', {
        tenants: [
          { name: 'quiet', objective: 'critical', rate: 20 },
          { name: 'noisy', objective: 'standard', rate: 40 },
        ],
        promptTokens: 10,
        outputTokens: 2,
      }),
      stages: [{ name: 'tenants', durationMs: 500 }],
      progress: false,
    });
    const records = run.stages[0].records;
    const noisy = records.filter((r) => r.tenant === 'noisy');
    const quiet = records.filter((r) => r.tenant === 'quiet');
    expect(noisy.length).toBeGreaterThan(0);
    expect(quiet.length).toBeGreaterThan(0);
    expect(noisy.every((r) => r.status === 429 && r.droppedReason === 'rejected-saturated' && !r.ok)).toBe(true);
    expect(quiet.every((r) => r.status === 503 && r.droppedReason === undefined)).toBe(true);
    // What the EPP saw: each request with its tenant's fairness id and objective.
    expect(seen).toHaveLength(records.length);
    const pairs = new Set(seen.map((h) => `${h.get(FAIRNESS_HEADER)} ${h.get(OBJECTIVE_HEADER)}`));
    expect([...pairs].sort()).toEqual(['noisy standard', 'quiet critical']);
    const stage = buildReport([run]).stages[0];
    const byName = Object.fromEntries((stage.tenants ?? []).map((t) => [t.tenant, [t.requests, t.completed, t.rejected429, t.otherErrors, t.droppedReasons]]));
    expect(byName).toEqual({
      quiet: [quiet.length, 0, 0, quiet.length, {}],
      noisy: [noisy.length, 0, noisy.length, 0, { 'rejected-saturated': noisy.length }],
    });
  });
});
