// Reports of load runs: per strategy and stage, the metrics inference-perf and
// `vllm bench serve` publish (TTFT, TPOT, ITL, e2e; request and token
// throughput; goodput against an SLO; errors), plus what routing changes:
// the spread of requests over pods and the prefix-cache hit rate from the
// pods' counters. Written as JSON, a Markdown table (strategies side by side)
// and a self-contained HTML page with inline SVG charts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { round, summarize, type Summary } from '../lib/stats.ts';
import type { PodCacheCounters, RequestRecord, RunResult, StageResult } from './runner.ts';
import type { Environment } from './environment.ts';
import { assessHealth, type HealthThresholds, type StageHealth } from './health.ts';
import { reasonsText, toCsv, toHtml } from './report-html.ts';

export { barChart, lineChart, svgLineChart, toCsv, toHtml, type Series } from './report-html.ts';

/** Service-level objective for goodput: a request counts when it meets every given bound. */
export interface SLO {
  /** Time to first token, ms. */
  ttftMs?: number;
  /** Time per output token, ms. */
  tpotMs?: number;
  /** End-to-end latency, ms. */
  e2eMs?: number;
}

export interface ReportOptions {
  /** Goodput constraints. Default { ttftMs: 2000, tpotMs: 100 }. */
  slo?: SLO;
  /** All pod names (as in the x-sim-pod / x-llm-epp-endpoint header), so pods that received nothing count in the spread. Default: the pods seen. */
  pods?: string[];
  /** Free-form description stored in the report (workload parameters, command line). */
  meta?: Record<string, unknown>;
  /** Title of the Markdown/HTML reports. */
  title?: string;
  /** When a stage counts as unreliable (health.ts defaults). */
  thresholds?: HealthThresholds;
  /** Command, machine, versions and configuration (environment.ts), stored at the top of the report. */
  environment?: Environment;
  /** The run was interrupted: the report holds what completed. */
  partial?: boolean;
}

export interface PodSpread {
  counts: Record<string, number>;
  /** Coefficient of variation (population stddev / mean) of the per-pod counts; 0 = perfectly even. */
  cv: number;
  min: number;
  max: number;
}

export interface CacheHitRate {
  hits: number;
  queries: number;
  /** hits / queries over all pods, NaN when there were no queries. */
  rate: number;
  perPod: Record<string, number>;
}

export interface StageReport {
  strategy: string;
  stage: number;
  name: string;
  /** x value for charts: offered rate, concurrency or stage index. */
  x: number;
  offeredRate?: number;
  concurrency?: number;
  /** Measured requests sent per second of the arrival window. */
  achievedRate: number;
  durationS: number;
  requests: number;
  completed: number;
  failed: number;
  errors: Record<string, number>;
  requestThroughput: number;
  outputTokenThroughput: number;
  inputTokenThroughput: number;
  ttftMs: Summary;
  tpotMs: Summary;
  itlMs: Summary;
  e2eMs: Summary;
  goodput: { requestsPerS: number; fraction: number; met: number };
  scheduleDelayMs: Summary;
  /** Arrivals that waited for the workload (multi-turn), excluded from schedule delay. */
  blockedArrivals: number;
  pods: PodSpread;
  /** From the pods' vllm:prefix_cache_* counters, when scraped. */
  prefixCacheHitRate?: CacheHitRate;
  /** Σ cached_tokens / Σ prompt_tokens from the usage chunks, when the server reports cached tokens. */
  cachedTokenRate?: number;
  /** Requests cancelled by an interruption (Ctrl-C): in neither `completed` nor `failed`. */
  aborted: number;
  /** Could the machine keep up? Figures, verdict, reasons and advice (health.ts). */
  health: StageHealth;
  /** Multi-tenant workloads: the figures of each tenant's requests (goodput over the stage's window, so they add up). */
  tenants?: TenantFigures[];
}

