// Flow control on the request path: llm-epp started with the flowControl
// feature gate, requests through the ext_proc stream (EnvoyClient) or the
// director, fake pods serving real vLLM metric pages. Capacity is the
// concurrency detector's maxConcurrency, so "in flight" is what a test holds.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import type { IncomingRequest, Routing } from '../src/request-control/director.ts';
import { DROPPED_REASON_HEADER, EppError } from '../src/errors.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';

const DROPPED = DROPPED_REASON_HEADER;

function config(flowControl: string, maxConcurrency = 1, gate = true): string {
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
${gate ? 'featureGates: [flowControl]\n' : ''}flowControl:
  saturationDetector: {pluginRef: cd}
${flowControl
  .split('\n')
  .filter(Boolean)
  .map((l) => '  ' + l)
  .join('\n')}
plugins:
- {name: cd, type: concurrency-detector, parameters: {maxConcurrency: ${maxConcurrency}}}
- {type: round-robin-fairness-policy}
- {type: program-aware-fairness, parameters: {lasHalfLifeSeconds: 0}}
- {type: queue-scorer}
- {type: max-score-picker}
schedulingProfiles:
- name: default
  plugins: [{pluginRef: queue-scorer}, {pluginRef: max-score-picker}]
`;
}

const OBJECTIVES = `apiVersion: llm-d.ai/v1alpha2
kind: InferenceObjective
metadata: {name: critical}
spec: {priority: 100, poolRef: {name: any}}
---
apiVersion: llm-d.ai/v1alpha2
kind: InferenceObjective
metadata: {name: batch}
spec: {priority: -10}
`;

function body(text = 'hello'): string {
  return JSON.stringify({ model: 'm', messages: [{ role: 'user', content: text }] });
}

function incoming(id: string, headers: Record<string, string> = {}): IncomingRequest {
  const b = Buffer.from(body(id));
  return { requestId: id, headers: new Map(Object.entries(headers)), path: '/v1/chat/completions', body: b, subset: undefined, receivedAt: performance.now() };
}

async function metricValue(app: App, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await app.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => String(x.labels[k]) === val));
  return v?.value ?? 0;
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function start(flowControl: string, opts: { maxConcurrency?: number; pods?: number; flags?: string[]; gate?: boolean } = {}): Promise<{ app: App; client: EnvoyClient; pods: FakePod[] }> {
  const pods: FakePod[] = [];
  for (let i = 0; i < (opts.pods ?? 1); i++) pods.push(await new FakePod().start());
  const dir = mkdtempSync(join(tmpdir(), 'fc-app-'));
  const objectives = join(dir, 'objectives.yaml');
  writeFileSync(objectives, OBJECTIVES);
  const flags = opts.flags ?? [`--endpoints=${pods.map((p) => p.key).join(',')}`];
  const { app, client } = await startTestApp([`--config-text=${config(flowControl, opts.maxConcurrency, opts.gate)}`, `--objectives-file=${objectives}`, ...flags], {
    waitReady: pods.length,
  });
  cleanup.push(async () => {
    client.close();
    await app.stop(0, 0);
    for (const p of pods) await p.stop();
  });
  return { app, client, pods };
}

describe('flow control on the request path', () => {
  it('queues a request while the pool is saturated and dispatches it when capacity frees', async () => {
    const { app } = await start('defaultRequestTTL: 10s');
    const first = (await app.director.handleRequest(incoming('a'))) as Routing;
    expect(app.flow!.stats().queued).toBe(0);
    const second = app.director.handleRequest(incoming('b'));
    expect(second).toBeInstanceOf(Promise);
    await waitFor(() => app.flow!.stats().queued === 1);
    app.director.responseComplete(first);
    const routed = await second;
    expect(routed.primary).toBe(first.primary);
    expect(app.flow!.stats().queued).toBe(0);
    app.director.responseComplete(routed);
    expect(await metricValue(app, 'llm_d_epp_flow_control_requests_total', { outcome: 'Dispatched' })).toBe(2);
  });

  it('answers 429 with rejected-ttl-expired when the queue-wait budget runs out while the pool has endpoints', async () => {
    const { app, client } = await start('defaultRequestTTL: 150ms');
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    const res = await client.send({ path: '/v1/chat/completions', body: body() });
    expect(res.immediate?.status).toBe(429);
    expect(res.immediate?.headers.get(DROPPED)).toBe('rejected-ttl-expired');
    expect(JSON.parse(res.immediate!.body).error.message).toMatch(/timed out in queue/);
    expect(await metricValue(app, 'llm_d_epp_flow_control_requests_total', { outcome: 'EvictedTTL' })).toBe(1);
    app.director.responseComplete(held);
  });

  it('sheds by capacity with 429 rejected-saturated when the band is full', async () => {
    const { app, client } = await start('defaultRequestTTL: 10s\npriorityBands:\n- {priority: 0, maxRequests: 1}');
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    const waiting = app.director.handleRequest(incoming('waiting'));
    await waitFor(() => app.flow!.stats().queued === 1);
    const res = await client.send({ path: '/v1/chat/completions', body: body() });
    expect(res.immediate?.status).toBe(429);
    expect(res.immediate?.headers.get(DROPPED)).toBe('rejected-saturated');
    app.director.responseComplete(held);
    app.director.responseComplete(await waiting);
  });

  it('dispatches the higher priority band first (priorities from --objectives-file)', async () => {
    const { app } = await start('defaultRequestTTL: 10s');
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    const order: string[] = [];
    const low = (app.director.handleRequest(incoming('low', { 'x-llm-d-inference-objective': 'batch' })) as Promise<Routing>).then((r) => (order.push('low'), r));
    const mid = (app.director.handleRequest(incoming('mid')) as Promise<Routing>).then((r) => (order.push('mid'), r));
    const high = (app.director.handleRequest(incoming('high', { 'x-llm-d-inference-objective': 'critical' })) as Promise<Routing>).then((r) => (order.push('high'), r));
    await waitFor(() => app.flow!.stats().queued === 3);
    expect(app.flow!.priorities()).toEqual([100, 0, -10]);
    app.director.responseComplete(held);
    const h = await high;
    expect(h.request.priority).toBe(100);
    app.director.responseComplete(h);
    app.director.responseComplete(await mid);
    app.director.responseComplete(await low);
    expect(order).toEqual(['high', 'mid', 'low']);
  });

  it('round-robins between flows: a quiet tenant\'s one request waits at most one dispatch behind a noisy tenant\'s 1,000', async () => {
    const { app } = await start('defaultRequestTTL: 60s\npriorityBands:\n- {priority: 0, fairnessPolicyRef: round-robin-fairness-policy}');
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    const dispatched: Routing[] = [];
    const queue = (id: string, tenant: string) =>
      (app.director.handleRequest(incoming(id, { 'x-llm-d-inference-fairness-id': tenant })) as Promise<Routing>).then(
        (r) => void dispatched.push(r),
        // Those still queued when the app stops are answered 503 (shutting down).
        () => undefined,
      );
    for (let i = 0; i < 1000; i++) void queue(`noisy-${i}`, 'noisy');
    await waitFor(() => app.flow!.stats().queued === 1000);
    void queue('quiet', 'quiet');
    await waitFor(() => app.flow!.stats().queued === 1001);
    // One slot: each completion lets the next request go.
    app.director.responseComplete(held);
    await waitFor(() => dispatched.length === 1);
    app.director.responseComplete(dispatched[0]);
    await waitFor(() => dispatched.length === 2);
    app.director.responseComplete(dispatched[1]);
    const first = dispatched.map((r) => r.request.requestId);
    expect(first).toContain('quiet');
    expect(first.find((id) => id !== 'quiet')).toBe('noisy-0');
  });

  it('removes a queued request at once when its client goes away, and counts it', async () => {
    const { app, client } = await start('defaultRequestTTL: 10s');
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    const cancel = new AbortController();
    const sent = client.send({ path: '/v1/chat/completions', body: body(), cancel: cancel.signal });
    await waitFor(() => app.flow!.stats().queued === 1);
    cancel.abort();
    await sent;
    await waitFor(() => app.flow!.stats().queued === 0);
    expect(await metricValue(app, 'llm_d_epp_flow_control_requests_total', { outcome: 'EvictedContextCancelled' })).toBe(1);
    app.director.responseComplete(held);
  });

  it('holds requests while the pool has no endpoints and dispatches them when one appears and is scraped (scale from zero)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-zero-'));
    const file = join(dir, 'endpoints.yaml');
    writeFileSync(file, 'endpoints: []\n');
    const pod = await new FakePod().start();
    const { app, client } = await start('defaultRequestTTL: 10s', { pods: 0, flags: [`--endpoints-file=${file}`, '--endpoints-file-max-shrink=1'] });
    cleanup.push(() => pod.stop());
    const sent = client.send({ path: '/v1/chat/completions', body: body() });
    await waitFor(() => app.flow!.stats().queued === 1);
    expect(app.flow!.stats().poolEmpty).toBe(true);
    writeFileSync(file, `endpoints:\n- {address: 127.0.0.1, port: ${pod.port}}\n`);
    const res = await sent;
    expect(res.immediate).toBeUndefined();
    expect(res.setHeaders.get('x-gateway-destination-endpoint')).toBe(pod.key);
  });

  it('answers 503 rejected-no-endpoints when the no-endpoint budget runs out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-zero-'));
    const file = join(dir, 'endpoints.yaml');
    writeFileSync(file, 'endpoints: []\n');
    const { client } = await start('defaultRequestTTL: 10s\nnoEndpointRequestTTL: 100ms', { pods: 0, flags: [`--endpoints-file=${file}`] });
    const res = await client.send({ path: '/v1/chat/completions', body: body() });
    expect(res.immediate?.status).toBe(503);
    expect(res.immediate?.headers.get(DROPPED)).toBe('rejected-no-endpoints');
  });

  it('answers queued requests 503 rejected-shutting-down at shutdown, not at their TTL', async () => {
    const { app, client } = await start('defaultRequestTTL: 60s');
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    const sent = client.send({ path: '/v1/chat/completions', body: body() });
    await waitFor(() => app.flow!.stats().queued === 1);
    const stopping = app.stop(2000, 0);
    const res = await sent;
    expect(res.immediate?.status).toBe(503);
    expect(res.immediate?.headers.get(DROPPED)).toBe('rejected-shutting-down');
    app.director.responseComplete(held);
    await stopping;
  });

  it('with enableEviction, ends an in-flight sheddable request with 429 (evicted) when a higher band is blocked', async () => {
    const { app } = await start('defaultRequestTTL: 10s\nenableEviction: true');
    const sheddable = (await app.director.handleRequest(incoming('batch', { 'x-llm-d-inference-objective': 'batch' }))) as Routing;
    let evicted = false;
    // What the ext_proc stream does when flow control evicts its request.
    sheddable.onEvict = () => {
      evicted = true;
      app.director.rejected(sheddable, new EppError('ResourceExhausted', 'request evicted by flow control'));
    };
    const critical = app.director.handleRequest(incoming('critical', { 'x-llm-d-inference-objective': 'critical' })) as Promise<Routing>;
    const routed = await critical;
    expect(evicted).toBe(true);
    expect(routed.request.priority).toBe(100);
    expect(await metricValue(app, 'llm_d_epp_flow_control_revocations_issued_total', { priority: '100' })).toBe(1);
    app.director.responseComplete(routed);
  });

  it('an evicted request\'s ext_proc stream ends with 429 and x-llm-d-request-dropped-reason: evicted', async () => {
    const { app, client } = await start('defaultRequestTTL: 10s\nenableEviction: true');
    // Routed, then held open: its response has not started.
    const sheddable = client.send({ path: '/v1/chat/completions', headers: { 'x-llm-d-inference-objective': 'batch' }, body: body(), awaitImmediate: true });
    await waitFor(() => app.datastore.list()[0].inFlight === 1);
    const critical = app.director.handleRequest(incoming('critical', { 'x-llm-d-inference-objective': 'critical' })) as Promise<Routing>;
    const res = await sheddable;
    expect(res.immediate?.status).toBe(429);
    expect(res.immediate?.headers.get(DROPPED)).toBe('evicted');
    expect(JSON.parse(res.immediate!.body).error.message).toBe('request evicted by flow control');
    app.director.responseComplete(await critical);
  });

  it('never evicts a request of priority >= 0', async () => {
    const { app } = await start('defaultRequestTTL: 200ms\nenableEviction: true');
    const standard = (await app.director.handleRequest(incoming('std'))) as Routing;
    let evicted = false;
    standard.onEvict = () => {
      evicted = true;
    };
    const critical = app.director.handleRequest(incoming('critical', { 'x-llm-d-inference-objective': 'critical' })) as Promise<Routing>;
    await expect(critical).rejects.toThrow(/timed out in queue/);
    expect(evicted).toBe(false);
    expect(standard.evicted).toBe(false);
    expect(await metricValue(app, 'llm_d_epp_flow_control_revocations_issued_total', { priority: '100' })).toBe(0);
    app.director.responseComplete(standard);
  });

  it('tells program-aware fairness the tokens each request used, read from its response', async () => {
    const { app, client } = await start('defaultRequestTTL: 10s\npriorityBands:\n- {priority: 0, fairnessPolicyRef: program-aware-fairness}', { pods: 1 });
    const res = await client.send({
      path: '/v1/chat/completions',
      headers: { 'x-llm-d-inference-fairness-id': 'agent-7' },
      body: body(),
      response: { chunks: ['{"id":"x","usage":{"prompt_tokens":100,"completion_tokens":10,"total_tokens":110}}'] },
    });
    expect(res.violations).toEqual([]);
    // prompt + 2 × completion tokens (no decay: lasHalfLifeSeconds 0).
    expect(await metricValue(app, 'llm_d_epp_program_aware_attained_service_tokens', { program_id: 'agent-7' })).toBe(120);
  });

  it('keeps the legacy admission with the gate off: nothing queues, sheddable requests get 429 while saturated', async () => {
    const { app } = await start('', { gate: false });
    expect(app.flow).toBeUndefined();
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    // Not sheddable: routed at once although the pool is saturated.
    const normal = (await app.director.handleRequest(incoming('normal'))) as Routing;
    expect(() => app.director.handleRequest(incoming('shed', { 'x-llm-d-inference-objective': 'batch' }))).toThrow(EppError);
    app.director.responseComplete(held);
    app.director.responseComplete(normal);
  });

  it('exports the flow-control series with the pool and bounded fairness labels', async () => {
    const { app } = await start('defaultRequestTTL: 10s');
    const held = (await app.director.handleRequest(incoming('held'))) as Routing;
    const queued = app.director.handleRequest(incoming('q', { 'x-llm-d-inference-fairness-id': 'tenant-a' }));
    await waitFor(() => app.flow!.stats().queued === 1);
    expect(await metricValue(app, 'llm_d_epp_flow_control_queue_size', { fairness_id: 'tenant-a', priority: '0' })).toBe(1);
    expect(await metricValue(app, 'llm_d_epp_flow_control_pool_saturation', {})).toBe(1);
    const text = await app.metrics.registry.metrics();
    expect(text).toMatch(/llm_d_epp_flow_control_stale_endpoints\{detector="concurrency-detector"\} 0/);
    app.director.responseComplete(held);
    app.director.responseComplete(await queued);
    expect(await metricValue(app, 'llm_d_epp_flow_control_queue_size', { fairness_id: 'tenant-a', priority: '0' })).toBe(0);
  });
});

describe('--objectives-file', () => {
  it('reads manifests, Lists and both API groups; the shipped example gives the three bands', async () => {
    const { parsePolicyManifests } = await import('../src/request-control/file-policy-source.ts');
    const example = parsePolicyManifests(readFileSync(new URL('../deploy/objectives/flow-control.yaml', import.meta.url), 'utf8'), 'example', undefined);
    expect(example.objectives).toEqual([
      { name: 'critical', priority: 100 },
      { name: 'standard', priority: 0 },
      { name: 'batch', priority: -10 },
    ]);
    const list = parsePolicyManifests(
      'apiVersion: v1\nkind: List\nitems:\n- {apiVersion: inference.networking.x-k8s.io/v1alpha2, kind: InferenceObjective, metadata: {name: a}, spec: {priority: 5}}\n- apiVersion: llm-d.ai/v1alpha2\n  kind: InferenceModelRewrite\n  metadata: {name: r}\n  spec: {rules: [{matches: [{model: {value: m}}], targets: [{modelRewrite: m2}]}]}\n',
      'list.yaml',
      undefined,
    );
    expect(list.objectives).toEqual([{ name: 'a', priority: 5 }]);
    expect(list.rewrites[0].rules[0].targets).toEqual([{ modelRewrite: 'm2', weight: 1 }]);
  });

  it.each([
    ['another kind', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n', /document 1: kind must be one of InferenceObjective, InferenceModelRewrite/],
    ['another group', 'apiVersion: example.com/v1\nkind: InferenceObjective\nmetadata: {name: x}\n', /apiVersion must be in group llm-d.ai/],
    ['no name', 'apiVersion: llm-d.ai/v1alpha2\nkind: InferenceObjective\nspec: {priority: 1}\n', /metadata.name is required/],
    ['a fractional priority', 'apiVersion: llm-d.ai/v1alpha2\nkind: InferenceObjective\nmetadata: {name: x}\nspec: {priority: 1.5}\n', /spec.priority must be an integer/],
    ['a name twice', 'apiVersion: llm-d.ai/v1alpha2\nkind: InferenceObjective\nmetadata: {name: x}\n---\napiVersion: llm-d.ai/v1alpha2\nkind: InferenceObjective\nmetadata: {name: x}\n', /"x" is defined twice/],
    ['invalid YAML', 'kind: [', /document 1: invalid YAML/],
  ])('refuses %s with a message naming the document', async (_what, text, message) => {
    const { parsePolicyManifests } = await import('../src/request-control/file-policy-source.ts');
    expect(() => parsePolicyManifests(text, 'f.yaml', undefined)).toThrow(message);
  });

  it('a bad file stops start-up with the flag named; a bad edit later keeps the last good objectives', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-obj-'));
    const file = join(dir, 'objectives.yaml');
    writeFileSync(file, 'kind: [');
    const pod = await new FakePod().start();
    cleanup.push(() => pod.stop());
    await expect(startTestApp([`--endpoints=${pod.key}`, `--objectives-file=${file}`])).rejects.toThrow(/--objectives-file .*objectives.yaml: .*invalid YAML/);
    writeFileSync(file, OBJECTIVES);
    const { app, client } = await startTestApp([`--endpoints=${pod.key}`, `--objectives-file=${file}`], { waitReady: 1 });
    cleanup.push(async () => {
      client.close();
      await app.stop(0, 0);
    });
    expect(app.policy.resolve(new Map([['x-llm-d-inference-objective', 'critical']]), 'm').priority).toBe(100);
    // The file is watched: a good edit is applied.
    writeFileSync(file, OBJECTIVES.replace('priority: 100', 'priority: 7'));
    await waitFor(() => app.policy.resolve(new Map([['x-llm-d-inference-objective', 'critical']]), 'm').priority === 7);
  });

  it('a bad edit is logged and the last good objectives keep serving (reload resolves once applied or refused)', async () => {
    const { FilePolicySource } = await import('../src/request-control/file-policy-source.ts');
    const { RequestPolicy } = await import('../src/request-control/policy.ts');
    const { captureLogger } = await import('./helpers/log-capture.ts');
    const dir = mkdtempSync(join(tmpdir(), 'fc-obj-'));
    const file = join(dir, 'objectives.yaml');
    writeFileSync(file, OBJECTIVES);
    const policy = new RequestPolicy();
    const cap = captureLogger('error');
    const source = new FilePolicySource(file, undefined, policy, cap.logger, 1 << 20);
    await source.start();
    cleanup.push(() => source.stop());
    const critical = () => policy.resolve(new Map([['x-llm-d-inference-objective', 'critical']]), 'm').priority;
    expect(critical()).toBe(100);
    writeFileSync(file, 'kind: [');
    await source.reload();
    expect(critical()).toBe(100);
    expect(cap.lines().some((l) => String(l.msg).includes('invalid objectives file; keeping the last good one'))).toBe(true);
    writeFileSync(file, OBJECTIVES.replace('priority: 100', 'priority: 7'));
    await source.reload();
    expect(critical()).toBe(7);
  });
});

describe('README "Flow control"', () => {
  it('shows the shipped example config and objectives as they are', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const f of ['../deploy/config/flow-control.yaml', '../deploy/objectives/flow-control.yaml']) {
      const text = readFileSync(new URL(f, import.meta.url), 'utf8');
      expect(readme).toContain('```yaml\n' + text.slice(text.indexOf('apiVersion')) + '```');
    }
  });
});
