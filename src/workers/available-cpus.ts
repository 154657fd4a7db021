// How many CPUs this container may use: the cgroup's CPU quota when one is
// set (Kubernetes `resources.limits.cpu`), else the CPUs the process may run
// on. `--workers` defaults to this (rounded up: a 1.5-CPU limit gets 2).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** cgroup v2 `cpu.max` ("max 100000" or "150000 100000"), else cgroup v1's cfs quota/period. */
export function cgroupCpuLimit(read: (path: string) => string | undefined = readText): number | undefined {
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) {
    const [quota, period] = v2.trim().split(/\s+/);
    return quotaCpus(quota, period);
  }
  const quota = read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us');
  const period = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us');
  if (quota === undefined || period === undefined) return undefined;
  return quotaCpus(quota.trim(), period.trim());
}

function quotaCpus(quota: string | undefined, period: string | undefined): number | undefined {
  if (!quota || quota === 'max' || quota === '-1') return undefined;
  const q = Number(quota);
  const p = Number(period || 100000);
  if (!(q > 0) || !(p > 0)) return undefined;
  return q / p;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whole CPUs available: min(cgroup quota rounded up, schedulable CPUs), at least 1. */
export function availableCpus(read?: (path: string) => string | undefined): number {
  const cpus = availableParallelism();
  const limit = cgroupCpuLimit(read);
  return Math.max(1, limit === undefined ? cpus : Math.min(cpus, Math.ceil(limit)));
}
