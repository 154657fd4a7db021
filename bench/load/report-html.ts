// The shareable forms of a load report: a self-contained HTML page (inline
// SVG charts, no scripts, no external fonts) and a CSV of the full table.
// The page leads with the verdict lines and a banner for every stage whose
// measurements the load generator marked unreliable, then overview charts
// (prefix-cache hit rate per strategy and stage; latency and throughput as
// bars for a single stage, as lines against the offered load for a sweep),
// one section per stage built from the request records (TTFT and E2E CDFs,
// TTFT over time with the warm-up shaded, requests and cache hit per pod),
// the full table, and the machine, versions, command and configuration.
import { percentile } from '../lib/stats.ts';
import type { StageHealth } from './health.ts';
import type { Report, StageReport, TenantFigures } from './report.ts';
import type { RequestRecord, RunResult, StageResult } from './runner.ts';

export interface HtmlOptions {
  /** The runs the report was built from: the request-level charts (CDFs, TTFT over time) need their records. */
  runs?: RunResult[];
  /** Link to the CSV export written next to the page. */
  csvHref?: string;
}

// ---------------------------------------------------------------------------
// Formatting

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const NUMBER = [0, 1, 2].map((d) => new Intl.NumberFormat('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A number for people: thousands separators, fewer decimals as it grows; "–" when undefined. */
function num(v: number | undefined, digits?: number): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return NUMBER[Math.min(2, Math.max(0, d))].format(v);
}

function pct(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(1)} %`;
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(4));
}

const pctTick = (v: number): string => `${+(v * 100).toPrecision(3)}%`;

function sloText(r: Report): string {
  const parts: string[] = [];
  if (r.slo.ttftMs !== undefined) parts.push(`TTFT ≤ ${r.slo.ttftMs} ms`);
  if (r.slo.tpotMs !== undefined) parts.push(`TPOT ≤ ${r.slo.tpotMs} ms`);
  if (r.slo.e2eMs !== undefined) parts.push(`E2E ≤ ${r.slo.e2eMs} ms`);
  return parts.join(', ') || 'none';
}

// ---------------------------------------------------------------------------
// Scales and the two chart kinds

/** Evenly spaced round tick values; the last is at or above `hi`, so the axis always covers the data. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  const end = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.ceil(lo / step) * step; v <= end + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

interface Scale {
  at: (v: number) => number;
  ticks: number[];
  log: boolean;
}

/** Linear from min(lo, first tick) or log by decades, onto the pixel range [p0, p1]. */
function scale(values: number[], p0: number, p1: number, o: { log: boolean; zero: boolean; n: number; max?: number }): Scale {
  const hi = Math.max(o.max ?? -Infinity, ...values);
  if (o.log) {
    const e0 = Math.floor(Math.log10(Math.min(...values)));
    const e1 = Math.max(e0 + 1, Math.ceil(Math.log10(hi)));
    const ticks: number[] = [];
    for (let e = e0; e <= e1; e++) ticks.push(10 ** e);
    return { log: true, ticks, at: (v) => p0 + ((Math.log10(v) - e0) / (e1 - e0)) * (p1 - p0) };
  }
  let lo = Math.min(...values);
  if (o.zero) lo = Math.min(0, lo);
  let top = hi;
  if (!(top > lo)) top = lo + 1;
  const ticks = niceTicks(lo, top, o.n);
  const a = Math.min(lo, ticks[0]);
  const b = Math.max(top, ticks[ticks.length - 1]);
  return { log: false, ticks, at: (v) => p0 + ((v - a) / (b - a)) * (p1 - p0) };
}

/** Log when every value is positive and they span more than two decades. */
function wantsLog(values: number[]): boolean {
  if (values.length === 0 || values.some((v) => !(v > 0))) return false;
  return Math.max(...values) / Math.min(...values) > 100;
}

interface LegendItem {
  name: string;
  color: string;
}

/** The chart's frame: svg element with an accessible name (aria-label and <title>), a description, the heading and a legend row. Returns the top margin the legend needs. */
function frame(out: string[], title: string, desc: string | undefined, width: number, height: number, legend: LegendItem[]): number {
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">`);
  out.push(`<title>${esc(title)}</title>`);
  if (desc) out.push(`<desc>${esc(desc)}</desc>`);
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" class="t">${esc(title)}</text>`);
  let x = 58;
  let y = 28;
  for (const item of legend) {
    const w = 22 + item.name.length * 6.2 + 12;
    if (x + w > width - 8 && x > 58) {
      x = 58;
      y += 15;
    }
    out.push(`<rect x="${x}" y="${y}" width="10" height="10" fill="${item.color}"/><text x="${x + 14}" y="${y + 9}">${esc(item.name)}</text>`);
    x += w;
  }
  return legend.length ? y + 18 : 28;
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
  color?: string;
}

export interface Axis {
  label: string;
  /** 'auto': log when positive values span more than two decades. Default: false for x, 'auto' for y. */
  log?: boolean | 'auto';
  /** Include 0 in a linear axis. Default true. */
  zero?: boolean;
  /** Axis reaches at least this value (e.g. 1 for fractions). */
  max?: number;
  /** Tick labels as percentages of 1. */
  percent?: boolean;
}

export interface LineChart {
  title: string;
  x: Axis;
  y: Axis;
  series: Series[];
  /** A dot (with a tooltip) on every point; default when every series has at most 40 points. */
  markers?: boolean;
  /** Shaded x ranges, e.g. the warm-up. */
  bands?: Array<{ from: number; to: number; label: string }>;
  /** Text alternative: the figures the chart shows. */
  desc?: string;
  width?: number;
  height?: number;
}