/** One tenant's requests in a stage. */
export interface TenantFigures {
  tenant: string;
  requests: number;
  completed: number;
  failed: number;
  /** Answered 429: shed (flow control, or the saturation admission of sheddable requests). */
  rejected429: number;
  /** Failed otherwise (other statuses, timeouts, broken streams). */
  otherErrors: number;
  /** x-llm-d-request-dropped-reason of the requests not served, counted. */
  droppedReasons: Record<string, number>;
  requestThroughput: number;
  ttftMs: Summary;
  e2eMs: Summary;
  goodput: { requestsPerS: number; fraction: number; met: number };
}

export interface Report {
  title: string;
  generatedAt: string;
  workload: string;
  slo: SLO;
  strategies: string[];
  /** What the x axis of the charts is. */
  xLabel: string;
  stages: StageReport[];
  meta?: Record<string, unknown>;
  /** One line per comparison (verdict.ts), set by the caller. */
  verdict?: string[];
  /** environment.ts */
  command?: string;
  machine?: Environment['machine'];
  versions?: Environment['versions'];
  config?: unknown;
  /** Interrupted run: only what completed. */
  partial?: boolean;
}

const DEFAULT_SLO: SLO = { ttftMs: 2000, tpotMs: 100 };

// ---------------------------------------------------------------------------
// Metric helpers (exported for tests and other callers)

/** (e2e − ttft) / (output − 1), or undefined when it is not defined. */
export function tpotOf(r: Pick<RequestRecord, 'ttftMs' | 'e2eMs' | 'outputTokens'>): number | undefined {
  if (r.ttftMs === undefined || r.outputTokens < 2) return undefined;
  return (r.e2eMs - r.ttftMs) / (r.outputTokens - 1);
}

export function meetsSLO(r: Pick<RequestRecord, 'ok' | 'ttftMs' | 'e2eMs' | 'outputTokens'>, slo: SLO): boolean {
  if (!r.ok) return false;
  if (slo.ttftMs !== undefined && !(r.ttftMs !== undefined && r.ttftMs <= slo.ttftMs)) return false;
  if (slo.tpotMs !== undefined) {
    const t = tpotOf(r);
    if (t !== undefined && t > slo.tpotMs) return false;
  }
  if (slo.e2eMs !== undefined && r.e2eMs > slo.e2eMs) return false;
  return true;
}

/** Goodput: requests per second that succeeded and met the SLO, over a window of `windowS` seconds. */
export function goodput(
  records: ReadonlyArray<Pick<RequestRecord, 'ok' | 'ttftMs' | 'e2eMs' | 'outputTokens'>>,
  slo: SLO,
  windowS: number,
): { requestsPerS: number; fraction: number; met: number } {
  let met = 0;
  for (const r of records) if (meetsSLO(r, slo)) met++;
  return { met, requestsPerS: windowS > 0 ? met / windowS : NaN, fraction: records.length ? met / records.length : NaN };
}

