// The state-sync wire format and the checks on what arrives from other
// replicas; the cgroup CPU limit --workers defaults to.
import { describe, expect, it } from 'vitest';
import { invalidBatch, type SyncBatch } from '../src/sync/batch.ts';
import { decodeBatches, encodeBatches } from '../src/sync/codec.ts';
import { availableCpus, cgroupCpuLimit } from '../src/workers/available-cpus.ts';
import { stateSyncUrlProblem } from '../src/flags.ts';
import { redactedUrl, redisSyncSettings } from '../src/sync/redis-transport.ts';

describe('state-sync codec', () => {
  it('round-trips batches, block hashes bit for bit', () => {
    const words = new Uint32Array([0xdeadbeef, 1, 0xffffffff, 0]);
    const b: SyncBatch = { origin: 'pod-a/0', at: 123, prefix: [{ plugin: 'prefix-cache-scorer', endpoint: '10.0.0.1:8000', words }], load: [{ endpoint: '10.0.0.1:8000', inFlight: 3, tokens: 900, dispatched: 17 }], sessions: [{ plugin: 's', session: 'abc', endpoint: '10.0.0.1:8000' }], full: true };
    const [out] = decodeBatches(encodeBatches([b]));
    expect(invalidBatch(out)).toBeUndefined();
    expect([...out.prefix![0].words]).toEqual([...words]);
    expect(out.load).toEqual(b.load);
    expect(out.sessions).toEqual(b.sessions);
    expect(out.full).toBe(true);
  });

  it('refuses what is not a batch this version wrote', () => {
    expect(() => decodeBatches(Buffer.from('not msgpack at all'))).toThrow();
    expect(() => decodeBatches(encodeBatches([]).subarray(0, 0))).toThrow();
    const [odd] = decodeBatches(encodeBatches([{ origin: 'x/0', at: 1, load: [{ endpoint: 'e', inFlight: -1, tokens: 0, dispatched: 0 }] }]));
    expect(invalidBatch(odd)).toBe('load record');
    expect(invalidBatch({ origin: 'x'.repeat(600), at: 1 })).toBe('origin');
    expect(invalidBatch({ origin: 'x/0', at: 1, prefix: [{ plugin: 'p', endpoint: 'e', words: new Uint32Array(3) }] })).toBe('prefix words');
  });
});

describe('--state-sync URL', () => {
  it('accepts redis:// and rediss:// with key and history, names what is wrong otherwise', () => {
    expect(stateSyncUrlProblem('redis://redis:6379')).toBeUndefined();
    expect(stateSyncUrlProblem('rediss://u:p@redis:6380/2?key=llm-epp:a&history=500')).toBeUndefined();
    expect(stateSyncUrlProblem('http://redis:6379')).toMatch(/scheme "http"/);
    expect(stateSyncUrlProblem('redis://redis:6379/db')).toMatch(/database/);
    expect(stateSyncUrlProblem('redis://redis:6379?ttl=3')).toMatch(/unknown parameter "ttl"/);
    expect(stateSyncUrlProblem('nope')).toMatch(/not a URL/);
    expect(redisSyncSettings('redis://redis:6379', 'pool-a')).toEqual({ url: 'redis://redis:6379', key: 'llm-epp:state:pool-a', history: 10000 });
    expect(redactedUrl('redis://u:secret@redis:6379')).not.toContain('secret');
  });
});

describe('--workers default', () => {
  const files = (m: Record<string, string>) => (path: string) => m[path];
  it('reads the cgroup v2 and v1 CPU quota, rounded up and capped by the CPUs', () => {
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '400000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }))).toBe(4);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }))).toBeUndefined();
    expect(availableCpus(files({ '/sys/fs/cgroup/cpu.max': '50000 100000' }))).toBe(1);
    expect(availableCpus(files({ '/sys/fs/cgroup/cpu.max': '100000000 100000' }))).toBeLessThanOrEqual(1000);
  });
});