/** An SVG line chart. */
export function lineChart(c: LineChart): string {
  const width = c.width ?? 440;
  const height = c.height ?? 280;
  const series = c.series.map((s, i) => ({ ...s, color: s.color ?? COLORS[i % COLORS.length] }));
  const out: string[] = [];
  const top = frame(out, c.title, c.desc, width, height, series);
  const m = { l: 58, r: 14, t: top, b: 44 };
  const W = width - m.l - m.r;
  const H = height - m.t - m.b;
  const finite = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (finite.length === 0) {
    out.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`);
    return out.join('');
  }
  const xv = finite.map((p) => p[0]);
  const yv = finite.map((p) => p[1]);
  const xLog = c.x.log === true || (c.x.log === 'auto' && wantsLog(xv));
  const yLog = c.y.log === true || ((c.y.log ?? 'auto') === 'auto' && wantsLog(yv));
  const keep = (p: [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!xLog || p[0] > 0) && (!yLog || p[1] > 0);
  const xs = scale(xv.filter((v) => !xLog || v > 0), m.l, m.l + W, { log: xLog, zero: c.x.zero ?? true, n: 6, max: c.x.max });
  const ys = scale(yv.filter((v) => !yLog || v > 0), m.t + H, m.t, { log: yLog, zero: c.y.zero ?? true, n: 5, max: c.y.max });
  const xt = c.x.percent ? pctTick : tickLabel;
  const yt = c.y.percent ? pctTick : tickLabel;
  for (const b of c.bands ?? []) {
    const x0 = Math.max(m.l, xs.at(Math.max(b.from, xLog ? 1e-9 : -Infinity)));
    const x1 = Math.min(m.l + W, xs.at(b.to));
    if (!(x1 > x0)) continue;
    out.push(`<rect class="band" x="${x0.toFixed(1)}" y="${m.t}" width="${(x1 - x0).toFixed(1)}" height="${H}"><title>${esc(b.label)}</title></rect>`);
    out.push(`<text x="${((x0 + x1) / 2).toFixed(1)}" y="${m.t + 12}" text-anchor="middle" class="bl">${esc(b.label)}</text>`);
  }
  out.push(`<g class="grid">`);
  for (const t of ys.ticks) {
    const y = ys.at(t).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + W}" y1="${y}" y2="${y}"/><text x="${m.l - 6}" y="${y}" text-anchor="end" dy="0.32em">${yt(t)}</text>`);
  }
  for (const t of xs.ticks) out.push(`<text x="${xs.at(t).toFixed(1)}" y="${m.t + H + 16}" text-anchor="middle">${xt(t)}</text>`);
  out.push(`</g>`);
  out.push(`<line x1="${m.l}" x2="${m.l + W}" y1="${m.t + H}" y2="${m.t + H}" stroke="#333"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + H}" stroke="#333"/>`);
  out.push(`<text x="${m.l + W / 2}" y="${height - 6}" text-anchor="middle">${esc(c.x.label)}${xLog ? ' (log)' : ''}</text>`);
  out.push(`<text transform="translate(13 ${m.t + H / 2}) rotate(-90)" text-anchor="middle">${esc(c.y.label)}${yLog ? ' (log)' : ''}</text>`);
  const markers = c.markers ?? series.every((s) => s.points.length <= 40);
  for (const s of series) {
    const p = s.points.filter(keep).sort((a, b) => a[0] - b[0]);
    const xy = p.map((q) => [xs.at(q[0]).toFixed(1), ys.at(q[1]).toFixed(1)]);
    if (p.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${xy.map((q) => q.join(',')).join(' ')}"><title>${esc(s.name)}</title></polyline>`);
    if (markers || p.length === 1) {
      p.forEach((q, i) => out.push(`<circle cx="${xy[i][0]}" cy="${xy[i][1]}" r="3.5" fill="${s.color}"><title>${esc(s.name)}: ${xt(q[0])} → ${c.y.percent ? pct(q[1]) : num(q[1])}</title></circle>`));
    }
  }
  out.push('</svg>');
  return out.join('');
}

/** An SVG line chart with markers; log y scale when the values span more than two decades. */
export function svgLineChart(title: string, xLabel: string, yLabel: string, series: Series[], width = 440, height = 280): string {
  return lineChart({ title, x: { label: xLabel }, y: { label: yLabel }, series, markers: true, width, height });
}

export interface BarChart {
  title: string;
  /** Categories along x (stages, percentiles, pods). */
  groups: string[];
  /** x axis label. */
  groupLabel?: string;
  yLabel: string;
  /** One bar per series in every group; undefined or NaN: no bar. */
  series: Array<{ name: string; color?: string; values: Array<number | undefined> }>;
  /** Values are fractions of 1, shown as percentages on a 0–100 % axis. */
  percent?: boolean;
  /** Decimals of the values in tooltips (default: fewer as they grow); 0 for counts. */
  digits?: number;
  desc?: string;
  height?: number;
}

