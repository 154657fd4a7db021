// The figures health.ts judges, measured per stage: the load generator's own
// event-loop lag, the event-loop lag and CPU of the processes it measures,
// and the machine's load average and CPU steal. Everything is read between
// stages (begin/end), never per request.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks';
import { request } from 'undici';
import type { HealthFigures, LoopLag, ProcessHealth } from './health.ts';
import { sumCounter } from './metrics.ts';

/** Sampling period of the event-loop delay histograms; a sample's lag is its delay minus this. */
export const LAG_RESOLUTION_MS = 10;
/** prom-client's default eventLoopMonitoringPrecision, which llm-epp uses for nodejs_eventloop_lag_*. */
export const PROM_CLIENT_LAG_RESOLUTION_MS = 10;
const CLK_TCK = 100;
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const r4 = (v: number) => Math.round(v * 10_000) / 10_000;
const roundLag = (l: LoopLag): LoopLag => ({ p50Ms: r3(l.p50Ms), p99Ms: r3(l.p99Ms), maxMs: r3(l.maxMs) });
const SCRAPE_TIMEOUT_MS = 5000;

/** Event-loop lag from an ELDHistogram (values in ns, including the sampling period). */
export function lagOf(h: ELDHistogram, resolutionMs: number): LoopLag | undefined {
  if (h.count === 0) return undefined;
  const f = (ns: number) => Math.max(0, ns / 1e6 - resolutionMs);
  return { p50Ms: f(h.percentile(50)), p99Ms: f(h.percentile(99)), maxMs: f(h.max) };
}

/** A source of one process's event-loop lag since its previous call (each call starts a new window). */
export type LagSource = () => Promise<LoopLag | undefined>;

async function get(url: string): Promise<string | undefined> {
  try {
    const res = await request(url, { headersTimeout: SCRAPE_TIMEOUT_MS, bodyTimeout: SCRAPE_TIMEOUT_MS });
    const text = await res.body.text();
    return res.statusCode === 200 ? text : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lag from a Node process's Prometheus page (prom-client's default metrics, as llm-epp serves on
 * --metrics-port): nodejs_eventloop_lag_p50/p99/max_seconds. prom-client resets its histogram on
 * every scrape, so a scrape at the start of a stage opens the window and one at the end reads it.
 */
export function promLagSource(metricsUrl: string): LagSource {
  return async () => {
    const text = await get(metricsUrl);
    if (text === undefined) return undefined;
    const s = (n: string) => sumCounter(text, [`nodejs_eventloop_lag_${n}_seconds`]);
    const p50 = s('p50');
    const p99 = s('p99');
    const max = s('max');
    if (p50 === undefined || p99 === undefined || max === undefined || !(max > 0)) return undefined;
    const f = (sec: number) => Math.max(0, sec * 1000 - PROM_CLIENT_LAG_RESOLUTION_MS);
    return { p50Ms: f(p50), p99Ms: f(p99), maxMs: f(max) };
  };
}

/** Lag from the lag probe (lag-probe.ts) preloaded into a child process: GET on its port answers and resets. */
export function probeLagSource(port: number): LagSource {
  return async () => {
    const text = await get(`http://127.0.0.1:${port}/`);
    if (text === undefined) return undefined;
    try {
      const j = JSON.parse(text) as Partial<LoopLag> & { count?: number };
      if (!j.count || typeof j.p99Ms !== 'number' || typeof j.p50Ms !== 'number' || typeof j.maxMs !== 'number') return undefined;
      return { p50Ms: j.p50Ms, p99Ms: j.p99Ms, maxMs: j.maxMs };
    } catch {
      return undefined;
    }
  };
}

/** utime + stime of a process in seconds, or undefined where /proc is not readable. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

export interface CpuTimes {
  total: number;
  idle: number;
  steal: number;
}

/** The aggregate "cpu" line of /proc/stat (jiffies), or undefined where it is not readable. */
export function readCpuTimes(text?: string): CpuTimes | undefined {
  let t = text;
  if (t === undefined) {
    try {
      t = readFileSync('/proc/stat', 'utf8');
    } catch {
      return undefined;
    }
  }
  const line = t.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
  const total = v.reduce((a, b) => a + b, 0);
  return { total, idle: v[3] + (v[4] ?? 0), steal: v[7] ?? 0 };
}

/** The 1-minute load average, or undefined where the OS does not have one. */
export function readLoadAverage(): number | undefined {
  if (process.platform === 'win32') return undefined;
  try {
    const m = /^(\d+(?:\.\d+)?)\s/.exec(readFileSync('/proc/loadavg', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // Not Linux: the OS's own figure.
  }
  return loadavg()[0];
}

/** A process whose health counts: its pid for CPU, and where its event-loop lag comes from. */
export interface MeasuredProcess {
  name: string;
  pid?: number;
  lag?: LagSource;
}

/** Per-stage health figures: begin() before the stage's first request, end() after it drained. */
export class HealthMonitor {
  readonly #own: ELDHistogram;
  #processes: MeasuredProcess[];
  #start: { wall: number; cpu?: CpuTimes; load?: number; proc: Map<string, number | undefined> } | undefined;

  constructor(processes: MeasuredProcess[] = []) {
    this.#processes = processes;
    this.#own = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
    this.#own.enable();
  }

  /** Add processes (the demo starts them after creating the monitor). */
  add(p: MeasuredProcess): void {
    this.#processes.push(p);
  }

  async begin(): Promise<void> {
    // Open every lag window (a read resets), then the counters.
    await Promise.all(this.#processes.map((p) => p.lag?.()));
    const proc = new Map<string, number | undefined>();
    for (const p of this.#processes) proc.set(p.name, p.pid === undefined ? undefined : processCpuSeconds(p.pid));
    this.#start = { wall: performance.now(), cpu: readCpuTimes(), load: readLoadAverage(), proc };
    this.#own.reset();
  }

  async end(): Promise<HealthFigures> {
    const own = lagOf(this.#own, LAG_RESOLUTION_MS);
    const s = this.#start ?? { wall: performance.now(), proc: new Map<string, number | undefined>() };
    const wallS = (performance.now() - s.wall) / 1000;
    const cpu = readCpuTimes();
    const load = readLoadAverage();
    const lags = await Promise.all(this.#processes.map((p) => p.lag?.()));
    const processes: Record<string, ProcessHealth> = {};
    this.#processes.forEach((p, i) => {
      const h: ProcessHealth = {};
      const lag = lags[i];
      if (lag) h.loopLag = roundLag(lag);
      const c0 = s.proc.get(p.name);
      const c1 = p.pid === undefined ? undefined : processCpuSeconds(p.pid);
      if (c0 !== undefined && c1 !== undefined && wallS > 0) h.cpuCores = r3((c1 - c0) / wallS);
      processes[p.name] = h;
    });
    // Machine-wide CPUs, as the load average is machine-wide.
    const f: HealthFigures = { processes, cpus: cpus().length };
    if (own) f.loopLag = roundLag(own);
    if (s.load !== undefined && load !== undefined) f.loadAverage = { start: s.load, end: load };
    if (s.cpu && cpu && cpu.total > s.cpu.total) {
      const dt = cpu.total - s.cpu.total;
      f.stealFraction = r4((cpu.steal - s.cpu.steal) / dt);
      f.cpuBusyFraction = r4(1 - (cpu.idle - s.cpu.idle) / dt);
    }
    return f;
  }

  close(): void {
    this.#own.disable();
  }
}
