// A real Prometheus server for the dashboard check: a temporary config that
// scrapes one target every second and a temporary TSDB directory, on a
// loopback port, with its HTTP API. The process and the directory go away on
// stop(), and also if this process exits first (error, SIGINT).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../lib/processes.ts';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const MISSING_PROMETHEUS = `${PROMETHEUS_BIN} not found: install the Debian package \`prometheus\` (apt-get install -y prometheus)`;

export interface PrometheusOptions {
  bin?: string;
  /** host:port of the page to scrape. */
  target: string;
  job: string;
  /** Target labels, as service discovery would attach them. */
  labels: Record<string, string>;
  scrapeIntervalSec: number;
}

export interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

export type QueryResult = { ok: true; series: Series[] } | { ok: false; error: string };

export interface Prometheus {
  readonly url: string;
  /** /api/v1/query_range from start to end (Unix seconds) at `stepSec`. */
  queryRange(expr: string, start: number, end: number, stepSec: number): Promise<QueryResult>;
  /** /api/v1/query at `time` (Unix seconds): one number, or undefined for an empty result. */
  scalar(expr: string, time?: number): Promise<number | undefined>;
  /** /api/v1/label/<label>/values for series matching `selector`. */
  labelValues(label: string, selector: string | undefined): Promise<string[]>;
  /** Successful scrapes of the job so far. */
  scrapes(): Promise<number>;
  /** Wait until the job has been scraped successfully `n` times in all. */
  waitForScrapes(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPrometheus(o: PrometheusOptions): Promise<Prometheus> {
  const bin = o.bin ?? PROMETHEUS_BIN;
  if (!existsSync(bin)) throw new Error(bin === PROMETHEUS_BIN ? MISSING_PROMETHEUS : `${bin} not found`);
  const dir = mkdtempSync(join(tmpdir(), 'llm-epp-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  const interval = `${o.scrapeIntervalSec}s`;
  writeFileSync(
    config,
    stringify({
      global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
      scrape_configs: [{ job_name: o.job, metrics_path: '/metrics', static_configs: [{ targets: [o.target], labels: o.labels }] }],
    }),
  );
  let child: ChildProcess | undefined;
  const onExit = () => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  let stderr = '';
  let url = '';

  // A free port can be taken between our probe and Prometheus' bind: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const proc = spawn(bin, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    stderr = '';
    proc.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    let exited: string | undefined;
    proc.once('exit', (code, signal) => (exited = `exited with ${signal ?? code}`));
    proc.once('error', (err) => (exited = err.message));
    const deadline = Date.now() + 30_000;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) break;
      await sleep(100);
    }
    if (ready) break;
    proc.kill('SIGKILL');
    if (attempt === 3 || !/address already in use/.test(stderr)) {
      onExit();
      process.removeListener('exit', onExit);
      throw new Error(`Prometheus did not become ready (${exited ?? 'timed out after 30 s'}): ${stderr.trim().split('\n').slice(-5).join('\n')}`);
    }
  }

  // Queries go as POST forms (long expressions); label values and targets are GET-only.
  const api = async (path: string, params: Record<string, string>, method: 'GET' | 'POST' = 'POST'): Promise<{ status: string; data?: unknown; error?: string; errorType?: string }> => {
    const form = new URLSearchParams(params);
    const res = method === 'POST' ? await fetch(`${url}${path}`, { method, body: form }) : await fetch(`${url}${path}?${form}`);
    const text = await res.text();
    try {
      return JSON.parse(text);
    } catch {
      return { status: 'error', error: `HTTP ${res.status}: ${text.slice(0, 200)}` };
    }
  };
  const scalar = async (expr: string, time?: number) => {
    const r = await api('/api/v1/query', time === undefined ? { query: expr } : { query: expr, time: String(time) });
    if (r.status !== 'success') throw new Error(`Prometheus query ${expr}: ${r.error}`);
    const result = (r.data as { result: { value: [number, string] }[] }).result;
    return result.length ? Number(result[0].value[1]) : undefined;
  };
  const scrapes = async () => (await scalar(`sum_over_time(up{job="${o.job}"}[1h])`)) ?? 0;

  return {
    url,
    async queryRange(expr, start, end, stepSec) {
      const r = await api('/api/v1/query_range', { query: expr, start: String(start), end: String(end), step: `${stepSec}s` });
      if (r.status !== 'success') return { ok: false, error: `${r.errorType ?? 'error'}: ${r.error}` };
      return { ok: true, series: (r.data as { result: Series[] }).result };
    },
    scalar,
    async labelValues(label, selector) {
      const r = await api(`/api/v1/label/${encodeURIComponent(label)}/values`, selector ? { 'match[]': selector } : {}, 'GET');
      if (r.status !== 'success') throw new Error(`Prometheus label values of ${label} (${selector ?? 'all series'}): ${r.error}`);
      return r.data as string[];
    },
    scrapes,
    async waitForScrapes(n, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = await scrapes();
        if (got >= n) return;
        if (Date.now() > deadline) {
          const targets = await api('/api/v1/targets', {}, 'GET').catch(() => undefined);
          const t = (targets?.data as { activeTargets?: { health: string; lastError: string }[] } | undefined)?.activeTargets?.[0];
          throw new Error(`Prometheus scraped ${o.target} successfully ${got} times, not ${n}, within ${timeoutMs / 1000} s (target ${t?.health ?? 'unknown'}: ${t?.lastError || 'no error'})`);
        }
        await sleep(200);
      }
    },
    async stop() {
      const proc = child!;
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
      process.removeListener('exit', onExit);
    },
  };
}