/** An SVG grouped bar chart with the value on every bar that has room for it. */
export function barChart(c: BarChart): string {
  const series = c.series.map((s, i) => ({ ...s, color: s.color ?? COLORS[i % COLORS.length] }));
  const per = Math.max(30, series.length * 16 + 10);
  const width = Math.min(1400, Math.max(440, 72 + c.groups.length * per));
  const height = c.height ?? 280;
  const out: string[] = [];
  const top = frame(out, c.title, c.desc, width, height, series);
  const longest = Math.max(0, ...c.groups.map((g) => Math.min(24, g.length))) * 6.2;
  const gw = (width - 72) / Math.max(1, c.groups.length);
  const rotate = longest > gw - 4;
  const m = { l: 58, r: 14, t: top, b: rotate ? Math.min(110, 34 + longest * 0.7) : 44 };
  const W = width - m.l - m.r;
  const H = height - m.t - m.b;
  const values = series.flatMap((s) => s.values).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const ys = scale(values.length ? values : [0], m.t + H, m.t, { log: false, zero: true, n: 5, max: c.percent ? 1 : undefined });
  const yt = c.percent ? pctTick : tickLabel;
  out.push(`<g class="grid">`);
  for (const t of ys.ticks) {
    const y = ys.at(t).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + W}" y1="${y}" y2="${y}"/><text x="${m.l - 6}" y="${y}" text-anchor="end" dy="0.32em">${yt(t)}</text>`);
  }
  out.push(`</g>`);
  const groupW = W / Math.max(1, c.groups.length);
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, series.length));
  const y0 = ys.at(0);
  c.groups.forEach((g, gi) => {
    const cx = m.l + groupW * (gi + 0.5);
    const left = cx - (barW * series.length) / 2;
    series.forEach((s, si) => {
      const v = s.values[gi];
      const x = left + si * barW;
      if (v === undefined || !Number.isFinite(v)) {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y0 - 3).toFixed(1)}" text-anchor="middle" class="na">–<title>${esc(s.name)} · ${esc(g)}: no data</title></text>`);
        return;
      }
      const y = ys.at(v);
      const label = c.percent ? pct(v) : num(v, c.digits);
      out.push(`<rect x="${(x + 1).toFixed(1)}" y="${Math.min(y, y0).toFixed(1)}" width="${Math.max(1, barW - 2).toFixed(1)}" height="${Math.abs(y0 - y).toFixed(1)}" fill="${s.color}"><title>${esc(s.name)} · ${esc(g)}: ${esc(label)}</title></rect>`);
      if (barW >= 26) out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y - 3).toFixed(1)}" text-anchor="middle" class="v">${esc(c.percent ? `${(v * 100).toFixed(0)}%` : tickLabel(+v.toPrecision(3)))}</text>`);
    });
    const ly = m.t + H + 14;
    const short = g.length > 24 ? `${g.slice(0, 23)}…` : g;
    const full = short === g ? '' : `<title>${esc(g)}</title>`;
    out.push(
      rotate
        ? `<text transform="translate(${cx.toFixed(1)} ${ly}) rotate(-40)" text-anchor="end">${esc(short)}${full}</text>`
        : `<text x="${cx.toFixed(1)}" y="${ly}" text-anchor="middle">${esc(short)}${full}</text>`,
    );
  });
  out.push(`<line x1="${m.l}" x2="${m.l + W}" y1="${y0.toFixed(1)}" y2="${y0.toFixed(1)}" stroke="#333"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + H}" stroke="#333"/>`);
  if (c.groupLabel) out.push(`<text x="${m.l + W / 2}" y="${height - 6}" text-anchor="middle">${esc(c.groupLabel)}</text>`);
  out.push(`<text transform="translate(13 ${m.t + H / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  out.push('</svg>');
  return out.join('');
}

// ---------------------------------------------------------------------------
// Request-level data

/** At most `max` points of the empirical CDF (value, fraction ≤ value). */
export function cdfPoints(values: readonly number[], max = 200): Array<[number, number]> {
  const s = Float64Array.from(values.filter(Number.isFinite)).sort();
  const n = s.length;
  if (n === 0) return [];
  const k = Math.min(n, max);
  const out: Array<[number, number]> = [];
  for (let j = 0; j < k; j++) {
    const i = k === 1 ? n - 1 : Math.round((j * (n - 1)) / (k - 1));
    out.push([s[i], (i + 1) / n]);
  }
  return out;
}

/** A round bin width giving at most `bins` bins over `spanS` seconds. */
export function binWidth(spanS: number, bins: number): number {
  const raw = Math.max(spanS / bins, 0.05);
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((f) => f * mag).find((w) => w >= raw) ?? raw;
}

/** Seconds from the stage's start to its last request's start. */
function spanS(st: StageResult): number {
  let span = 0.05;
  for (const r of st.records) span = Math.max(span, (r.startMs - st.startMs) / 1000);
  return span;
}

/** Median of `value` per time bin of `w` seconds, x = bin centre in seconds since the stage started (warm-up included). */
export function overTime(st: StageResult, value: (r: RequestRecord) => number | undefined, w: number): Array<[number, number]> {
  const at = st.records.map((r) => (r.startMs - st.startMs) / 1000);
  const by = new Map<number, number[]>();
  st.records.forEach((r, i) => {
    const v = value(r);
    if (v === undefined || !Number.isFinite(v)) return;
    const b = Math.floor(at[i] / w);
    const list = by.get(b);
    if (list) list.push(v);
    else by.set(b, [v]);
  });
  const points: Array<[number, number]> = [];
  for (const [b, vs] of [...by.entries()].sort((x, y) => x[0] - y[0])) points.push([+((b + 0.5) * w).toFixed(3), percentile(Float64Array.from(vs).sort(), 50)]);
  return points;
}

// ---------------------------------------------------------------------------
// Health (health.ts) and environment (environment.ts)

const DEFAULT_ADVICE = ['lower the rate (--rates) or use fewer pods (--pods), or close other work on this machine'];

/** The stage's health verdict; undefined for a report written before stages carried one. */
function healthOf(s: StageReport): StageHealth | undefined {
  return s.health && typeof s.health.reliable === 'boolean' ? s.health : undefined;
}

const ms = (v: number | undefined) => `${num(v)} ms`;

/** The measured figures in words: schedule delay, event-loop lag and CPU of each process, load average, steal. */
export function healthFigures(h: StageHealth): string[] {
  const f = h.figures;
  const out: string[] = [];
  if (Number.isFinite(f.scheduleDelayP99Ms)) out.push(`schedule delay p99 ${ms(f.scheduleDelayP99Ms)}`);
  if (f.loopLag) out.push(`load generator loop lag p99 ${ms(f.loopLag.p99Ms)}`);
  for (const [name, p] of Object.entries(f.processes ?? {})) {
    const parts: string[] = [];
    if (p.loopLag) parts.push(`loop lag p99 ${ms(p.loopLag.p99Ms)}`);
    if (p.cpuCores !== undefined) parts.push(`CPU ${num(p.cpuCores)} cores`);
    if (parts.length) out.push(`${name}: ${parts.join(', ')}`);
  }
  if (f.loadAverage && f.cpus > 0) out.push(`load average ${num(f.loadAverage.start)} → ${num(f.loadAverage.end)} on ${f.cpus} CPUs`);
  if (f.cpuBusyFraction !== undefined) out.push(`CPU busy ${pct(f.cpuBusyFraction)}`);
  if (f.stealFraction !== undefined) out.push(`steal ${pct(f.stealFraction)}`);
  return out;
}

const REPORT_KEYS = new Set(['title', 'generatedAt', 'workload', 'slo', 'strategies', 'xLabel', 'stages', 'meta', 'verdict', 'partial']);
const ENV_ORDER = ['command', 'machine', 'versions', 'config'];

const LABELS: Record<string, string> = { memoryGiB: 'memory (GiB)', llmEpp: 'llm-epp', os: 'OS', cpus: 'CPUs' };

function camelWords(k: string): string {
  return LABELS[k] ?? k.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').toLowerCase();
}

function renderValue(v: unknown, depth = 0): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') return esc(Number.isFinite(v) ? String(v) : '–');
  if (typeof v === 'string' || typeof v === 'boolean') return `<code>${esc(String(v))}</code>`;
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) return `<code>${esc(v.map((x) => String(x)).join(' '))}</code>`;
  if (depth >= 3) return `<pre>${esc(JSON.stringify(v, null, 2))}</pre>`;
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as [string, unknown]) : Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return '–';
  return `<table class="kv">${entries.map(([k, x]) => `<tr><th>${esc(camelWords(k))}</th><td>${renderValue(x, depth + 1)}</td></tr>`).join('')}</table>`;
}

function environment(r: Report): string {
  const rec = r as unknown as Record<string, unknown>;
  const keys = [...ENV_ORDER.filter((k) => rec[k] !== undefined), ...Object.keys(rec).filter((k) => !REPORT_KEYS.has(k) && !ENV_ORDER.includes(k) && rec[k] !== undefined)];
  if (r.meta) keys.push('meta');
  if (keys.length === 0) return '';
  const rows = keys.map((k) => `<tr><th>${esc(k === 'meta' ? 'run parameters' : camelWords(k))}</th><td>${renderValue(rec[k])}</td></tr>`).join('\n');
  return `<section aria-labelledby="env"><h2 id="env">Machine, versions, command and configuration</h2>\n<table class="kv env">\n${rows}\n</table></section>`;
}

// ---------------------------------------------------------------------------
// The full table (HTML and CSV)

interface Column {
  head: string;
  value: (s: StageReport) => number | string | undefined;
  /** How the HTML shows a number: 'pct' for fractions. */
  kind?: 'pct' | 'int';
  /** Only in the CSV. */
  csvOnly?: boolean;
}

const summaryCols = (label: string, get: (s: StageReport) => StageReport['ttftMs'], keys: Array<'p50' | 'p90' | 'p99' | 'p999' | 'mean' | 'max'>, csvOnly: Array<string> = []): Column[] =>
  keys.map((k) => ({ head: `${label} ${k} ms`, value: (s: StageReport) => get(s)[k], csvOnly: csvOnly.includes(k) }));

const COLUMNS: Column[] = [
  { head: 'health', value: (s) => { const h = healthOf(s); return h ? (h.reliable ? 'ok' : 'UNRELIABLE') : undefined; } },
  { head: 'offered req/s', value: (s) => s.offeredRate, csvOnly: true },
  { head: 'concurrency', value: (s) => s.concurrency, csvOnly: true },
  { head: 'sent req/s', value: (s) => s.achievedRate },
  { head: 'duration s', value: (s) => s.durationS, csvOnly: true },
  { head: 'requests', value: (s) => s.requests, kind: 'int' },
  { head: 'completed', value: (s) => s.completed, kind: 'int', csvOnly: true },
  { head: 'errors', value: (s) => s.failed, kind: 'int' },
  { head: 'aborted', value: (s) => s.aborted, kind: 'int' },
  { head: 'req/s', value: (s) => s.requestThroughput },
  { head: 'out tok/s', value: (s) => s.outputTokenThroughput, kind: 'int' },
  { head: 'in tok/s', value: (s) => s.inputTokenThroughput, kind: 'int' },
  ...summaryCols('TTFT', (s) => s.ttftMs, ['p50', 'p90', 'p99', 'p999', 'mean', 'max'], ['p999', 'max']),
  ...summaryCols('TPOT', (s) => s.tpotMs, ['p50', 'p90', 'p99', 'mean'], ['p90', 'mean']),
  ...summaryCols('ITL', (s) => s.itlMs, ['p50', 'p90', 'p99'], ['p90']),
  ...summaryCols('E2E', (s) => s.e2eMs, ['p50', 'p90', 'p99', 'mean', 'max'], ['mean', 'max']),
  { head: 'goodput req/s', value: (s) => s.goodput.requestsPerS },
  { head: 'goodput fraction', value: (s) => s.goodput.fraction, kind: 'pct' },
  { head: 'pod CV', value: (s) => s.pods.cv },
  { head: 'prefix-cache hit', value: (s) => s.prefixCacheHitRate?.rate, kind: 'pct' },
  { head: 'prefix-cache queries', value: (s) => s.prefixCacheHitRate?.queries, kind: 'int', csvOnly: true },
  { head: 'prompt tokens from cache', value: (s) => s.cachedTokenRate, kind: 'pct' },
  { head: 'schedule delay p50 ms', value: (s) => s.scheduleDelayMs.p50 },
  { head: 'schedule delay p99 ms', value: (s) => s.scheduleDelayMs.p99, csvOnly: true },
  { head: 'schedule delay max ms', value: (s) => s.scheduleDelayMs.max },
  { head: 'health reasons', value: (s) => healthOf(s)?.reasons.join('; '), csvOnly: true },
];

function cell(c: Column, s: StageReport): string {
  const v = c.value(s);
  if (typeof v === 'string') return esc(v);
  return c.kind === 'pct' ? pct(v) : num(v, c.kind === 'int' ? 0 : undefined);
}

function csvField(v: number | string | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  // Quote when needed; a leading = + - @ would be read as a formula by spreadsheets.
  const t = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}

/** Counted dropped reasons as "rejected-saturated × 12, …"; "–" when none. */
export function reasonsText(reasons: Record<string, number>): string {
  const e = Object.entries(reasons).sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([k, n]) => `${k} × ${n}`).join(', ') : '–';
}

/** Every tenant of a report, in the order they first appear. */
export function reportTenants(r: Report): string[] {
  const seen: string[] = [];
  for (const s of r.stages) for (const t of s.tenants ?? []) if (!seen.includes(t.tenant)) seen.push(t.tenant);
  return seen;
}

/** The figures of one tenant the CSV carries in columns of its own. */
const TENANT_COLUMNS: Array<[string, (t: TenantFigures) => number]> = [
  ['requests', (t) => t.requests],
  ['ok', (t) => t.completed],
  ['429', (t) => t.rejected429],
  ['other errors', (t) => t.otherErrors],
  ['TTFT p50 ms', (t) => t.ttftMs.p50],
  ['TTFT p90 ms', (t) => t.ttftMs.p90],
  ['goodput req/s', (t) => t.goodput.requestsPerS],
];

/** The full table as CSV: one row per strategy and stage, latencies in ms, fractions of 1; a multi-tenant run adds each tenant's columns. */
export function toCsv(r: Report): string {
  const tenants = reportTenants(r);
  const head = ['strategy', 'stage', 'stage index', 'x', ...COLUMNS.map((c) => c.head), ...tenants.flatMap((t) => TENANT_COLUMNS.map(([h]) => `${t} ${h}`))];
  const lines = [head.map(csvField).join(',')];
  for (const s of r.stages) {
    const own = tenants.flatMap((name) => {
      const t = s.tenants?.find((x) => x.tenant === name);
      return TENANT_COLUMNS.map(([, f]) => (t ? f(t) : undefined));
    });
    lines.push([s.strategy, s.name, s.stage, s.x, ...COLUMNS.map((c) => c.value(s)), ...own].map(csvField).join(','));
  }
  return lines.join('\n') + '\n';
}

function stageKeys(r: Report): string[] {
  const seen: string[] = [];
  for (const s of r.stages) if (!seen.includes(s.name)) seen.push(s.name);
  return seen;
}

function fullTable(r: Report): string {
  const shown = (c: Column) => (c.head === 'health' ? r.stages.some((s) => healthOf(s)) : c.head === 'aborted' ? r.stages.some((s) => s.aborted > 0) : true);
  const cols = COLUMNS.filter((c) => !c.csvOnly && shown(c));
  const rows: string[] = [];
  for (const key of stageKeys(r)) {
    for (const s of r.stages.filter((x) => x.name === key)) {
      const bad = healthOf(s)?.reliable === false;
      rows.push(`<tr${bad ? ' class="bad"' : ''}><th scope="row">${esc(key)}</th><td>${esc(s.strategy)}</td>${cols.map((c) => `<td>${cell(c, s)}</td>`).join('')}</tr>`);
    }
  }
  const errs = r.stages.filter((s) => s.failed > 0);
  const errList = errs.length
    ? `<h3>Errors</h3><ul>${errs.map((s) => `<li>${esc(s.strategy)} ${esc(s.name)}: ${esc(Object.entries(s.errors).map(([k, v]) => `${k} × ${v}`).join(', '))}</li>`).join('')}</ul>`
    : '';
  return `<div class="scroll"><table class="full">
<caption>Every strategy and stage (latencies in ms, warm-up excluded)</caption>
<thead><tr><th scope="col">stage</th><th scope="col">strategy</th>${cols.map((c) => `<th scope="col">${esc(c.head)}</th>`).join('')}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table></div>${errList}`;
}

// ---------------------------------------------------------------------------
// Page sections

type Ctx = { r: Report; color: Map<string, string>; runs: RunResult[] };

function stageResult(c: Ctx, s: StageReport): StageResult | undefined {
  return c.runs.find((run) => run.strategy === s.strategy)?.stages.find((st) => st.index === s.stage);
}

function banners(c: Ctx): string {
  const out: string[] = [];
  if (c.r.partial) out.push('<div class="banner" role="alert"><strong>Interrupted run.</strong> This report holds only what completed before the run was stopped; requests cancelled then are counted as aborted.</div>');
  for (const s of c.r.stages) {
    const h = healthOf(s);
    if (!h || h.reliable) continue;
    const reasons = h.reasons.length ? `<ul>${h.reasons.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : '';
    const advice = h.advice.length ? h.advice : DEFAULT_ADVICE;
    out.push(
      `<div class="banner" role="alert"><strong>Unreliable result: ${esc(s.strategy)}, stage ${esc(s.name)}.</strong> The machine could not keep up, so these figures measure the load generator and the machine as much as the router.${reasons}<p>What to do: ${esc(advice.join('; '))}.</p></div>`,
    );
  }
  return out.join('\n');
}

