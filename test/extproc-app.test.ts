// llm-epp started through startApp's own seams (AppDeps.logger, AppDeps.scheduler)
// rather than the shared harness: an internal error answered as a 500, what
// the served-endpoint metadata on the response path is used for, and the
// per-request debug log lines (which must never carry prompt text).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionToken } from '../scorers/session-affinity-scorer.ts';
import { startApp, type App, type AppDeps } from '../src/app.ts';
import { parseFlags } from '../src/flags.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import type { Scheduler } from '../src/scheduling/types.ts';
import { waitFor } from './helpers/app-harness.ts';
import { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { captureLogger, type CapturedLog } from './helpers/log-capture.ts';

async function start(flags: string[], deps: AppDeps, ready: number): Promise<{ app: App; client: EnvoyClient }> {
  const options = parseFlags(['--grpc-port=0', '--grpc-health-port=0', '--metrics-port=0', '--secure-serving=false', '--refresh-metrics-interval=20ms', '--shutdown-delay=0s', ...flags]);
  const app = await startApp(options, { host: '127.0.0.1', processMetrics: false, ...deps });
  await waitFor(() => app.director.candidates(undefined).length >= ready);
  return { app, client: new EnvoyClient(`127.0.0.1:${app.ports.grpc}`) };
}

async function errorCount(app: App, model: string, code: string): Promise<number | undefined> {
  const samples = parsePrometheusText(await app.metrics.registry.metrics()).get('inference_objective_request_error_total') ?? [];
  return samples.find((s) => s.labels.model_name === model && s.labels.error_code === code)?.value;
}

describe('an internal error on the request path', () => {
  const pod = new FakePod();
  let app: App;
  let client: EnvoyClient;
  let log: CapturedLog;
  let explode = true;
  // A scheduler bug (a plain Error, not an EppError) while routing.
  const scheduler: Scheduler = {
    name: 'exploding-test-scheduler',
    schedule(_state, candidates, max) {
      if (explode) throw new Error('scheduler bug for the test');
      return { endpoints: candidates.slice(0, max), profiles: new Map() };
    },
  };

  beforeAll(async () => {
    await pod.start();
    log = captureLogger('info');
    ({ app, client } = await start([`--endpoints=${pod.key}`], { scheduler, logger: log.logger }, 1));
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await pod.stop();
  });

  it('answers 500 in OpenAI error shape, ends the stream, and keeps serving', async () => {
    const r = await client.send({ body: JSON.stringify({ model: 'boom-model', prompt: 'x' }) });
    expect(r.immediate?.status).toBe(500);
    expect(r.immediate?.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(r.immediate!.body)).toEqual({ error: { message: 'internal error', type: 'server_error', param: null, code: 500 } });
    // The client saw the stream end after the one reply: nothing hung, nothing extra.
    expect(r.violations).toEqual([]);
    expect(r.messages).toHaveLength(1);
    expect(r.echoedBody.length).toBe(0);
    expect(app.datastore.list()[0].inFlight).toBe(0);
    expect(await errorCount(app, 'boom-model', 'Internal')).toBe(1);
    // The cause is logged for operators; the client only gets "internal error".
    const logged = log.lines().find((l) => l.msg === 'internal error on ext_proc stream');
    expect((logged?.err as { message?: string } | undefined)?.message).toBe('scheduler bug for the test');
    expect(r.immediate!.body).not.toContain('scheduler bug');

    // Same process, next request: served normally.
    explode = false;
    const ok = await client.send({ body: JSON.stringify({ model: 'boom-model', prompt: 'x' }) });
    expect(ok.violations).toEqual([]);
    expect(ok.immediate).toBeUndefined();
    expect(ok.setHeaders.get('x-gateway-destination-endpoint')).toBe(pod.key);
  });
});

describe('served endpoint and request logs', () => {
  const pods = [new FakePod({ waiting: 0 }), new FakePod({ waiting: 3 }), new FakePod({ waiting: 6 })];
  let app: App;
  let client: EnvoyClient;
  let log: CapturedLog;
  // session-affinity-scorer is the plugin that uses the served endpoint (responseHeaders).
  const config = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: prefix-cache-scorer
- type: session-affinity-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 1
  - pluginRef: session-affinity-scorer
    weight: 1
  - pluginRef: max-score-picker
`;

  beforeAll(async () => {
    await Promise.all(pods.map((p) => p.start()));
    log = captureLogger('debug');
    ({ app, client } = await start([`--endpoints=${pods.map((p) => p.key).join(',')}`, `--config-text=${config}`, '--log-level=debug'], { logger: log.logger }, 3));
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await Promise.all(pods.map((p) => p.stop()));
  });

  const token = (key: string) => sessionToken(app.datastore.get(key)!);
  const request = (served?: string) =>
    client.send({ body: JSON.stringify({ model: 'served-model', prompt: 'hello' }), response: { chunks: ['{"choices":[]}'], served } });

  it('gives the client the session token of the endpoint that served (x-gateway-destination-endpoint-served), not the primary', async () => {
    const r = await request(pods[2].key);
    expect(r.violations).toEqual([]);
    const [primary, ...fallbacks] = r.setHeaders.get('x-gateway-destination-endpoint')!.split(',');
    expect(primary).toBe(pods[0].key);
    expect(fallbacks).toContain(pods[2].key);
    expect(r.responseSetHeaders.get('x-session-token')).toBe(token(pods[2].key));
    // The completion log records which endpoint answered.
    const done = log.lines().filter((l) => l.msg === 'request completed').at(-1);
    expect(done).toMatchObject({ endpoint: pods[0].key, served: pods[2].key });
    // In-flight accounting is returned to the primary that pick() charged.
    expect(app.datastore.list().map((e) => e.inFlight)).toEqual([0, 0, 0]);
  });

  it('falls back to the primary when the served key is absent or not in the pool', async () => {
    for (const served of [undefined, '10.9.9.9:8000']) {
      const r = await request(served);
      expect(r.violations).toEqual([]);
      expect(r.responseSetHeaders.get('x-session-token')).toBe(token(pods[0].key));
    }
  });

  it('logs one debug line per routed request with model and endpoint, never the prompt text', async () => {
    const secret = 'PROMPT-SENTINEL-7f3a9c';
    const before = log.raw.length;
    const r = await client.send({
      path: '/v1/chat/completions',
      headers: { 'x-request-id': 'log-req-1' },
      body: JSON.stringify({ model: 'log-model', messages: [{ role: 'system', content: `${secret} system` }, { role: 'user', content: `${secret} question` }] }),
      response: { chunks: ['{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":9,"completion_tokens":1}}'] },
    });
    expect(r.violations).toEqual([]);
    // Rejected bodies carrying the secret: their log lines must not quote it either.
    await client.send({ path: '/v1/chat/completions', body: JSON.stringify({ model: 'log-model', messages: [secret] }) });
    await client.send({ body: `{"model":"log-model","prompt":"${secret}" oops}` });

    const lines = log.raw.slice(before);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const routed = parsed.filter((l) => l.msg === 'request routed');
    expect(routed).toHaveLength(1);
    expect(routed[0]).toMatchObject({ level: 20, requestId: 'log-req-1', model: 'log-model', api: 'chat', endpoint: pods[0].key });
    expect(parsed.filter((l) => l.msg === 'request completed' && l.requestId === 'log-req-1')).toHaveLength(1);
    expect(parsed.filter((l) => l.msg === 'request rejected')).toHaveLength(2);
    for (const line of lines) expect(line).not.toContain(secret);
  });
});
