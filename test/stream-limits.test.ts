// What one ext_proc peer can hold, driven message by message over real gRPC:
// idle streams, repeated request headers, one oversized message, too many
// streams, body bytes held by routed requests, idle connections, odd subset
// hints, and a client's model-rewrite header.
import { connect as h2connect } from 'node:http2';
import { credentials, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import type { ProcessingRequest, ProcessingResponse } from '../src/extproc/messages.ts';
import { ExternalProcessorClient } from '../bench/lib/ext-proc-client.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { BUFFERED, type EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';

type Stream = ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

interface Opened {
  call: Stream;
  replies: ProcessingResponse[];
  /** Resolves with the gRPC status the stream ended with (OK when it ended cleanly). */
  ended: Promise<{ code: number; details: string }>;
}

function opener(address: string) {
  const raw = new ExternalProcessorClient(address, credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20 });
  const open = (): Opened => {
    const call = (raw as unknown as { Process(): Stream }).Process();
    const replies: ProcessingResponse[] = [];
    call.on('data', (m: ProcessingResponse) => replies.push(m));
    const ended = new Promise<{ code: number; details: string }>((resolve) => {
      call.on('status', (s: { code: number; details: string }) => resolve({ code: s.code, details: s.details }));
      call.on('error', (e: ServiceError) => resolve({ code: e.code, details: e.details }));
    });
    return { call, replies, ended };
  };
  return { open, close: () => raw.close() };
}

