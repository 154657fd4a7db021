// The Kubernetes endpoint source against a fake API server: pods becoming
// ready, unready and deleted, IP changes, selector and port changes, watches
// that break and resume, and the whole EPP routing to pods it discovered.
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { KubeSource, podEndpoints } from '../src/pool/k8s-source.ts';
import type { V1Pod } from '@kubernetes/client-node';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { FakeKube, inferencePool, pod } from './helpers/fake-kube.ts';
import { FakePod } from './helpers/fake-pod.ts';

const PODS = '/api/v1/namespaces/ns/pods';
const POOLS = '/apis/inference.networking.k8s.io/v1/namespaces/ns/inferencepools';
const log = createLogger('silent');

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(opts: { pool?: boolean } = {}) {
  const kube = await new FakeKube().start();
  const store = new Datastore();
  const source = new KubeSource(
    opts.pool === false
      ? { namespace: 'ns', poolGroup: 'inference.networking.k8s.io', selector: 'app=vllm', targetPorts: [8000] }
      : { poolName: 'pool', namespace: 'ns', poolGroup: 'inference.networking.k8s.io' },
    store,
    log,
    kube.kubeConfig(),
  );
  cleanup.push(async () => {
    await source.stop();
    await kube.stop();
  });
  return { kube, store, source };
}

const keys = (store: Datastore) => store.list().map((e) => e.key).sort();

