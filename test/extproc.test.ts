// The ext_proc server end to end: an Envoy-emulating client against the real
// server and small fake vLLM pods serving real metric pages.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { parsePrometheusText, type Sample } from '../src/metrics/prom-text.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { BUFFERED, EnvoyClient, metadataDestination, type EnvoyResult } from './helpers/envoy-client.ts';
import { settled, startTestApp, waitFor } from './helpers/app-harness.ts';

const chat = (model = 'llama', content = 'hello there') =>
  JSON.stringify({ model, messages: [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content }] });

function destination(r: EnvoyResult): string | undefined {
  return r.setHeaders.get('x-gateway-destination-endpoint');
}

/** The destination lists every pod once (primary and two fallbacks, whatever their order). */
function expectAllPods(r: EnvoyResult, pods: readonly { key: string }[]): void {
  expect(destination(r)?.split(',').sort()).toEqual(pods.map((p) => p.key).sort());
}

function expectClean(r: EnvoyResult): void {
  expect(r.violations).toEqual([]);
  expect(r.headerValueErrors).toEqual([]);
}

describe('ext_proc server against fake pods', () => {
  // Distinct loopback IPs so that the subset hint (matched by IP) can tell pods apart.
  const pods = [new FakePod({ waiting: 5 }, '127.0.0.2'), new FakePod({ waiting: 0 }, '127.0.0.3'), new FakePod({ waiting: 2 }, '127.0.0.4')];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    await Promise.all(pods.map((p) => p.start()));
    ({ app, client } = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, '--max-request-body-bytes=1Mi'], { waitReady: 3 }));
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await Promise.all(pods.map((p) => p.stop()));
  });

  it('answers with the destination in the header and identical envoy.lb metadata, then echoes the body byte for byte', async () => {
    const body = chat();
    const r = await client.send({ path: '/v1/chat/completions', body, headers: { 'x-request-id': 'abc', 'x-custom': 'kept' } });
    expectClean(r);
    expect(r.immediate).toBeUndefined();
    const dest = destination(r);
    expect(dest).toBeDefined();
    expect(metadataDestination(r.dynamicMetadata)).toBe(dest);
    expect(r.clearRouteCache).toBe(true);
    expect(r.setHeaders.get('content-length')).toBe(String(Buffer.byteLength(body)));
    expect(r.setHeaders.get('x-custom')).toBe('kept');
    expect(r.setHeaders.has(':path')).toBe(false);
    expect(r.setHeaders.has('x-request-id')).toBe(false); // present already: not regenerated
    expect(r.echoedBody.equals(Buffer.from(body))).toBe(true);
  });

  it('echoes a non-canonical JSON body as exactly the bytes received, even split inside characters', async () => {
    // Whitespace, key order, \u escapes and a number form that JSON.stringify would all change.
    const text =
      '{\n  "messages" : [ { "content":"caf\\u00e9 \\u00E9t\\u00e9 — 日本語 🙂" , "role":"user" } ],\r\n\t"max_tokens": 1.50e1,' +
      '  "model" :"m",\n  "temperature":0.10 }\n  ';
    const body = Buffer.from(text, 'utf8');
    expect(Buffer.from(JSON.stringify(JSON.parse(text))).equals(body)).toBe(false); // re-serialising would show
    const ja = body.indexOf(Buffer.from('日'));
    const emoji = body.indexOf(Buffer.from('🙂'));
    const r = await client.send({ path: '/v1/chat/completions', body, splitAt: [ja + 1, ja + 2, emoji + 3, body.length - 1] });
    expectClean(r);
    expect(r.immediate).toBeUndefined();
    expect(r.echoedBody.equals(body)).toBe(true);
    expect(r.setHeaders.get('content-length')).toBe(String(body.length));
  });

  it('holds every reply until the body has ended (FULL_DUPLEX_STREAMED)', async () => {
    const body = chat('hold-model');
    // Headers and all chunks but the last, then 100 ms of silence from llm-epp.
    const r = await client.send({ path: '/v1/chat/completions', body, splitAt: [20, 40], holdCheckMs: 100 });
    expect(r.repliesBeforeBodyEnd).toBe(0);
    expectClean(r);
    expect(r.messages[0].request_headers).toBeDefined();
    expectAllPods(r, pods);
    expect(r.echoedBody.equals(Buffer.from(body))).toBe(true);
    // With trailers: the whole body sent, end_of_stream never set; the trailers end it.
    const t = await client.send({ body: JSON.stringify({ model: 'hold-model', prompt: 'x' }), trailers: { 'x-t': '1' }, holdCheckMs: 100 });
    expect(t.repliesBeforeBodyEnd).toBe(0);
    expectClean(t);
    expectAllPods(t, pods);
  });

  it('orders the fallback list by queue: primary first, then next-best distinct pods', async () => {
    await settled(app);
    const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'hi' }) });
    expectClean(r);
    // waiting: .3 → 0, .4 → 2, .2 → 5
    expect(destination(r)).toBe([pods[1].key, pods[2].key, pods[0].key].join(','));
  });

  it('generates x-request-id when absent', async () => {
    const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'hi' }) });
    expect(r.setHeaders.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('echoes a large body in chunks of at most 62,000 bytes, split anywhere, even inside UTF-8 characters', async () => {
    const text = '日本語のテキスト🙂 '.repeat(20_000); // multi-byte characters throughout
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: text }));
    expect(body.length).toBeGreaterThan(300_000);
    const splitAt: number[] = [];
    for (let at = 1; at < body.length; at += 7919) splitAt.push(at); // odd prime stride: lands inside characters
    const r = await client.send({ body, splitAt });
    expectClean(r);
    expect(r.immediate).toBeUndefined();
    expect(r.echoedBody.equals(body)).toBe(true);
    expect(Math.max(...r.echoedChunkSizes)).toBeLessThanOrEqual(62_000);
    // Echoed as it arrived (views of the received chunks, no copy): one reply per chunk.
    expect(r.echoedChunkSizes.length).toBe(splitAt.length + 1);
  });

  it('answers a headers-only request (GET /v1/models) at once', async () => {
    const r = await client.send({ method: 'GET', path: '/v1/models' });
    expectClean(r);
    expectAllPods(r, pods);
    expect(metadataDestination(r.dynamicMetadata)).toBe(destination(r));
    expect(r.messages.length).toBe(1);
  });

  it('honours the subset hint, matching by IP', async () => {
    const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'x' }), subset: [`127.0.0.2:1`] });
    expectClean(r);
    expect(destination(r)).toBe(pods[0].key);
    const two = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'x' }), subset: [pods[0].key, pods[2].key] });
    expect(destination(two)).toBe(`${pods[2].key},${pods[0].key}`);
  });

  it('answers 503 for an empty subset hint or one with no eligible pod', async () => {
    for (const subset of [[], ['10.9.9.9:8000']]) {
      const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'x' }), subset });
      expect(r.immediate?.status).toBe(503);
      expect(JSON.parse(r.immediate!.body).error.code).toBe(503);
    }
  });

  it.each([
    ['not JSON', '{"model": "m", "prompt": ', 'not valid JSON'],
    ['a JSON array', '[1,2]', 'JSON object'],
    ['no model', '{"prompt":"hi"}', '"model"'],
    ['no prompt', '{"model":"m"}', '"prompt"'],
  ])('answers 400 in OpenAI error shape for %s', async (_name, body, message) => {
    const r = await client.send({ body });
    expect(r.immediate?.status).toBe(400);
    expect(r.immediate?.headers.get('content-type')).toBe('application/json');
    const err = JSON.parse(r.immediate!.body).error;
    expect(err.type).toBe('invalid_request_error');
    expect(err.message).toContain(message);
    expect(r.echoedBody.length).toBe(0);
  });

  it('answers 400 for chat without messages and for a body that is not UTF-8', async () => {
    const r = await client.send({ path: '/v1/chat/completions', body: '{"model":"m"}' });
    expect(r.immediate?.status).toBe(400);
    expect(JSON.parse(r.immediate!.body).error.param).toBe('messages');
    const bad = Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const r2 = await client.send({ body: bad });
    expect(r2.immediate?.status).toBe(400);
    expect(r2.immediate?.body).toContain('UTF-8');
  });

  it('writes the ImmediateResponse content-type in the header field the request used', async () => {
    const v = await client.send({ body: '{"prompt":"hi"}', useValue: true });
    expect(v.immediate?.status).toBe(400);
    expect(v.immediate?.headerFields.get('content-type')).toBe('value');
    expect(v.immediate?.headers.get('content-type')).toBe('application/json');
    expect(v.headerValueErrors).toEqual([]);
    const raw = await client.send({ body: '{"prompt":"hi"}' });
    expect(raw.immediate?.headerFields.get('content-type')).toBe('raw_value');
    expect(raw.immediate?.headers.get('content-type')).toBe('application/json');
  });

  it('labels request errors with the model once the body has named it (400 after the model, 503)', async () => {
    const errors = async (labels: Record<string, string>) => sample(await scrape(app), 'inference_objective_request_error_total', labels) ?? 0;
    const unlabelled = await errors({ model_name: '', error_code: 'BadRequest' });
    const chatNoMessages = await client.send({ path: '/v1/chat/completions', body: '{"model":"err-400-model"}' });
    expect(chatNoMessages.immediate?.status).toBe(400);
    const noPrompt = await client.send({ body: '{"model":"err-400-model"}' });
    expect(noPrompt.immediate?.status).toBe(400);
    const unavailable = await client.send({ body: JSON.stringify({ model: 'err-503-model', prompt: 'x' }), subset: [] });
    expect(unavailable.immediate?.status).toBe(503);
    expect(await errors({ model_name: 'err-400-model', target_model_name: 'err-400-model', error_code: 'BadRequest' })).toBe(2);
    expect(await errors({ model_name: 'err-503-model', target_model_name: 'err-503-model', error_code: 'ServiceUnavailable' })).toBe(1);
    expect(await errors({ model_name: '', error_code: 'BadRequest' })).toBe(unlabelled);
    // A body that names no model still counts, under "".
    await client.send({ body: '{"prompt":"hi"}' });
    expect(await errors({ model_name: '', error_code: 'BadRequest' })).toBe(unlabelled + 1);
  });

  it('answers 413 when the body exceeds --max-request-body-bytes, without waiting for the rest', async () => {
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'a'.repeat(1_200_000) }));
    const r = await client.send({ body, chunkSize: 65_536 });
    expect(r.immediate?.status).toBe(413);
  });

  it('serves BUFFERED mode: headers continue, destination on the body reply, no streamed body', async () => {
    await settled(app);
    const body = chat();
    const r = await client.send({ path: '/v1/chat/completions', body, mode: BUFFERED });
    expectClean(r);
    expect(destination(r)).toBe([pods[1].key, pods[2].key, pods[0].key].join(','));
    expect(metadataDestination(r.dynamicMetadata)).toBe(destination(r));
    expect(r.clearRouteCache).toBe(true);
  });

  it('treats request trailers as the end of the body', async () => {
    const body = JSON.stringify({ model: 'm', prompt: 'with trailers' });
    const r = await client.send({ body, trailers: { 'x-trailer': '1' } });
    expectClean(r);
    expect(r.echoedBody.toString()).toBe(body);
  });

  it('passes an SSE response through chunk by chunk and records usage, TTFT and TPOT', async () => {
    const before = await metricValue(app, 'inference_objective_output_tokens_count', 'usage-model');
    const sse = [
      'data: {"id":"1","object":"chat.completion.chunk","choices":[{"delta":{"content":"Hel"}}]}\n\n',
      'data: {"id":"1","object":"chat.completion.chunk","choices":[{"delta":{"content":"lo"}}]}\n\ndata: {"id":"1","choi',
      'ces":[],"usage":{"prompt_tokens":12,"total_tokens":19,"completion_tokens":7}}\n\n',
      'data: [DONE]\n\n',
    ];
    const r = await client.send({
      path: '/v1/chat/completions',
      body: JSON.stringify({ model: 'usage-model', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }),
      response: { headers: { 'content-type': 'text/event-stream' }, chunks: sse, served: pods[1].key },
    });
    expectClean(r);
    expect(r.responseEcho.map((b) => b.toString())).toEqual(sse);
    expect(await metricValue(app, 'inference_objective_output_tokens_count', 'usage-model')).toBe(before + 1);
    expect(await metricValue(app, 'inference_objective_input_tokens_sum', 'usage-model')).toBe(12);
    expect(await metricValue(app, 'inference_objective_request_ttft_seconds_count', 'usage-model')).toBe(1);
    expect(await metricValue(app, 'inference_objective_request_tpot_seconds_count', 'usage-model')).toBe(1);
  });

  it('reads usage from a JSON response split over several chunks', async () => {
    const resp = JSON.stringify({ id: 'x', choices: [{ text: 'ok' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
    const r = await client.send({
      body: JSON.stringify({ model: 'json-model', prompt: 'hi' }),
      response: { chunks: [resp.slice(0, 10), resp.slice(10, 40), resp.slice(40)] },
    });
    expectClean(r);
    expect(Buffer.concat(r.responseEcho).toString()).toBe(resp);
    expect(await metricValue(app, 'inference_objective_output_tokens_sum', 'json-model')).toBe(2);
  });

  it('releases a request whose client cancels mid-body, and one whose response is cut off', async () => {
    const body = Buffer.from(JSON.stringify({ model: 'cancel-model', prompt: 'z'.repeat(100_000) }));
    await client.send({ body, chunkSize: 10_000, cancelAfterChunks: 3 });
    // Routed, then the stream is reset during the response.
    const c2 = new EnvoyClient(`127.0.0.1:${app.ports.grpc}`);
    const p = c2.send({ body: JSON.stringify({ model: 'cancel-model', prompt: 'y' }) }, 2000);
    await p;
    c2.close();
    await waitFor(() => app.datastore.list().every((e) => e.inFlight === 0));
    expect(await metricValue(app, 'inference_objective_running_requests', 'cancel-model')).toBe(0);
  });

  it('serves BUFFERED mode with trailers: routes on the single body message without waiting for end_of_stream', async () => {
    const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'buffered with trailers' }), mode: BUFFERED, trailers: { 'x-t': '1' } });
    expectClean(r);
    expectAllPods(r, pods);
  });

  it('answers in `value` when Envoy sends `value` (send_header_raw_value off), keeping UTF-8 bytes intact', async () => {
    const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'v' }), useValue: true, headers: { 'x-user': 'café ☃' } });
    expectClean(r);
    expect(r.headerFields.get('x-gateway-destination-endpoint')).toBe('value');
    expect(r.setHeaders.get('x-user')).toBe('café ☃');
    const raw = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'v' }), headers: { 'x-user': 'café ☃' } });
    expect(raw.headerFields.get('x-gateway-destination-endpoint')).toBe('raw_value');
    expect(raw.setHeaders.get('x-user')).toBe('café ☃');
  });

  it('answers 400, not 500, for pathologically nested JSON', async () => {
    let tools = '1';
    for (let i = 0; i < 100_000; i++) tools = `[${tools}]`;
    const r = await client.send({ path: '/v1/chat/completions', body: `{"model":"m","tools":[${tools}],"messages":[{"role":"user","content":"x"}]}`, chunkSize: 65_536 });
    expect(r.immediate?.status).toBe(400);
  });

  it('keeps prompt text out of JSON error messages', async () => {
    const r = await client.send({ body: '{"model":"m","prompt":"secret words here" oops}' });
    expect(r.immediate?.status).toBe(400);
    expect(r.immediate?.body).not.toContain('secret');
  });

  it('answers 1,000 concurrent streams', async () => {
    const body = JSON.stringify({ model: 'm', prompt: 'concurrent' });
    const results = await Promise.all(Array.from({ length: 1000 }, () => client.send({ body }, 30_000)));
    for (const r of results) {
      expect(r.violations).toEqual([]);
      expectAllPods(r, pods);
      expect(r.echoedBody.toString()).toBe(body);
    }
  }, 60_000);

  it('counts routed requests on /metrics: request total, sizes, durations, tokens, scheduler latency', async () => {
    const model = 'metrics-model';
    const labels = { model_name: model, target_model_name: model };
    const body = JSON.stringify({ model, prompt: 'count me' });
    const resp = JSON.stringify({ choices: [{ text: 'ok' }], usage: { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 } });
    const before = await scrape(app);
    const e2eBefore = sample(before, 'inference_extension_scheduler_e2e_duration_seconds_count', {}) ?? 0;
    const N = 3;
    for (let i = 0; i < N; i++) {
      const r = await client.send({ body, response: { chunks: [resp.slice(0, 20), resp.slice(20)] } });
      expectClean(r);
    }
    const after = await scrape(app);
    expect(sample(after, 'inference_objective_request_total', { ...labels, priority: '0' })).toBe(N);
    expect(sample(after, 'inference_objective_request_sizes_count', labels)).toBe(N);
    expect(sample(after, 'inference_objective_request_sizes_sum', labels)).toBe(N * Buffer.byteLength(body));
    expect(sample(after, 'inference_objective_response_sizes_sum', labels)).toBe(N * Buffer.byteLength(resp));
    expect(sample(after, 'inference_objective_request_duration_seconds_count', labels)).toBe(N);
    expect(sample(after, 'inference_objective_request_duration_seconds_sum', labels)).toBeGreaterThan(0);
    expect(sample(after, 'inference_objective_request_ttft_seconds_count', labels)).toBe(N);
    expect(sample(after, 'inference_objective_input_tokens_count', labels)).toBe(N);
    expect(sample(after, 'inference_objective_input_tokens_sum', labels)).toBe(N * 11);
    expect(sample(after, 'inference_objective_output_tokens_sum', labels)).toBe(N * 4);
    expect(sample(after, 'inference_objective_normalized_time_per_output_token_seconds_count', labels)).toBe(N);
    expect(sample(after, 'inference_objective_running_requests', { model_name: model })).toBe(0);
    expect(sample(after, 'inference_objective_request_error_total', { model_name: model })).toBeUndefined();
    // Every pick is timed; every success is attributed to the pod chosen (which pod depends on
    // scrape timing: the queue-scorer counts requests routed since a pod's last scrape).
    expect((sample(after, 'inference_extension_scheduler_e2e_duration_seconds_count', {}) ?? 0) - e2eBefore).toBe(N);
    const perPod = pods.map((p) => sample(after, 'inference_extension_scheduler_attempts_total', { status: 'success', target_model_name: model, port: String(p.port) }) ?? 0);
    expect(perPod.reduce((a, b) => a + b, 0)).toBe(N);
  });

  it('exports the GAIE metric names on /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`)).text();
    for (const name of [
      'inference_objective_request_total',
      'inference_objective_request_error_total',
      'inference_objective_request_duration_seconds',
      'inference_pool_average_kv_cache_utilization',
      'inference_pool_average_queue_size',
      'inference_pool_ready_pods',
      'inference_extension_scheduler_e2e_duration_seconds',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/inference_pool_ready_pods\{name="llm-epp"\} 3/);
    expect(text).toMatch(/inference_pool_average_queue_size\{name="llm-epp"\} 2.333/);
  });
});

async function metricValue(app: App, name: string, model: string): Promise<number> {
  const text = await app.metrics.registry.metrics();
  const re = new RegExp(`^${name}\\{[^}]*model_name="${model}"[^}]*\\} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Samples of the /metrics page as Prometheus would read them. */
async function scrape(app: App): Promise<Map<string, Sample[]>> {
  return parsePrometheusText(await (await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`)).text());
}

/** Value of the one sample whose labels include `labels`; sums if several match. */
function sample(samples: Map<string, Sample[]>, name: string, labels: Record<string, string>): number | undefined {
  const hits = (samples.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => (s.labels[k] ?? '') === v));
  return hits.length ? hits.reduce((a, s) => a + s.value, 0) : undefined;
}