/** Requests per pod and their coefficient of variation. `pods` adds pods with zero requests. */
export function podSpread(podOfEach: ReadonlyArray<string | undefined>, pods: readonly string[] = []): PodSpread {
  const counts: Record<string, number> = {};
  for (const p of pods) counts[p] = 0;
  for (const p of podOfEach) if (p !== undefined) counts[p] = (counts[p] ?? 0) + 1;
  const v = Object.values(counts);
  if (v.length === 0) return { counts, cv: NaN, min: NaN, max: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
  return { counts, cv: mean > 0 ? Math.sqrt(variance) / mean : NaN, min: Math.min(...v), max: Math.max(...v) };
}

/** Prefix-cache hit rate from before/after values of vllm:prefix_cache_hits_total and vllm:prefix_cache_queries_total per pod. */
export function prefixCacheHitRate(before: PodCacheCounters, after: PodCacheCounters): CacheHitRate {
  let hits = 0;
  let queries = 0;
  const perPod: Record<string, number> = {};
  for (const [pod, a] of Object.entries(after)) {
    const b = before[pod] ?? { hits: 0, queries: 0 };
    // A counter that went down means the pod restarted: count from zero.
    const dh = a.hits >= b.hits ? a.hits - b.hits : a.hits;
    const dq = a.queries >= b.queries ? a.queries - b.queries : a.queries;
    hits += dh;
    queries += dq;
    perPod[pod] = dq > 0 ? dh / dq : NaN;
  }
  return { hits, queries, rate: queries > 0 ? hits / queries : NaN, perPod };
}

function rounded(s: Summary): Summary {
  return {
    count: s.count,
    mean: round(s.mean),
    p50: round(s.p50),
    p90: round(s.p90),
    p99: round(s.p99),
    p999: round(s.p999),
    max: round(s.max),
  };
}

/** "HTTP 500: long body" → "HTTP 500"; error codes whole; anything that is not a string (an old record's numeric code) as text. */
export function errorKind(e: unknown): string {
  const s = typeof e === 'string' ? e : String(e);
  const m = /^HTTP \d+/.exec(s);
  return m ? m[0] : s.slice(0, 60);
}

/** Distinct tenants kept apart in a report (the workload allows as many); more are counted together. */
const TENANT_KEYS = 16;
/** Distinct dropped reasons kept apart per tenant; more are counted as "other". */
const REASON_KEYS = 8;
const OTHER_TENANTS = 'other tenants';

/** Count `key` in `into`, at most `max` distinct keys; past that under `other`. */
function countBounded(into: Record<string, number>, key: string, max: number, other: string): void {
  const k = key in into || Object.keys(into).length < max ? key : other;
  into[k] = (into[k] ?? 0) + 1;
}

/** Each tenant's figures, tenants in the order of their first arrival (then by name); undefined when no record has a tenant. */
function tenantFigures(rs: readonly RequestRecord[], slo: SLO, windowS: number): TenantFigures[] | undefined {
  const by = new Map<string, RequestRecord[]>();
  for (const r of rs) {
    if (r.tenant === undefined) continue;
    const key = by.has(r.tenant) || by.size < TENANT_KEYS ? r.tenant : OTHER_TENANTS;
    const list = by.get(key);
    if (list) list.push(r);
    else by.set(key, [r]);
  }
  if (by.size === 0) return undefined;
  const first = (list: readonly RequestRecord[]) => list.reduce((m, r) => Math.min(m, r.intendedMs), Infinity);
  const order = [...by].sort((a, b) => first(a[1]) - first(b[1]) || a[0].localeCompare(b[0]));
  return order.map(([tenant, list]) => {
    const ok = list.filter((r) => r.ok);
    const droppedReasons: Record<string, number> = {};
    let rejected429 = 0;
    for (const r of list) {
      if (r.ok) continue;
      if (r.status === 429) rejected429++;
      if (r.droppedReason !== undefined) countBounded(droppedReasons, r.droppedReason, REASON_KEYS, 'other');
    }
    const g = goodput(list, slo, windowS);
    return {
      tenant,
      requests: list.length,
      completed: ok.length,
      failed: list.length - ok.length,
      rejected429,
      otherErrors: list.length - ok.length - rejected429,
      droppedReasons,
      requestThroughput: round(ok.length / windowS),
      ttftMs: rounded(summarize(ok.flatMap((r) => (r.ttftMs === undefined ? [] : [r.ttftMs])))),
      e2eMs: rounded(summarize(ok.map((r) => r.e2eMs))),
      goodput: { met: g.met, requestsPerS: round(g.requestsPerS), fraction: round(g.fraction, 4) },
    };
  });
}

/** Metrics of one stage of one run. */
export function stageReport(strategy: string, st: StageResult, opts: ReportOptions = {}): StageReport {
  const slo = opts.slo ?? DEFAULT_SLO;
  const rs = st.records.filter((r) => !r.warmup && !r.aborted);
  const aborted = st.records.filter((r) => !r.warmup && r.aborted).length;
  const ok = rs.filter((r) => r.ok);
  let lastEnd = st.measuredStartMs;
  for (const r of rs) lastEnd = Math.max(lastEnd, r.startMs + r.e2eMs);
  const windowS = Math.max(1e-3, (lastEnd - st.measuredStartMs) / 1000);
  const arrivalS = Math.max(1e-3, (st.arrivalsEndMs - st.measuredStartMs) / 1000);
  const errors: Record<string, number> = {};
  for (const r of rs) {
    if (r.ok) continue;
    const k = errorKind(r.error ?? 'error');
    errors[k] = (errors[k] ?? 0) + 1;
  }
  const ttft: number[] = [];
  const tpot: number[] = [];
  const itl: number[] = [];
  const e2e: number[] = [];
  let out = 0;
  let inp = 0;
  let cached = 0;
  let cachedPrompt = 0;
  for (const r of ok) {
    if (r.ttftMs !== undefined) ttft.push(r.ttftMs);
    const t = tpotOf(r);
    if (t !== undefined) tpot.push(t);
    for (const g of r.itlMs) itl.push(g);
    e2e.push(r.e2eMs);
    out += r.outputTokens;
    inp += r.promptTokens ?? 0;
    if (r.cachedTokens !== undefined && r.promptTokens) {
      cached += r.cachedTokens;
      cachedPrompt += r.promptTokens;
    }
  }
  const pods = new Set(opts.pods ?? []);
  const delays = rs.filter((r) => !r.blocked).map((r) => r.scheduleDelayMs);
  const delay = rounded(summarize(delays));
  const rep: StageReport = {
    strategy,
    stage: st.index,
    name: st.name,
    x: st.rate ?? st.concurrency ?? st.index + 1,
    achievedRate: round(rs.length / arrivalS),
    durationS: round(windowS),
    requests: rs.length,
    completed: ok.length,
    failed: rs.length - ok.length,
    errors,
    requestThroughput: round(ok.length / windowS),
    outputTokenThroughput: round(out / windowS, 1),
    inputTokenThroughput: round(inp / windowS, 1),
    ttftMs: rounded(summarize(ttft)),
    tpotMs: rounded(summarize(tpot)),
    itlMs: rounded(summarize(itl)),
    e2eMs: rounded(summarize(e2e)),
    goodput: (() => {
      const g = goodput(rs, slo, windowS);
      return { met: g.met, requestsPerS: round(g.requestsPerS), fraction: round(g.fraction, 4) };
    })(),
    scheduleDelayMs: delay,
    blockedArrivals: rs.length - delays.length,
    pods: podSpread(
      rs.map((r) => r.pod),
      [...pods],
    ),
    aborted,
    health: assessHealth(st.health, delay.p99, opts.thresholds),
  };
  rep.pods.cv = round(rep.pods.cv, 4);
  if (st.rate !== undefined) rep.offeredRate = st.rate;
  if (st.concurrency !== undefined) rep.concurrency = st.concurrency;
  if (st.cacheBefore && st.cacheAfter) {
    const h = prefixCacheHitRate(st.cacheBefore, st.cacheAfter);
    h.rate = round(h.rate, 4);
    for (const k of Object.keys(h.perPod)) h.perPod[k] = round(h.perPod[k], 4);
    rep.prefixCacheHitRate = h;
  }
  if (cachedPrompt > 0) rep.cachedTokenRate = round(cached / cachedPrompt, 4);
  const tenants = tenantFigures(rs, slo, windowS);
  if (tenants) rep.tenants = tenants;
  return rep;
}

/** Aggregate runs (one per strategy) into a report. */
export function buildReport(results: RunResult | RunResult[], options: ReportOptions = {}): Report {
  const runs = Array.isArray(results) ? results : [results];
  const stages: StageReport[] = [];
  for (const run of runs) for (const st of run.stages) stages.push(stageReport(run.strategy, st, options));
  const strategies = [...new Set(runs.map((r) => r.strategy))];
  const anyRate = stages.some((s) => s.offeredRate !== undefined);
  const anyConc = stages.some((s) => s.concurrency !== undefined);
  const report: Report = {
    title: options.title ?? `llm-epp load report: ${[...new Set(runs.map((r) => r.workload))].join(', ')}`,
    generatedAt: new Date().toISOString(),
    workload: [...new Set(runs.map((r) => r.workload))].join(', '),
    slo: options.slo ?? DEFAULT_SLO,
    strategies,
    xLabel: anyRate && !anyConc ? 'offered QPS' : anyConc && !anyRate ? 'concurrency' : 'stage',
    stages,
  };
  if (report.xLabel === 'stage') for (const s of stages) s.x = s.stage + 1;
  if (options.meta) report.meta = options.meta;
  if (options.environment) {
    const e = options.environment;
    report.command = e.command;
    report.machine = e.machine;
    report.versions = e.versions;
    report.config = e.config;
  }
  if (options.partial) report.partial = true;
  return report;
}

// ---------------------------------------------------------------------------
// Markdown

function fmt(v: number | undefined, digits?: number): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return v.toFixed(d);
}