const headers = (opts: { eos?: boolean; mode?: number; extra?: [string, string][] } = {}): ProcessingRequest => ({
  request_headers: {
    headers: { headers: [[':path', '/v1/completions'] as [string, string], ...(opts.extra ?? [])].map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
    end_of_stream: opts.eos ?? false,
  },
  protocol_config: { request_body_mode: opts.mode ?? 4, response_body_mode: 4 },
});
const body = (text: string | Buffer, eos = true): ProcessingRequest => ({ request_body: { body: Buffer.from(text), end_of_stream: eos } });
const totalInFlight = (app: App) => app.datastore.list().reduce((s, e) => s + e.inFlight, 0);
const counter = async (app: App, reason: string) =>
  ((await app.metrics.streamsEnded.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0);

describe('ext_proc stream limits', () => {
  const pod = new FakePod();
  let app: App;
  let client: EnvoyClient;
  let open: () => Opened;
  let closeRaw: () => void;

  beforeAll(async () => {
    await pod.start();
    ({ app, client } = await startTestApp(
      [
        `--endpoints=${pod.key}`,
        '--stream-idle-timeout=300ms',
        '--max-concurrent-streams=20',
        '--max-request-body-bytes=1Mi',
        '--max-buffered-request-bytes=1536Ki',
        '--connection-idle-timeout=400ms',
      ],
      { waitReady: 1 },
    ));
    ({ open, close: closeRaw } = opener(`127.0.0.1:${app.ports.grpc}`));
  });
  afterAll(async () => {
    closeRaw();
    client.close();
    await app.stop(100);
    await pod.stop();
  });
  afterEach(async () => {
    await waitFor(() => app.streams.size === 0 && totalInFlight(app) === 0 && app.bufferBudget.used === 0, 3000);
  });

  it('ends a stream that goes quiet with DEADLINE_EXCEEDED, counted, holding nothing', async () => {
    const before = await counter(app, 'idle_timeout');
    const s = open();
    s.call.write(headers());
    s.call.write(body('{"model":"m","prompt":"never fin', false));
    const st = await s.ended;
    expect(st.code).toBe(status.DEADLINE_EXCEEDED);
    expect(st.details).toMatch(/--stream-idle-timeout/);
    expect(await counter(app, 'idle_timeout')).toBe(before + 1);
    expect(app.bufferBudget.used).toBe(0);
  });

  it('ends a routed stream waiting for a response that never comes, and releases its in-flight count', async () => {
    const s = open();
    s.call.write(headers());
    s.call.write(body('{"model":"m","prompt":"hello"}'));
    await waitFor(() => totalInFlight(app) === 1);
    expect((await s.ended).code).toBe(status.DEADLINE_EXCEEDED);
    expect(totalInFlight(app)).toBe(0);
  });

  it('charges a stream once however often its peer sends request_headers', async () => {
    const streams = Array.from({ length: 10 }, () => open());
    for (const s of streams) {
      s.call.write(headers({ eos: true }));
      s.call.write(headers({ eos: true }));
      s.call.write(headers({ eos: true }));
    }
    const ends = await Promise.all(streams.map((s) => s.ended));
    for (const [i, s] of streams.entries()) {
      expect(ends[i].code).toBe(status.OK);
      // Routed once, then the protocol error: 400.
      expect(s.replies.filter((r) => r.request_headers).length).toBe(1);
      expect(s.replies.at(-1)?.immediate_response?.status.code).toBe(400);
    }
    expect(totalInFlight(app)).toBe(0);
  });

  it('charges a stream once when its peer sends the body first and request_headers after the response (fuzz case 9692)', async () => {
    const s = open();
    s.call.write(body('{"model":"m","prompt":"first"}'));
    s.call.write({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] }, end_of_stream: true } });
    s.call.write(headers({ eos: true }));
    s.call.end();
    await s.ended;
    expect(s.replies.at(-1)?.immediate_response?.status.code).toBe(400);
    await waitFor(() => totalInFlight(app) === 0);
  });

  it('answers one message over the size limit with 413, like a body that grows too large in chunks', async () => {
    const before = await counter(app, 'message_too_large');
    const s = open();
    s.call.write(headers({ mode: BUFFERED }));
    s.call.write(body(JSON.stringify({ model: 'm', prompt: 'x'.repeat(6 << 20) })));
    const st = await s.ended;
    expect(st.code).toBe(status.OK);
    expect(s.replies.at(-1)?.immediate_response?.status.code).toBe(413);
    expect(await counter(app, 'message_too_large')).toBe(before + 1);
    // The connection and the server are fine: the next request routes.
    const ok = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'fine' }) });
    expect(ok.immediate).toBeUndefined();
  });

  it('refuses streams past --max-concurrent-streams with RESOURCE_EXHAUSTED, and accepts again once they end', async () => {
    const held = Array.from({ length: 20 }, () => open());
    for (const s of held) s.call.write(headers());
    await waitFor(() => app.streams.size === 20);
    const extra = open();
    extra.call.write(headers());
    expect((await extra.ended).code).toBe(status.RESOURCE_EXHAUSTED);
    for (const s of held) s.call.cancel();
    await Promise.all(held.map((s) => s.ended));
    await waitFor(() => app.streams.size === 0);
    const ok = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'after' }) });
    expect(ok.immediate).toBeUndefined();
  });

  it('keeps a routed request\'s body bytes counted until it ends: the budget is real', async () => {
    const big = () => JSON.stringify({ model: 'm', prompt: 'y'.repeat(900 * 1024) });
    const a = open();
    a.call.write(headers());
    a.call.write(body(big()));
    await waitFor(() => totalInFlight(app) === 1);
    expect(app.bufferBudget.used).toBeGreaterThan(900 * 1024);
    const b = open();
    b.call.write(headers());
    b.call.write(body(big()));
    await b.ended;
    expect(b.replies.at(-1)?.immediate_response?.status.code).toBe(429);
    a.call.end();
    await a.ended;
    await waitFor(() => app.bufferBudget.used === 0);
  });

  it('closes an HTTP/2 connection that opens no stream', async () => {
    const session = h2connect(`http://127.0.0.1:${app.ports.grpc}`);
    const closed = new Promise<number>((resolve) => {
      const t0 = Date.now();
      session.on('close', () => resolve(Date.now() - t0));
      session.on('error', () => undefined);
    });
    const ms = await closed;
    expect(ms).toBeLessThan(3000);
  });

  it('reads a subset hint that is not a list (number, bool, struct, null) as no restriction, as llm-d Router', async () => {
    for (const v of [{ numberValue: 3 }, { boolValue: true }, { structValue: { fields: {} } }, { nullValue: 0 }]) {
      const s = open();
      s.call.write({ ...headers(), metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': v } } } } });
      s.call.write(body('{"model":"m","prompt":"p"}'));
      await waitFor(() => s.replies.length > 0);
      expect(s.replies[0].immediate_response, JSON.stringify(v)).toBeUndefined();
      s.call.end();
      await s.ended;
    }
    // A list of addresses none of which is in the pool: no candidate, 503.
    const s = open();
    s.call.write({
      ...headers(),
      metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': { listValue: { values: [{ stringValue: '10.9.9.9:1' }] } } } } } },
    });
    s.call.write(body('{"model":"m","prompt":"p"}'));
    await s.ended;
    expect(s.replies.at(-1)?.immediate_response?.status.code).toBe(503);
  });

  it('forwards the body unchanged when a client sends a model-rewrite header (not allowed by default)', async () => {
    const text = '{"model":"tenant-allowed-model","prompt":"p"}';
    const r = await client.send({ body: text, headers: { 'x-gateway-model-name-rewrite': 'restricted-model', 'x-llm-d-model-name-rewrite': 'restricted-model' } });
    expect(r.immediate).toBeUndefined();
    expect(r.echoedBody.toString()).toBe(text);
  });
});
