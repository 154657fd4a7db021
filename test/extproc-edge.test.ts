// ext_proc edge cases driven message by message: observability mode, a local
// reply overtaking the request phase, and the process-wide buffer budget.
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import type { ProcessingRequest, ProcessingResponse } from '../src/extproc/messages.ts';
import { ExternalProcessorClient } from '../bench/lib/ext-proc-client.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';

type Stream = ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

describe('ext_proc edge cases', () => {
  const pod = new FakePod();
  let app: App;
  let client: EnvoyClient;
  let raw: InstanceType<typeof ExternalProcessorClient>;

  beforeAll(async () => {
    await pod.start();
    ({ app, client } = await startTestApp([`--endpoints=${pod.key}`, '--max-request-body-bytes=100Ki', '--max-buffered-request-bytes=150Ki'], { waitReady: 1 }));
    raw = new ExternalProcessorClient(`127.0.0.1:${app.ports.grpc}`, credentials.createInsecure());
  });
  afterAll(async () => {
    raw.close();
    client.close();
    await app.stop(100);
    await pod.stop();
  });

  function open(): { call: Stream; replies: ProcessingResponse[]; ended: Promise<void> } {
    const call = (raw as unknown as { Process(): Stream }).Process();
    const replies: ProcessingResponse[] = [];
    call.on('data', (m: ProcessingResponse) => replies.push(m));
    const ended = new Promise<void>((resolve) => {
      call.on('end', () => resolve());
      call.on('error', () => resolve());
    });
    return { call, replies, ended };
  }

  const headers = (extra: Record<string, unknown> = {}): ProcessingRequest => ({
    request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }] }, end_of_stream: false },
    protocol_config: { request_body_mode: 4, response_body_mode: 4 },
    ...extra,
  });

  it('never replies nor routes in observability mode', async () => {
    const { call, replies, ended } = open();
    call.write({ ...headers(), observability_mode: true });
    call.write({ request_body: { body: Buffer.from('{"model":"m","prompt":"watch only"}'), end_of_stream: true }, observability_mode: true });
    await new Promise((r) => setTimeout(r, 100));
    expect(replies).toEqual([]);
    expect(app.datastore.list()[0].inFlight).toBe(0);
    call.end();
    await ended;
  });

  it('drops a held request when a local reply\'s response headers overtake it', async () => {
    const { call, replies, ended } = open();
    call.write(headers());
    call.write({ request_body: { body: Buffer.from('{"model":"m",'), end_of_stream: false } });
    call.write({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('504') }] }, end_of_stream: true } });
    call.write({ request_body: { body: Buffer.from('"prompt":"late"}'), end_of_stream: true } });
    await new Promise((r) => setTimeout(r, 100));
    expect(replies.map((r) => Object.keys(r).filter((k) => k !== 'response'))).toEqual([['response_headers']]);
    expect(app.datastore.list()[0].inFlight).toBe(0);
    call.end();
    await ended;
  });

  it('answers 429 when held request bytes exceed --max-buffered-request-bytes, and recovers once they are released', async () => {
    const a = open();
    a.call.write(headers());
    a.call.write({ request_body: { body: Buffer.alloc(90 * 1024, 0x20), end_of_stream: false } });
    await new Promise((r) => setTimeout(r, 50));
    const b = open();
    b.call.write(headers());
    b.call.write({ request_body: { body: Buffer.alloc(90 * 1024, 0x20), end_of_stream: false } });
    await b.ended;
    expect(b.replies[0]?.immediate_response?.status.code).toBe(429);
    // The first stream goes away: its bytes are released.
    a.call.cancel();
    await a.ended;
    await waitFor(() => app.bufferBudget.used === 0);
    const ok = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'x'.repeat(80 * 1024) }) });
    expect(ok.immediate).toBeUndefined();
    expect(ok.violations).toEqual([]);
  });
});