describe('Kubernetes endpoint source', () => {
  it('lists the InferencePool and its Ready pods: one endpoint per pod IP and target port', async () => {
    const { kube, store, source } = await setup();
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm' }, [8000]));
    kube.upsert(PODS, pod('a', '10.0.0.1', { app: 'vllm', 'llm-d.ai/role': 'decode' }));
    kube.upsert(PODS, pod('b', '10.0.0.2', { app: 'vllm' }));
    kube.upsert(PODS, pod('c', '10.0.0.3', { app: 'vllm' }, false)); // not Ready
    kube.upsert(PODS, pod('d', undefined, { app: 'vllm' })); // no IP yet
    kube.upsert(PODS, pod('e', '10.0.0.5', { app: 'other' })); // not selected
    await source.start();
    expect(keys(store)).toEqual(['10.0.0.1:8000', '10.0.0.2:8000']);
    const a = store.get('10.0.0.1:8000')!;
    expect(a.name).toBe('a');
    expect(a.namespace).toBe('ns');
    expect(a.labels['llm-d.ai/role']).toBe('decode');
    expect(source.synced).toBe(true);
  });

  it('follows pods becoming ready, unready, deleted, and changing IP', async () => {
    const { kube, store, source } = await setup();
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm' }, [8000]));
    kube.upsert(PODS, pod('a', '10.0.0.1', { app: 'vllm' }));
    await source.start();
    kube.upsert(PODS, pod('b', '10.0.0.2', { app: 'vllm' }, false));
    kube.upsert(PODS, pod('b', '10.0.0.2', { app: 'vllm' }, true));
    await waitFor(() => keys(store).length === 2);
    kube.upsert(PODS, pod('a', '10.0.0.1', { app: 'vllm' }, false));
    await waitFor(() => keys(store).join() === '10.0.0.2:8000');
    kube.upsert(PODS, pod('b', '10.0.0.9', { app: 'vllm' }));
    await waitFor(() => keys(store).join() === '10.0.0.9:8000');
    kube.remove(PODS, 'b');
    await waitFor(() => keys(store).length === 0);
    const terminating = pod('t', '10.0.0.7', { app: 'vllm' });
    (terminating.metadata as Record<string, unknown>).deletionTimestamp = '2026-01-01T00:00:00Z';
    kube.upsert(PODS, terminating);
    kube.upsert(PODS, pod('z', '10.0.0.8', { app: 'vllm' }));
    await waitFor(() => keys(store).join() === '10.0.0.8:8000');
  });

  it('reshapes live when the pool\'s selector or target ports change', async () => {
    const { kube, store, source } = await setup();
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm' }, [8000]));
    kube.upsert(PODS, pod('a', '10.0.0.1', { app: 'vllm' }));
    kube.upsert(PODS, pod('b', '10.0.0.2', { app: 'vllm-v2' }));
    await source.start();
    expect(keys(store)).toEqual(['10.0.0.1:8000']);
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm-v2' }, [8000]));
    await waitFor(() => keys(store).join() === '10.0.0.2:8000');
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm-v2' }, [8000, 8001]));
    await waitFor(() => keys(store).length === 2);
    expect(keys(store)).toEqual(['10.0.0.2:8000', '10.0.0.2:8001']);
    expect(store.get('10.0.0.2:8001')!.name).toBe('b-rank-1');
    kube.remove(POOLS, 'pool');
    await waitFor(() => keys(store).length === 0);
  });

  it('re-watches after the server closes watches, and restarts after the API fails, serving the last pool meanwhile', async () => {
    const { kube, store, source } = await setup();
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm' }, [8000]));
    kube.upsert(PODS, pod('a', '10.0.0.1', { app: 'vllm' }));
    await source.start();
    const syncs: boolean[] = [];
    source.onSyncChange = (s) => syncs.push(s);

    // Server-side close (the API server's watch timeout): resumed from the last resource version.
    kube.dropWatches();
    await waitFor(() => kube.watches >= 4);
    kube.upsert(PODS, pod('b', '10.0.0.2', { app: 'vllm' }));
    await waitFor(() => keys(store).length === 2);

    // The API breaks: watches refused and lists failing. The last pool keeps serving.
    kube.breakApi(3);
    await waitFor(() => source.synced === false, 10_000);
    expect(keys(store)).toEqual(['10.0.0.1:8000', '10.0.0.2:8000']);
    kube.heal();
    kube.upsert(PODS, pod('c', '10.0.0.3', { app: 'vllm' }));
    await waitFor(() => source.synced && keys(store).length === 3, 20_000);
    expect(syncs).toEqual([false, true]);
  }, 30_000);

  it('resumes a broken watch from its resource version (deletions replayed, no re-list), and re-lists on 410 Gone', async () => {
    const { kube, store, source } = await setup();
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm' }, [8000]));
    for (const [n, ip] of [['a', '10.0.0.1'], ['b', '10.0.0.2'], ['c', '10.0.0.3']]) kube.upsert(PODS, pod(n, ip, { app: 'vllm' }));
    await source.start();
    expect(keys(store)).toHaveLength(3);

    // Watches fail for a while; a pod is deleted meanwhile. Resuming replays the deletion.
    const lists0 = kube.lists;
    kube.breakApi(0);
    await waitFor(() => source.synced === false, 10_000);
    kube.remove(PODS, 'c');
    kube.heal();
    await waitFor(() => source.synced && keys(store).length === 2, 20_000);
    expect(keys(store)).toEqual(['10.0.0.1:8000', '10.0.0.2:8000']);
    expect(kube.lists).toBe(lists0);

    // Down again, and the server compacts its history: the resumed watch gets 410 and the
    // informer re-lists, which also drops a pod deleted while it could not watch.
    kube.breakApi(0);
    await waitFor(() => source.synced === false, 10_000);
    kube.remove(PODS, 'b');
    kube.upsert(PODS, pod('d', '10.0.0.4', { app: 'vllm' }));
    kube.compact();
    kube.heal();
    await waitFor(() => source.synced && keys(store).join() === '10.0.0.1:8000,10.0.0.4:8000', 20_000);
    expect(kube.lists).toBeGreaterThan(lists0);
  }, 45_000);

  it('ends on the last of several quick pool changes, with no stale informer left', async () => {
    const { kube, store, source } = await setup();
    kube.upsert(POOLS, inferencePool('pool', { app: 'v1' }, [8000]));
    for (const v of ['v1', 'v2', 'v3']) kube.upsert(PODS, pod(`p-${v}`, `10.0.1.${v.slice(1)}`, { app: v }));
    await source.start();
    kube.upsert(POOLS, inferencePool('pool', { app: 'v2' }, [8000]));
    kube.upsert(POOLS, inferencePool('pool', { app: 'v3' }, [8000]));
    await waitFor(() => keys(store).join() === '10.0.1.3:8000');
    await new Promise((r) => setTimeout(r, 200));
    expect(keys(store)).toEqual(['10.0.1.3:8000']);
    // A later change to a v2 pod must not reach the pool.
    kube.upsert(PODS, pod('p-v2b', '10.0.1.22', { app: 'v2' }));
    await new Promise((r) => setTimeout(r, 100));
    expect(keys(store)).toEqual(['10.0.1.3:8000']);
  });

  it('reads v1alpha2 pools (flat selector, targetPortNumber)', async () => {
    const { poolShape } = await import('../src/pool/k8s-source.ts');
    expect(poolShape({ spec: { selector: { app: 'vllm' } as never, targetPortNumber: 8000 } })).toEqual({ labels: { app: 'vllm' }, ports: [8000] });
    expect(poolShape({ spec: { selector: { matchLabels: { app: 'vllm' } }, targetPorts: [{ number: 8000 }, { number: 8001 }] } })).toEqual({ labels: { app: 'vllm' }, ports: [8000, 8001] });
  });

  it('serves --endpoint-selector pods without an InferencePool', async () => {
    const { kube, store, source } = await setup({ pool: false });
    kube.upsert(PODS, pod('a', '10.0.0.1', { app: 'vllm' }));
    kube.upsert(PODS, pod('b', '10.0.0.2', { app: 'x' }));
    await source.start();
    expect(keys(store)).toEqual(['10.0.0.1:8000']);
  });
});

