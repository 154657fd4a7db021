// Active-passive HA: two replicas contend for one Lease on a fake API server.
import { afterEach, describe, expect, it } from 'vitest';
import { LeaderElector } from '../src/ha/leader-election.ts';
import { createLogger } from '../src/log.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import { FakeKube, inferencePool, pod } from './helpers/fake-kube.ts';
import { FakePod } from './helpers/fake-pod.ts';

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/ns/leases';
const log = createLogger('silent');
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('leader election', () => {
  it('elects one leader; when it dies without releasing, the standby takes over after the lease duration', async () => {
    const kube = await new FakeKube().start();
    const opts = { namespace: 'ns', name: 'llm-epp-pool', leaseDurationMs: 1000, retryPeriodMs: 100 };
    const a = new LeaderElector(kube.kubeConfig(), { ...opts, identity: 'a' }, log);
    const b = new LeaderElector(kube.kubeConfig(), { ...opts, identity: 'b' }, log);
    cleanup.push(async () => {
      await a.stop(false);
      await b.stop(false);
      await kube.stop();
    });
    a.start();
    await waitFor(() => a.isLeader);
    b.start();
    await new Promise((r) => setTimeout(r, 400));
    expect(b.isLeader).toBe(false);
    expect((kube.get(LEASES, 'llm-epp-pool')!.spec as { holderIdentity: string }).holderIdentity).toBe('a');

    // a crashes: it stops renewing and does not release.
    const died = Date.now();
    await a.stop(false);
    await waitFor(() => b.isLeader, 5000);
    const took = Date.now() - died;
    expect(took).toBeGreaterThanOrEqual(900); // not before the lease expired
    expect(took).toBeLessThan(2500); // within the lease duration plus a retry or two
    const spec = kube.get(LEASES, 'llm-epp-pool')!.spec as { holderIdentity: string; leaseTransitions: number };
    expect(spec.holderIdentity).toBe('b');
    expect(spec.leaseTransitions).toBe(1);
  });

  it('two llm-epp replicas: only the leader is ready; stopping it hands over at once', async () => {
    const kube = await new FakeKube().start();
    const fake = await new FakePod({}, '127.0.0.2').start();
    kube.upsert('/apis/inference.networking.k8s.io/v1/namespaces/ns/inferencepools', inferencePool('pool', { app: 'vllm' }, [fake.port]));
    kube.upsert('/api/v1/namespaces/ns/pods', pod('p', '127.0.0.2', { app: 'vllm' }));
    const flags = ['--pool-name=pool', '--pool-namespace=ns', '--ha-enable-leader-election'];
    const one = await startTestApp(flags, { kubeConfig: kube.kubeConfig(), leaseDurationMs: 1000 });
    await waitFor(() => one.app.health.ready);
    const two = await startTestApp(flags, { kubeConfig: kube.kubeConfig(), leaseDurationMs: 1000 });
    cleanup.push(async () => {
      two.client.close();
      await two.app.stop(100);
      await fake.stop();
      await kube.stop();
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(one.app.health.ready).toBe(true);
    expect(two.app.health.ready).toBe(false);
    one.client.close();
    await one.app.stop(100); // releases the lease
    await waitFor(() => two.app.health.ready, 3000);
    const r = await two.client.send({ body: JSON.stringify({ model: 'm', prompt: 'x' }) });
    expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(fake.key);
  });
});