function overview(c: Ctx): string[] {
  const { r } = c;
  const keys = stageKeys(r);
  const pick = (strategy: string, f: (s: StageReport) => number | undefined) => keys.map((k) => {
    const s = r.stages.find((x) => x.name === k && x.strategy === strategy);
    return s ? f(s) : undefined;
  });
  const charts: string[] = [];
  const hitCharts: Array<[string, (s: StageReport) => number | undefined]> = [
    ["Prefix-cache hit rate (pods' counters)", (s) => s.prefixCacheHitRate?.rate],
    ['Prompt tokens served from cache', (s) => s.cachedTokenRate],
  ];
  for (const [title, f] of hitCharts) {
    if (!r.stages.some((s) => Number.isFinite(f(s)))) continue;
    charts.push(
      barChart({
        title,
        groups: keys,
        groupLabel: 'stage',
        yLabel: 'hit rate',
        percent: true,
        series: r.strategies.map((name) => ({ name, color: c.color.get(name), values: pick(name, f) })),
        desc: r.stages.map((s) => `${s.strategy} ${s.name}: ${pct(f(s))}`).join('; '),
      }),
    );
  }
  const xs = new Set(r.stages.map((s) => s.x));
  if (xs.size <= 1) {
    // One stage: bars per strategy.
    const sums: Array<[string, string, (s: StageReport) => StageReport['ttftMs'], Array<'p50' | 'p90' | 'p99'>]> = [
      ['Time to first token', 'TTFT', (s) => s.ttftMs, ['p50', 'p90', 'p99']],
      ['End-to-end latency', 'E2E', (s) => s.e2eMs, ['p50', 'p90', 'p99']],
      ['Time per output token', 'TPOT', (s) => s.tpotMs, ['p50', 'p90', 'p99']],
    ];
    for (const [title, short, get, ps] of sums) {
      charts.push(
        barChart({
          title: `${title} (${keys.join(', ')})`,
          groups: ps.map((p) => `${short} ${p}`),
          yLabel: 'ms',
          series: r.strategies.map((name) => {
            const s = r.stages.find((x) => x.strategy === name);
            return { name, color: c.color.get(name), values: ps.map((p) => (s ? get(s)[p] : undefined)) };
          }),
          desc: r.stages.map((s) => `${s.strategy}: ${ps.map((p) => `${p} ${num(get(s)[p])} ms`).join(', ')}`).join('; '),
        }),
      );
    }
    const only = (name: string) => r.stages.find((x) => x.strategy === name);
    charts.push(
      barChart({
        title: `Throughput (goodput: ${sloText(r)})`,
        groups: ['completed', 'goodput'],
        yLabel: 'requests/s',
        series: r.strategies.map((name) => ({ name, color: c.color.get(name), values: [only(name)?.requestThroughput, only(name)?.goodput.requestsPerS] })),
        desc: r.stages.map((s) => `${s.strategy}: ${num(s.requestThroughput)} requests/s, goodput ${num(s.goodput.requestsPerS)} requests/s`).join('; '),
      }),
      barChart({
        title: 'Output token throughput',
        groups: keys,
        groupLabel: 'stage',
        yLabel: 'tokens/s',
        series: r.strategies.map((name) => ({ name, color: c.color.get(name), values: pick(name, (s) => s.outputTokenThroughput) })),
        desc: r.stages.map((s) => `${s.strategy}: ${num(s.outputTokenThroughput)} tokens/s`).join('; '),
      }),
    );
    return charts;
  }
  const lines: Array<[string, string, (s: StageReport) => number]> = [
    ['TTFT p50', 'ms', (s) => s.ttftMs.p50],
    ['TTFT p90', 'ms', (s) => s.ttftMs.p90],
    ['TTFT p99', 'ms', (s) => s.ttftMs.p99],
    ['E2E p90', 'ms', (s) => s.e2eMs.p90],
    ['TPOT p50', 'ms', (s) => s.tpotMs.p50],
    ['Output throughput', 'tokens/s', (s) => s.outputTokenThroughput],
    ['Goodput', 'req/s', (s) => s.goodput.requestsPerS],
  ];
  for (const [title, unit, f] of lines) {
    const series = r.strategies.map((name) => ({ name, color: c.color.get(name), points: r.stages.filter((s) => s.strategy === name).map((s) => [s.x, f(s)] as [number, number]) }));
    charts.push(
      lineChart({
        title: `${title} vs ${r.xLabel}`,
        x: { label: r.xLabel },
        y: { label: unit },
        series,
        markers: true,
        desc: series.map((s) => `${s.name}: ${s.points.map(([x, y]) => `${tickLabel(x)} → ${num(y)}`).join(', ')}`).join('; '),
      }),
    );
  }
  return charts;
}