describe('llm-epp on a Kubernetes pool', () => {
  it('discovers pods from the InferencePool and routes to them', async () => {
    const kube = await new FakeKube().start();
    const pods = [new FakePod({ waiting: 3 }, '127.0.0.2'), new FakePod({ waiting: 0 }, '127.0.0.3')];
    await Promise.all(pods.map((p) => p.start()));
    // Both fake pods listen on their own port; the pool's one target port must match, so use two pools' worth of ports via labels.
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm' }, [pods[0].port]));
    kube.upsert(PODS, pod('p0', '127.0.0.2', { app: 'vllm' }));
    const { app, client } = await startTestApp(['--pool-name=pool', '--pool-namespace=ns'], { waitReady: 1, kubeConfig: kube.kubeConfig() });
    cleanup.push(async () => {
      client.close();
      await app.stop(100);
      await Promise.all(pods.map((p) => p.stop()));
      await kube.stop();
    });
    expect(app.health.ready).toBe(true);
    const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'hi' }) });
    expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(pods[0].key);
    // The pool moves to the second pod's port and IP.
    kube.upsert(POOLS, inferencePool('pool', { app: 'vllm' }, [pods[1].port]));
    kube.upsert(PODS, pod('p1', '127.0.0.3', { app: 'vllm' }));
    kube.remove(PODS, 'p0');
    await waitFor(() => app.director.candidates(undefined).map((e) => e.key).join() === pods[1].key);
    const r2 = await client.send({ body: JSON.stringify({ model: 'm', prompt: 'hi' }) });
    expect(r2.setHeaders.get('x-gateway-destination-endpoint')).toBe(pods[1].key);
  });
});

describe('pod keys of llm-d Router v0.10 (PR #922)', () => {
  const withAnnotations = (annotations: Record<string, string>, hostIP?: string) => {
    const p = pod('vllm-0', '10.0.0.9', { app: 'vllm' }) as V1Pod;
    p.metadata!.annotations = annotations;
    if (hostIP) p.status!.hostIP = hostIP;
    return p;
  };
  const ports = (p: V1Pod) => podEndpoints([p], [8000, 8001, 8002]).map((e) => [e.port, e.name]);

  it('llm-d.ai/active-ports limits a pod to the target ports it lists; GAIE\'s key is the fallback', () => {
    expect(ports(withAnnotations({}))).toEqual([[8000, 'vllm-0-rank-0'], [8001, 'vllm-0-rank-1'], [8002, 'vllm-0-rank-2']]);
    expect(ports(withAnnotations({ 'llm-d.ai/active-ports': '8000, 8002' }))).toEqual([[8000, 'vllm-0-rank-0'], [8002, 'vllm-0-rank-2']]);
    expect(ports(withAnnotations({ 'inference.networking.k8s.io/active-ports': '8001' }))).toEqual([[8001, 'vllm-0-rank-1']]);
    // The llm-d key wins; entries that are not target ports, or not numbers, are ignored.
    expect(ports(withAnnotations({ 'llm-d.ai/active-ports': '8002,9999,abc', 'inference.networking.k8s.io/active-ports': '8000' }))).toEqual([[8002, 'vllm-0-rank-2']]);
    expect(ports(withAnnotations({ 'llm-d.ai/active-ports': '' }))).toEqual([]);
  });

  it('carries the pod\'s node address (status.hostIP) for node-level exporters', () => {
    expect(podEndpoints([withAnnotations({}, '192.168.3.4')], [8000])[0].nodeAddress).toBe('192.168.3.4');
    expect(podEndpoints([withAnnotations({})], [8000])[0].nodeAddress).toBeUndefined();
  });
});
