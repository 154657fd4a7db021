// Reports of load runs: per strategy and stage, the metrics inference-perf and
// `vllm bench serve` publish (TTFT, TPOT, ITL, e2e; request and token
// throughput; goodput against an SLO; errors), plus what routing changes:
// the spread of requests over pods and the prefix-cache hit rate from the
// pods' counters. Written as JSON, a Markdown table (strategies side by side)
// and a self-contained HTML page with inline SVG charts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { round, summarize, type Summary } from '../lib/stats.ts';
import type { PodCacheCounters, RequestRecord, RunResult, StageResult } from './runner.ts';

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

function errorKind(e: string): string {
  // "HTTP 500: long body" → "HTTP 500"; keep error codes whole.
  const m = /^HTTP \d+/.exec(e);
  return m ? m[0] : e.slice(0, 60);
}

/** Metrics of one stage of one run. */
export function stageReport(strategy: string, st: StageResult, opts: ReportOptions = {}): StageReport {
  const slo = opts.slo ?? DEFAULT_SLO;
  const rs = st.records.filter((r) => !r.warmup);
  const ok = rs.filter((r) => r.ok);
  let lastEnd = st.measuredStartMs;
  for (const r of rs) lastEnd = Math.max(lastEnd, r.startMs + r.e2eMs);
  const windowS = Math.max(1e-3, (lastEnd - st.measuredStartMs) / 1000);
  const arrivalS = Math.max(1e-3, (st.arrivalsEndMs - st.measuredStartMs) / 1000);
  const errors: Record<string, number> = {};
  for (const r of rs) if (!r.ok) errors[errorKind(r.error ?? 'error')] = (errors[errorKind(r.error ?? 'error')] ?? 0) + 1;
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
    scheduleDelayMs: rounded(summarize(delays)),
    blockedArrivals: rs.length - delays.length,
    pods: podSpread(
      rs.map((r) => r.pod),
      [...pods],
    ),
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
  ['sched delay p50/max', (s) => `${fmt(s.scheduleDelayMs.p50, 1)}/${fmt(s.scheduleDelayMs.max, 0)}`],
];

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
  const errs = r.stages.filter((s) => s.failed > 0);
  if (errs.length) {
    lines.push('', 'Errors:');
    for (const s of errs) lines.push(`- ${s.strategy} ${s.name}: ${Object.entries(s.errors).map(([k, v]) => `${k} × ${v}`).join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------
// HTML with inline SVG charts

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  // The last tick is at or above `hi`, so the axis always covers the data.
  const end = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.ceil(lo / step) * step; v <= end + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(4));
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

/** An SVG line chart; log y scale when the values span more than two decades. */
export function svgLineChart(title: string, xLabel: string, yLabel: string, series: Series[], width = 460, height = 280): string {
  const m = { l: 58, r: 14, t: 28, b: 44 };
  const W = width - m.l - m.r;
  const H = height - m.t - m.b;
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">`);
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" class="t">${esc(title)}</text>`);
  if (pts.length === 0) {
    out.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`);
    return out.join('');
  }
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  x0 = Math.min(0, x0);
  const yMinPos = Math.min(...ys.filter((y) => y > 0));
  const yMax = Math.max(...ys);
  const log = Number.isFinite(yMinPos) && ys.every((y) => y > 0) && yMax / yMinPos > 100;
  let yTicks: number[];
  let fy: (y: number) => number;
  if (log) {
    const e0 = Math.floor(Math.log10(yMinPos));
    const e1 = Math.ceil(Math.log10(yMax));
    yTicks = [];
    for (let e = e0; e <= e1; e++) yTicks.push(10 ** e);
    fy = (y) => m.t + H - ((Math.log10(y) - e0) / Math.max(1e-9, e1 - e0)) * H;
  } else {
    yTicks = niceTicks(0, yMax > 0 ? yMax : 1);
    const top = yTicks[yTicks.length - 1];
    fy = (y) => m.t + H - (y / top) * H;
  }
  const xTicks = niceTicks(x0, x1, 6);
  const xTop = Math.max(x1, xTicks[xTicks.length - 1]);
  const fx = (x: number) => m.l + ((x - x0) / (xTop - x0)) * W;
  out.push(`<g class="grid">`);
  for (const t of yTicks) {
    const y = fy(t).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + W}" y1="${y}" y2="${y}"/><text x="${m.l - 6}" y="${y}" text-anchor="end" dy="0.32em">${tickLabel(t)}</text>`);
  }
  for (const t of xTicks) {
    const x = fx(t).toFixed(1);
    out.push(`<text x="${x}" y="${m.t + H + 16}" text-anchor="middle">${tickLabel(t)}</text>`);
  }
  out.push(`</g>`);
  out.push(`<line x1="${m.l}" x2="${m.l + W}" y1="${m.t + H}" y2="${m.t + H}" stroke="#333"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + H}" stroke="#333"/>`);
  out.push(`<text x="${m.l + W / 2}" y="${height - 6}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(13 ${m.t + H / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}${log ? ' (log)' : ''}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = s.points.filter((q) => Number.isFinite(q[0]) && Number.isFinite(q[1]) && (!log || q[1] > 0)).sort((a, b) => a[0] - b[0]);
    if (p.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${p.map((q) => `${fx(q[0]).toFixed(1)},${fy(q[1]).toFixed(1)}`).join(' ')}"/>`);
    for (const q of p) out.push(`<circle cx="${fx(q[0]).toFixed(1)}" cy="${fy(q[1]).toFixed(1)}" r="3.5" fill="${c}"><title>${esc(s.name)}: ${tickLabel(q[0])} → ${fmt(q[1])}</title></circle>`);
    const ly = m.t + 4 + i * 15;
    out.push(`<rect x="${m.l + 8}" y="${ly}" width="10" height="10" fill="${c}"/><text x="${m.l + 22}" y="${ly + 9}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('');
}

const CHARTS: Array<[string, string, (s: StageReport) => number]> = [
  ['TTFT p50', 'ms', (s) => s.ttftMs.p50],
  ['TTFT p90', 'ms', (s) => s.ttftMs.p90],
  ['TTFT p99', 'ms', (s) => s.ttftMs.p99],
  ['TPOT p50', 'ms', (s) => s.tpotMs.p50],
  ['Output throughput', 'tokens/s', (s) => s.outputTokenThroughput],
  ['Goodput', 'req/s', (s) => s.goodput.requestsPerS],
];

/** A self-contained HTML page: charts of latency and throughput vs offered load per strategy, and the table. */
export function toHtml(r: Report): string {
  const charts = CHARTS.map(([title, unit, f]) =>
    svgLineChart(
      `${title} vs ${r.xLabel}`,
      r.xLabel,
      unit,
      r.strategies.map((name) => ({ name, points: r.stages.filter((s) => s.strategy === name).map((s) => [s.x, f(s)] as [number, number]) })),
    ),
  );
  const head = ['stage', 'strategy', ...MD_COLUMNS.map((c) => c[0])];
  const rows: string[] = [];
  for (const key of stageKeys(r)) {
    for (const strat of r.strategies) {
      const s = r.stages.find((x) => x.name === key && x.strategy === strat);
      if (!s) continue;
      rows.push(`<tr><td>${esc(key)}</td><td>${esc(strat)}</td>${MD_COLUMNS.map((c) => `<td>${esc(c[1](s))}</td>`).join('')}</tr>`);
    }
  }
  const podRows = r.stages
    .map((s) => `<tr><td>${esc(s.name)}</td><td>${esc(s.strategy)}</td><td>${esc(Object.entries(s.pods.counts).sort().map(([p, n]) => `${p}: ${n}`).join(', '))}</td></tr>`)
    .join('');
  const meta = r.meta ? `<details><summary>Run parameters</summary><pre>${esc(JSON.stringify(r.meta, null, 2))}</pre></details>` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.title)}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222}
h1{font-size:1.4em}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg{background:#fff;border:1px solid #ddd;border-radius:4px;font-size:11px}
svg .t{font-size:13px;font-weight:600}
svg .grid line{stroke:#eee}
table{border-collapse:collapse;font-size:12px;margin-top:16px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
th{background:#f4f4f4}
.note{color:#555;font-size:13px}
</style>
</head>
<body>
<h1>${esc(r.title)}</h1>
<p class="note">Workload: ${esc(r.workload)} · generated ${esc(r.generatedAt)} · goodput SLO: ${esc(sloText(r.slo))} · latencies in ms, warm-up excluded.</p>
<div class="charts">
${charts.join('\n')}
</div>
<table>
<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<h2>Requests per pod</h2>
<table><thead><tr><th>stage</th><th>strategy</th><th>counts</th></tr></thead><tbody>${podRows}</tbody></table>
${meta}
</body>
</html>
`;
}

/** Write `<outPrefix>.json`, `.md`, `.html` (and `.requests.jsonl` when runs are given). Returns the paths. */
export function writeReports(report: Report, outPrefix: string, runs?: RunResult[]): { json: string; md: string; html: string; requests?: string } {
  mkdirSync(dirname(outPrefix) || '.', { recursive: true });
  const paths: { json: string; md: string; html: string; requests?: string } = {
    json: `${outPrefix}.json`,
    md: `${outPrefix}.md`,
    html: `${outPrefix}.html`,
  };
  writeFileSync(paths.json, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(paths.md, toMarkdown(report));
  writeFileSync(paths.html, toHtml(report));
  if (runs && runs.length) {
    paths.requests = `${outPrefix}.requests.jsonl`;
    const lines: string[] = [];
    for (const run of runs) for (const st of run.stages) for (const rec of st.records) lines.push(JSON.stringify({ strategy: run.strategy, stageName: st.name, ...rec }));
    writeFileSync(paths.requests, lines.join('\n') + '\n');
  }
  return paths;
}