function pct(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(1)} %`;
}

function stageKeys(r: Report): string[] {
  const seen: string[] = [];
  for (const s of r.stages) if (!seen.includes(s.name)) seen.push(s.name);
  return seen;
}

const MD_COLUMNS: Array<[string, (s: StageReport) => string]> = [
  ['QPS sent', (s) => fmt(s.achievedRate)],
  ['req/s', (s) => fmt(s.requestThroughput)],
  ['out tok/s', (s) => fmt(s.outputTokenThroughput, 0)],
  ['TTFT p50', (s) => fmt(s.ttftMs.p50)],
  ['TTFT p90', (s) => fmt(s.ttftMs.p90)],
  ['TTFT p99', (s) => fmt(s.ttftMs.p99)],
  ['TTFT mean', (s) => fmt(s.ttftMs.mean)],
  ['TPOT p50', (s) => fmt(s.tpotMs.p50)],
  ['TPOT p99', (s) => fmt(s.tpotMs.p99)],
  ['ITL p50', (s) => fmt(s.itlMs.p50)],
  ['ITL p99', (s) => fmt(s.itlMs.p99)],
  ['E2E p50', (s) => fmt(s.e2eMs.p50)],
  ['E2E p99', (s) => fmt(s.e2eMs.p99)],
  ['goodput req/s', (s) => `${fmt(s.goodput.requestsPerS)} (${pct(s.goodput.fraction)})`],
  ['errors', (s) => String(s.failed)],
  ['pod CV', (s) => fmt(s.pods.cv, 2)],
  ['cache hit', (s) => pct(s.prefixCacheHitRate?.rate ?? s.cachedTokenRate)],
  ['sched delay p50/p99/max', (s) => `${fmt(s.scheduleDelayMs.p50, 1)}/${fmt(s.scheduleDelayMs.p99, 1)}/${fmt(s.scheduleDelayMs.max, 0)}`],
  ['health', (s) => (s.health.reliable ? 'ok' : '**unreliable**')],
];

/** The per-tenant table (Markdown lines), empty when no stage has tenants. */
export function tenantTable(r: Report): string[] {
  if (!r.stages.some((s) => s.tenants)) return [];
  const lines = ['| stage | strategy | tenant | requests | ok | 429 | dropped reason | other errors | TTFT p50 | TTFT p90 | goodput req/s |', '|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|'];
  for (const key of stageKeys(r)) {
    for (const strat of r.strategies) {
      const s = r.stages.find((x) => x.name === key && x.strategy === strat);
      for (const t of s?.tenants ?? []) {
        lines.push(`| ${key} | ${strat} | ${t.tenant} | ${t.requests} | ${t.completed} | ${t.rejected429} | ${reasonsText(t.droppedReasons)} | ${t.otherErrors} | ${fmt(t.ttftMs.p50)} | ${fmt(t.ttftMs.p90)} | ${fmt(t.goodput.requestsPerS)} (${pct(t.goodput.fraction)}) |`);
      }
    }
  }
  return lines;
}

function sloText(slo: SLO): string {
  const parts: string[] = [];
  if (slo.ttftMs !== undefined) parts.push(`TTFT ≤ ${slo.ttftMs} ms`);
  if (slo.tpotMs !== undefined) parts.push(`TPOT ≤ ${slo.tpotMs} ms`);
  if (slo.e2eMs !== undefined) parts.push(`E2E ≤ ${slo.e2eMs} ms`);
  return parts.join(', ') || 'none';
}

/** A Markdown table: one row per stage × strategy, strategies next to each other within a stage. Latencies in ms. */
export function toMarkdown(r: Report): string {
  const lines: string[] = [];
  lines.push(`## ${r.title}`, '');
  if (r.partial) lines.push('**Partial report: the run was interrupted; it holds the stages and requests that completed.**', '');
  for (const v of r.verdict ?? []) lines.push(`> ${v}`);
  if (r.verdict?.length) lines.push('');
  lines.push(`Workload: ${r.workload}. Latencies in ms. Goodput SLO: ${sloText(r.slo)}. Warm-up excluded.`, '');
  lines.push(`| stage | strategy | ${MD_COLUMNS.map((c) => c[0]).join(' | ')} |`);
  lines.push(`|---|---|${MD_COLUMNS.map(() => '---:').join('|')}|`);
  for (const key of stageKeys(r)) {
    for (const strat of r.strategies) {
      const s = r.stages.find((x) => x.name === key && x.strategy === strat);
      if (!s) continue;
      lines.push(`| ${key} | ${strat} | ${MD_COLUMNS.map((c) => c[1](s)).join(' | ')} |`);
    }
  }
  const tenants = tenantTable(r);
  if (tenants.length) lines.push('', 'Per tenant (goodput over the stage\'s window, so the tenants add up to the stage):', '', ...tenants);
  const errs = r.stages.filter((s) => s.failed > 0);
  if (errs.length) {
    lines.push('', 'Errors:');
    for (const s of errs) lines.push(`- ${s.strategy} ${s.name}: ${Object.entries(s.errors).map(([k, v]) => `${k} × ${v}`).join(', ')}`);
  }
  const bad = r.stages.filter((s) => !s.health.reliable);
  if (bad.length) {
    lines.push('', 'Unreliable (the machine could not keep up; these figures measure it as much as the router):');
    for (const s of bad) lines.push(`- ${s.strategy} ${s.name}: ${s.health.reasons.join('; ')}. What to do: ${s.health.advice.join('; ')}.`);
  }
  if (r.machine && r.versions) {
    const m = r.machine;
    lines.push('', `Machine: ${m.cpus} × ${m.model}, ${m.memoryGiB} GiB, load average ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} at the start; Node ${r.versions.node}, llm-epp ${r.versions.llmEpp}${r.versions.commit ? ' (' + r.versions.commit.slice(0, 12) + ')' : ''}.`);
  }
  if (r.command) lines.push('', `Command: \`${r.command}\``);
  return lines.join('\n') + '\n';
}

/** Write `<outPrefix>.json`, `.md`, `.html`, `.csv` (and `.requests.jsonl` when runs are given). Returns the paths. */
export function writeReports(report: Report, outPrefix: string, runs?: RunResult[]): { json: string; md: string; html: string; csv: string; requests?: string } {
  mkdirSync(dirname(outPrefix) || '.', { recursive: true });
  const paths: { json: string; md: string; html: string; csv: string; requests?: string } = {
    json: `${outPrefix}.json`,
    md: `${outPrefix}.md`,
    html: `${outPrefix}.html`,
    csv: `${outPrefix}.csv`,
  };
  writeFileSync(paths.json, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(paths.md, toMarkdown(report));
  writeFileSync(paths.html, toHtml(report, { runs, csvHref: basename(paths.csv) }));
  writeFileSync(paths.csv, toCsv(report));
  if (runs && runs.length) {
    paths.requests = `${outPrefix}.requests.jsonl`;
    const lines: string[] = [];
    for (const run of runs) for (const st of run.stages) for (const rec of st.records) lines.push(JSON.stringify({ strategy: run.strategy, stageName: st.name, ...rec }));
    writeFileSync(paths.requests, lines.join('\n') + '\n');
  }
  return paths;
}