function perStage(c: Ctx, key: string): string {
  const stages = c.r.stages.filter((s) => s.name === key);
  const charts: string[] = [];
  const withRuns = stages.map((s) => ({ s, st: stageResult(c, s) })).filter((x) => x.st !== undefined) as Array<{ s: StageReport; st: StageResult }>;
  const measuredOk = (st: StageResult) => st.records.filter((x) => x.ok && !x.warmup);
  if (withRuns.length) {
    const cdfs: Array<[string, (x: RequestRecord) => number | undefined, (s: StageReport) => StageReport['ttftMs']]> = [
      ['TTFT', (x) => x.ttftMs, (s) => s.ttftMs],
      ['E2E latency', (x) => x.e2eMs, (s) => s.e2eMs],
    ];
    for (const [what, get, sum] of cdfs) {
      charts.push(
        lineChart({
          title: `${what} CDF — ${key}`,
          x: { label: `${what} (ms)`, log: 'auto' },
          y: { label: 'fraction of requests', percent: true, max: 1, log: false },
          series: withRuns.map(({ s, st }) => ({ name: s.strategy, color: c.color.get(s.strategy), points: cdfPoints(measuredOk(st).map(get).filter((v): v is number => v !== undefined)) })),
          desc: withRuns.map(({ s }) => `${s.strategy}: p50 ${num(sum(s).p50)} ms, p90 ${num(sum(s).p90)} ms, p99 ${num(sum(s).p99)} ms`).join('; '),
        }),
      );
    }
    const w = binWidth(Math.max(...withRuns.map(({ st }) => spanS(st))), 60);
    const warm = Math.max(0, ...withRuns.map(({ st }) => (st.measuredStartMs - st.startMs) / 1000));
    charts.push(
      lineChart({
        title: `TTFT over time — ${key}`,
        x: { label: `seconds since the stage started (median per ${w} s)` },
        y: { label: 'TTFT (ms)' },
        series: withRuns.map(({ s, st }) => ({ name: s.strategy, color: c.color.get(s.strategy), points: overTime(st, (x) => (x.ok ? x.ttftMs : undefined), w) })),
        bands: warm > 0 ? [{ from: 0, to: warm, label: 'warm-up' }] : [],
        desc: `Median TTFT per time bin from the first request of the stage${warm > 0 ? `; the first ${num(warm)} s are warm-up, excluded from the other figures` : ''}.`,
      }),
    );
  }
  const pods = [...new Set(stages.flatMap((s) => Object.keys(s.pods.counts)))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (pods.length) {
    charts.push(
      barChart({
        title: `Requests per pod — ${key}`,
        groups: pods,
        groupLabel: 'pod',
        yLabel: 'requests',
        series: stages.map((s) => ({ name: s.strategy, color: c.color.get(s.strategy), values: pods.map((p) => s.pods.counts[p] ?? 0) })),
        desc: stages.map((s) => `${s.strategy}: ${pods.map((p) => `${p} ${s.pods.counts[p] ?? 0}`).join(', ')} (CV ${num(s.pods.cv)})`).join('; '),
      }),
    );
    const hitOf = (s: StageReport): Record<string, number> | undefined => {
      if (s.prefixCacheHitRate) return s.prefixCacheHitRate.perPod;
      const st = stageResult(c, s);
      if (!st) return undefined;
      const acc: Record<string, [number, number]> = {};
      for (const x of measuredOk(st)) {
        if (x.pod === undefined || x.cachedTokens === undefined || !x.promptTokens) continue;
        const a = (acc[x.pod] ??= [0, 0]);
        a[0] += x.cachedTokens;
        a[1] += x.promptTokens;
      }
      const entries = Object.entries(acc);
      return entries.length ? Object.fromEntries(entries.map(([p, [h, q]]) => [p, h / q])) : undefined;
    };
    const hits = stages.map((s) => ({ s, h: hitOf(s) }));
    if (hits.some((x) => x.h)) {
      const source = stages.some((s) => s.prefixCacheHitRate) ? "pods' prefix-cache counters" : 'prompt tokens served from cache';
      charts.push(
        barChart({
          title: `Cache hit per pod — ${key}`,
          groups: pods,
          groupLabel: `pod (${source})`,
          yLabel: 'hit rate',
          percent: true,
          series: hits.map(({ s, h }) => ({ name: s.strategy, color: c.color.get(s.strategy), values: pods.map((p) => h?.[p]) })),
          desc: hits.map(({ s, h }) => `${s.strategy}: ${pods.map((p) => `${p} ${pct(h?.[p])}`).join(', ')}`).join('; '),
        }),
      );
    }
  }
  const tenants = tenantSection(c, key, stages, withRuns, charts);
  const healthLines = stages
    .map((s) => [s, healthOf(s)] as const)
    .filter(([, h]) => h)
    .map(([s, h]) => {
      const figs = healthFigures(h!);
      return `<li class="${h!.reliable ? 'ok' : 'bad'}">${esc(s.strategy)}: ${h!.reliable ? 'the machine kept up' : 'UNRELIABLE'}${figs.length ? ` — ${esc(figs.join('; '))}` : ''}</li>`;
    });
  const id = `stage-${stageKeys(c.r).indexOf(key)}`;
  return `<section aria-labelledby="${id}"><h2 id="${id}">Stage ${esc(key)}</h2>
${healthLines.length ? `<ul class="health">${healthLines.join('')}</ul>` : ''}
${withRuns.length ? '' : '<p class="note">No request records were given, so the CDFs and the time series are not drawn.</p>'}
<div class="charts">
${charts.join('\n')}
</div>${tenants}</section>`;
}

/**
 * A multi-tenant stage: each tenant's TTFT (p50, p90) and outcome (ok, 429, other errors) per strategy,
 * each strategy's TTFT over time by tenant (from the records), pushed onto `charts`; returns the tenant table.
 */
function tenantSection(c: Ctx, key: string, stages: StageReport[], withRuns: Array<{ s: StageReport; st: StageResult }>, charts: string[]): string {
  const names: string[] = [];
  for (const s of stages) for (const t of s.tenants ?? []) if (!names.includes(t.tenant)) names.push(t.tenant);
  if (names.length === 0) return '';
  const of = (s: StageReport, name: string) => s.tenants?.find((t) => t.tenant === name);
  const bars = (title: string, yLabel: string, parts: Array<[string, (t: TenantFigures) => number]>, unit: string, digits?: number) =>
    barChart({
      title: `${title} — ${key}`,
      digits,
      groups: names.flatMap((n) => parts.map(([p]) => `${n} ${p}`)),
      groupLabel: 'tenant',
      yLabel,
      series: stages.map((s) => ({
        name: s.strategy,
        color: c.color.get(s.strategy),
        values: names.flatMap((n) => parts.map(([, f]) => {
          const t = of(s, n);
          return t ? f(t) : undefined;
        })),
      })),
      desc: stages.map((s) => `${s.strategy}: ${names.map((n) => `${n} ${parts.map(([p, f]) => { const t = of(s, n); return `${p} ${t ? num(f(t), digits) : '–'}${unit}`; }).join(', ')}`).join('; ')}`).join(' · '),
    });
  charts.push(
    bars('TTFT by tenant', 'ms', [['p50', (t) => t.ttftMs.p50], ['p90', (t) => t.ttftMs.p90]], ' ms'),
    bars('Outcome by tenant', 'requests', [['ok', (t) => t.completed], ['429', (t) => t.rejected429], ['other errors', (t) => t.otherErrors]], '', 0),
  );
  if (withRuns.length) {
    const w = binWidth(Math.max(...withRuns.map(({ st }) => spanS(st))), 60);
    for (const { s, st } of withRuns) {
      const series = names.map((n, i) => ({ name: n, color: COLORS[(i + 3) % COLORS.length], points: overTime(st, (x) => (x.ok && x.tenant === n ? x.ttftMs : undefined), w) }));
      const warm = (st.measuredStartMs - st.startMs) / 1000;
      charts.push(
        lineChart({
          title: `TTFT over time by tenant — ${s.strategy} · ${key}`,
          x: { label: `seconds since the stage started (median per ${w} s)` },
          y: { label: 'TTFT (ms)' },
          series,
          bands: warm > 0 ? [{ from: 0, to: warm, label: 'warm-up' }] : [],
          // Room for a long strategy name in the title.
          width: Math.min(900, Math.max(440, 120 + 7.5 * (s.strategy.length + key.length + 30))),
          desc: `Median TTFT of each tenant's completed requests per time bin, ${s.strategy}; ${names.map((n) => `${n}: ${of(s, n)?.completed ?? 0} completed`).join(', ')}.`,
        }),
      );
    }
  }
  const rows = stages.flatMap((s) =>
    (s.tenants ?? []).map(
      (t) =>
        `<tr><th scope="row">${esc(s.strategy)}</th><td>${esc(t.tenant)}</td><td>${num(t.requests, 0)}</td><td>${num(t.completed, 0)}</td><td>${num(t.rejected429, 0)}</td><td>${esc(reasonsText(t.droppedReasons))}</td><td>${num(t.otherErrors, 0)}</td><td>${num(t.ttftMs.p50)}</td><td>${num(t.ttftMs.p90)}</td><td>${num(t.goodput.requestsPerS)} (${pct(t.goodput.fraction)})</td></tr>`,
    ),
  );
  return `<div class="scroll"><table class="full tenants">
<caption>Per tenant, ${esc(key)} (latencies in ms of the completed requests; goodput over the stage's window)</caption>
<thead><tr><th scope="col">strategy</th><th scope="col">tenant</th><th scope="col">requests</th><th scope="col">ok</th><th scope="col">429</th><th scope="col">dropped reason</th><th scope="col">other errors</th><th scope="col">TTFT p50</th><th scope="col">TTFT p90</th><th scope="col">goodput req/s</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table></div>`;
}

/** A self-contained HTML page: verdict, health banners, charts, the full table and the run's environment. */
export function toHtml(r: Report, o: HtmlOptions = {}): string {
  const color = new Map<string, string>();
  r.strategies.forEach((s, i) => color.set(s, COLORS[i % COLORS.length]));
  const c: Ctx = { r, color, runs: o.runs ?? [] };
  const verdict = r.verdict ?? [];
  const verdictHtml = verdict.length ? `<div class="verdict">${verdict.map((v) => `<p>${esc(v)}</p>`).join('')}</div>` : '';
  const csv = o.csvHref ? ` · <a href="${esc(o.csvHref)}">table as CSV</a>` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.title)}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:28px}
