// InferenceObjective priorities, fairness ids and InferenceModelRewrite
// decisions: unit rules, the Kubernetes feed, and rewrites through ext_proc.
import { afterEach, describe, expect, it } from 'vitest';
import { restoreModel, RequestPolicy, pickWeighted } from '../src/request-control/policy.ts';
import { KubePolicySource } from '../src/request-control/k8s-policy-source.ts';
import { objectivesFor, rewritesFor } from '../src/request-control/policy-manifests.ts';
import { createLogger } from '../src/log.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { FakeKube, inferencePool, pod } from './helpers/fake-kube.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { seeded } from './helpers/scheduling.ts';

const h = (o: Record<string, string> = {}) => new Map(Object.entries(o));
const POLICY_KINDS = [
  { kind: 'InferenceObjective', plural: 'inferenceobjectives' },
  { kind: 'InferenceModelRewrite', plural: 'inferencemodelrewrites' },
];

describe('request policy', () => {
  it('looks up the objective\'s priority by header name; unknown or missing ⇒ 0; fairness id defaults to default-flow', () => {
    const p = new RequestPolicy();
    p.setObjectives([{ name: 'critical', priority: 10 }, { name: 'batch', priority: -1 }]);
    expect(p.resolve(h({ 'x-gateway-inference-objective': 'critical' }), 'm')).toMatchObject({ priority: 10, objective: 'critical', fairnessId: 'default-flow' });
    expect(p.resolve(h({ 'x-llm-d-inference-objective': 'batch', 'x-gateway-inference-fairness-id': 'team-a' }), 'm')).toMatchObject({ priority: -1, fairnessId: 'team-a' });
    expect(p.resolve(h({ 'x-gateway-inference-objective': 'nope' }), 'm').priority).toBe(0);
    // Both names sent: llm-d Router's own header wins, GAIE's is the fallback (as in llm-d v0.10).
    expect(p.resolve(h({ 'x-gateway-inference-objective': 'batch', 'x-llm-d-inference-objective': 'critical', 'x-gateway-inference-fairness-id': 'old', 'x-llm-d-inference-fairness-id': 'new' }), 'm')).toMatchObject({ priority: 10, fairnessId: 'new' });
    expect(p.resolve(h(), 'm')).toMatchObject({ priority: 0, objective: undefined, targetModel: 'm', rewriteName: undefined });
  });

  const REWRITES = [
    { name: 'newer-exact', createdAt: 20, rules: [{ matches: ['food-review'], targets: [{ modelRewrite: 'newer', weight: 1 }] }] },
    { name: 'catch-all', createdAt: 5, rules: [{ matches: [], targets: [{ modelRewrite: 'fallback', weight: 1 }] }] },
    { name: 'older-exact', createdAt: 10, rules: [{ matches: ['food-review'], targets: [{ modelRewrite: 'older', weight: 1 }] }] },
  ];

  it('rewrites models: exact match beats match-all, older objects win ties', () => {
    const p = new RequestPolicy(seeded(1));
    p.setRewrites(REWRITES);
    expect(p.resolve(h(), 'food-review')).toMatchObject({ targetModel: 'older', rewriteName: 'older-exact' });
    expect(p.resolve(h(), 'anything')).toMatchObject({ targetModel: 'fallback', rewriteName: 'catch-all' });
  });

  it('ignores a client rewrite header by default: the operator\'s rewrite rules decide', () => {
    const p = new RequestPolicy(seeded(1));
    p.setRewrites(REWRITES);
    for (const name of ['x-gateway-model-name-rewrite', 'x-llm-d-model-name-rewrite']) {
      expect(p.resolve(h({ [name]: 'restricted-model' }), 'food-review')).toMatchObject({ targetModel: 'older', rewriteName: 'older-exact' });
      expect(p.resolve(h({ [name]: 'restricted-model' }), 'tenant-allowed-model')).toMatchObject({ targetModel: 'fallback' });
    }
    expect(new RequestPolicy().resolve(h({ 'x-gateway-model-name-rewrite': 'restricted-model' }), 'tenant-allowed-model').targetModel).toBe('tenant-allowed-model');
  });

  it('with allowClientModelRewrite, the header forces a target', () => {
    const p = new RequestPolicy(seeded(1), { allowClientModelRewrite: true });
    p.setRewrites(REWRITES);
    expect(p.resolve(h({ 'x-gateway-model-name-rewrite': 'pinned' }), 'food-review')).toMatchObject({ targetModel: 'pinned', rewriteName: undefined });
    expect(p.resolve(h({ 'x-llm-d-model-name-rewrite': 'pinned' }), 'food-review')).toMatchObject({ targetModel: 'pinned', rewriteName: undefined });
    expect(p.resolve(h({ 'x-gateway-model-name-rewrite': 'old', 'x-llm-d-model-name-rewrite': 'new' }), 'food-review').targetModel).toBe('new');
  });

  it('splits traffic by weight (canary), uniformly when all weights are 0', () => {
    const rnd = seeded(3);
    const counts = { stable: 0, canary: 0 };
    for (let i = 0; i < 10_000; i++) counts[pickWeighted([{ modelRewrite: 'stable', weight: 90 }, { modelRewrite: 'canary', weight: 10 }], rnd) as 'stable' | 'canary']++;
    expect(counts.canary / 10_000).toBeGreaterThan(0.08);
    expect(counts.canary / 10_000).toBeLessThan(0.12);
    const even = { a: 0, b: 0 };
    for (let i = 0; i < 10_000; i++) even[pickWeighted([{ modelRewrite: 'a', weight: 0 }, { modelRewrite: 'b', weight: 0 }], rnd) as 'a' | 'b']++;
    expect(Math.abs(even.a - 5000)).toBeLessThan(300);
  });

  it('restores the client\'s model name in responses, with or without a space after the colon', () => {
    expect(restoreModel(Buffer.from('{"id":1,"model":"v2","x":{"model": "v2"}}'), 'v2', 'v1').toString()).toBe('{"id":1,"model":"v1","x":{"model": "v1"}}');
    const same = Buffer.from('{"model":"other"}');
    expect(restoreModel(same, 'v2', 'v1')).toBe(same);
  });

  it('reads the Kubernetes objects of this pool only', () => {
    expect(
      objectivesFor('pool', [
        { metadata: { name: 'a' }, spec: { priority: 3, poolRef: { name: 'pool' } } },
        { metadata: { name: 'b' }, spec: { poolRef: { name: 'pool' } } },
        { metadata: { name: 'c' }, spec: { priority: 9, poolRef: { name: 'other' } } },
      ]),
    ).toEqual([
      { name: 'a', priority: 3 },
      { name: 'b', priority: 0 },
    ]);
    const [rw] = rewritesFor('pool', [
      {
        metadata: { name: 'r', creationTimestamp: new Date(1000) },
        spec: { poolRef: { name: 'pool' }, rules: [{ matches: [{ model: { type: 'Exact', value: 'm' } }], targets: [{ modelRewrite: 'm2', weight: 5 }] }] },
      },
    ]);
    expect(rw).toEqual({ name: 'r', createdAt: 1000, rules: [{ matches: ['m'], targets: [{ modelRewrite: 'm2', weight: 5 }] }] });
  });
});

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('objectives and rewrites through ext_proc on a Kubernetes pool', () => {
  it('applies priority, rewrites the body model and restores it in JSON and SSE responses', async () => {
    const kube = await new FakeKube().start();
    const fake = await new FakePod({}, '127.0.0.2').start();
    const X = '/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/ns';
    kube.installCrds('inference.networking.x-k8s.io', 'v1alpha2', POLICY_KINDS);
    kube.upsert('/apis/inference.networking.k8s.io/v1/namespaces/ns/inferencepools', inferencePool('pool', { app: 'vllm' }, [fake.port]));
    kube.upsert('/api/v1/namespaces/ns/pods', pod('p', '127.0.0.2', { app: 'vllm' }));
    kube.upsert(`${X}/inferenceobjectives`, { apiVersion: 'inference.networking.x-k8s.io/v1alpha2', kind: 'InferenceObjective', metadata: { name: 'critical', namespace: 'ns' }, spec: { priority: 5, poolRef: { name: 'pool' } } });
    kube.upsert(`${X}/inferencemodelrewrites`, {
      apiVersion: 'inference.networking.x-k8s.io/v1alpha2',
      kind: 'InferenceModelRewrite',
      metadata: { name: 'canary', namespace: 'ns' },
      spec: { poolRef: { name: 'pool' }, rules: [{ matches: [{ model: { value: 'food-review' } }], targets: [{ modelRewrite: 'food-review-v2', weight: 1 }] }] },
    });
    const { app, client } = await startTestApp(['--pool-name=pool', '--pool-namespace=ns'], { waitReady: 1, kubeConfig: kube.kubeConfig() });
    cleanup.push(async () => {
      client.close();
      await app.stop(100);
      await fake.stop();
      await kube.stop();
    });

    const body = JSON.stringify({ model: 'food-review', prompt: 'is this tasty?' });
    const json = JSON.stringify({ id: 'c1', model: 'food-review-v2', choices: [{ text: 'yes' }], usage: { prompt_tokens: 4, completion_tokens: 1 } });
    const r = await client.send({
      body,
      headers: { 'x-gateway-inference-objective': 'critical' },
      response: { chunks: [json.slice(0, 15), json.slice(15)] }, // "model" split across chunks
    });
    expect(r.violations).toEqual([]);
    const sent = JSON.parse(r.echoedBody.toString());
    expect(sent.model).toBe('food-review-v2');
    expect(r.setHeaders.get('content-length')).toBe(String(r.echoedBody.length));
    expect(JSON.parse(Buffer.concat(r.responseEcho).toString()).model).toBe('food-review');

    // A JSON response ended by trailers instead of end_of_stream is still released, name restored.
    const t = await client.send({ body, response: { chunks: [json], trailers: { 'grpc-status': '0' } } });
    expect(t.violations).toEqual([]);
    expect(JSON.parse(Buffer.concat(t.responseEcho).toString()).model).toBe('food-review');

    const sse = ['data: {"model":"food-review-v2","choices":[{"delta":{"content":"a"}}]}\n\n', 'data: [DONE]\n\n'];
    const s = await client.send({ body, response: { headers: { 'content-type': 'text/event-stream' }, chunks: sse } });
    expect(s.responseEcho[0].toString()).toBe('data: {"model":"food-review","choices":[{"delta":{"content":"a"}}]}\n\n');

    expect(s.violations).toEqual([]);
    const text = await app.metrics.registry.metrics();
    expect(text).toMatch(/inference_objective_request_total\{model_name="food-review",target_model_name="food-review-v2",priority="5"\} 1/);
    expect(text).toMatch(/inference_extension_model_rewrite_decisions_total\{model_rewrite_name="canary",model_name="food-review",target_model="food-review-v2"\} 3/);

    // Removing the rewrite stops it; an unchanged body is echoed as the original bytes.
    kube.remove(`${X}/inferencemodelrewrites`, 'canary');
    let plain = await client.send({ body });
    for (let i = 0; i < 50 && plain.echoedBody.toString() !== body; i++) {
      await new Promise((r2) => setTimeout(r2, 50));
      plain = await client.send({ body });
    }
    expect(plain.echoedBody.toString()).toBe(body);
  });
});

describe('InferenceObjective / InferenceModelRewrite API group (llm-d Router v0.10, PR #1449)', () => {
  const LLMD = '/apis/llm-d.ai/v1alpha2/namespaces/ns';
  const LEGACY = '/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/ns';
  const objective = (apiVersion: string, name: string, priority: number) => ({ apiVersion, kind: 'InferenceObjective', metadata: { name, namespace: 'ns' }, spec: { priority, poolRef: { name: 'pool' } } });

  async function start(kube: FakeKube): Promise<{ policy: RequestPolicy; source: KubePolicySource }> {
    const policy = new RequestPolicy();
    const source = new KubePolicySource(kube.kubeConfig(), 'pool', 'ns', policy, createLogger('silent'));
    cleanup.push(async () => {
      await source.stop();
      await kube.stop();
    });
    await source.start();
    return { policy, source };
  }
  const priorityOf = (policy: RequestPolicy, objective: string) => policy.resolve(h({ 'x-llm-d-inference-objective': objective }), 'm').priority;

  it('reads llm-d.ai when only it is installed', async () => {
    const kube = await new FakeKube().start();
    kube.installCrds('llm-d.ai', 'v1alpha2', POLICY_KINDS);
    kube.upsert(`${LLMD}/inferenceobjectives`, objective('llm-d.ai/v1alpha2', 'batch', -1));
    const { policy, source } = await start(kube);
    expect(source.groups.get('InferenceObjective')).toBe('llm-d.ai');
    await waitFor(() => priorityOf(policy, 'batch') === -1);
  });

  it('with both installed, reads llm-d.ai and ignores the legacy objects', async () => {
    const kube = await new FakeKube().start();
    kube.installCrds('llm-d.ai', 'v1alpha2', POLICY_KINDS);
    kube.installCrds('inference.networking.x-k8s.io', 'v1alpha2', POLICY_KINDS);
    kube.upsert(`${LLMD}/inferenceobjectives`, objective('llm-d.ai/v1alpha2', 'new', 7));
    kube.upsert(`${LEGACY}/inferenceobjectives`, objective('inference.networking.x-k8s.io/v1alpha2', 'old', 3));
    const { policy, source } = await start(kube);
    expect([source.groups.get('InferenceObjective'), source.groups.get('InferenceModelRewrite')]).toEqual(['llm-d.ai', 'llm-d.ai']);
    await waitFor(() => priorityOf(policy, 'new') === 7);
    expect(priorityOf(policy, 'old')).toBe(0);
  });

  it('with only the legacy group installed, reads it (GAIE v1.5 clusters)', async () => {
    const kube = await new FakeKube().start();
    kube.installCrds('inference.networking.x-k8s.io', 'v1alpha2', POLICY_KINDS);
    kube.upsert(`${LEGACY}/inferenceobjectives`, objective('inference.networking.x-k8s.io/v1alpha2', 'old', 3));
    const { policy, source } = await start(kube);
    expect(source.groups.get('InferenceObjective')).toBe('inference.networking.x-k8s.io');
    await waitFor(() => priorityOf(policy, 'old') === 3);
  });

  it('with neither installed, watches llm-d.ai and picks objects up once they appear', async () => {
    const kube = await new FakeKube().start();
    const { policy, source } = await start(kube);
    expect(source.groups.get('InferenceObjective')).toBe('llm-d.ai');
    kube.installCrds('llm-d.ai', 'v1alpha2', POLICY_KINDS);
    kube.upsert(`${LLMD}/inferenceobjectives`, objective('llm-d.ai/v1alpha2', 'late', 4));
    await waitFor(() => priorityOf(policy, 'late') === 4, 15_000);
  }, 20_000);
});