.verdict p{font-size:1.1em;font-weight:600;margin:4px 0;padding:6px 10px;background:#eef6ee;border-left:4px solid #2ca02c}
.banner{background:#fff3cd;border:1px solid #e0a800;border-left:6px solid #d62728;padding:8px 12px;margin:8px 0}
.banner ul{margin:4px 0}.banner p{margin:4px 0}
.health{font-size:13px}.health .bad{color:#a00}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg{background:#fff;border:1px solid #ddd;border-radius:4px;font-size:11px;max-width:100%;height:auto}
svg .t{font-size:13px;font-weight:600}svg .v{font-size:10px;fill:#333}svg .na{fill:#888}
svg .grid line{stroke:#eee}svg .band{fill:#f2f2f2}svg .bl{fill:#777;font-size:10px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
caption{text-align:left;font-size:13px;color:#555;padding:4px 0}
.full th,.full td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
.full th:nth-child(-n+2),.full td:nth-child(-n+2){text-align:left}
.full thead th{background:#f4f4f4}.full tr.bad{background:#fff3cd}
.kv th{text-align:left;vertical-align:top;padding:2px 10px 2px 0;font-weight:600;white-space:nowrap}.kv td{padding:2px 0}
.env{font-size:13px}pre{margin:0;font-size:12px}
.note{color:#555;font-size:13px}
</style>
</head>
<body>
<h1>${esc(r.title)}</h1>
${verdictHtml}
${banners(c)}
<p class="note">Workload: ${esc(r.workload)} · strategies: ${esc(r.strategies.join(', '))} · generated ${esc(r.generatedAt)} · goodput SLO: ${esc(sloText(r))} · latencies in ms, warm-up excluded${csv}.</p>
<section aria-labelledby="overview"><h2 id="overview">Overview</h2>
<div class="charts">
${overview(c).join('\n')}
</div></section>
${stageKeys(r).map((k) => perStage(c, k)).join('\n')}
<section aria-labelledby="table"><h2 id="table">Full table</h2>
${fullTable(r)}
</section>
${environment(r)}
</body>
</html>
`;
}
