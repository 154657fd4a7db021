// What `load` and `demo` print when they finish: a compact block per strategy and
// stage (as `vllm bench serve` prints), a warning for every stage the machine
// could not keep up with, and the verdict lines. The full table is in the files.
import type { Report, StageReport } from './report.ts';
import { cacheFraction, formatMs } from './verdict.ts';

const WIDTH = 52;
const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function num(v: number, digits = 1): string {
  if (!Number.isFinite(v)) return '–';
  return Math.abs(v) >= 1000 ? INT.format(v) : v.toFixed(digits);
}

function msList(...vs: number[]): string {
  return vs.every((v) => !Number.isFinite(v)) ? '–' : vs.map((v) => formatMs(v).replace(/ ms$/, '')).join(' / ');
}

function title(text: string, fill: string): string {
  const t = ` ${text} `;
  const left = Math.max(2, Math.floor((WIDTH - t.length) / 2));
  return fill.repeat(left) + t + fill.repeat(Math.max(2, WIDTH - left - t.length));
}

/** The summary block of one strategy's stage. */
export function summaryBlock(s: StageReport): string {
  const rows: Array<[string, string]> = [
    ['Requests ok / failed', `${s.completed} / ${s.failed}${s.aborted ? ` (${s.aborted} cancelled)` : ''}`],
    ['Duration (s)', num(s.durationS)],
    ['Request throughput (req/s)', num(s.requestThroughput, 2)],
    ['Output token throughput (tok/s)', num(s.outputTokenThroughput)],
    ['TTFT p50 / p90 / p99 (ms)', msList(s.ttftMs.p50, s.ttftMs.p90, s.ttftMs.p99)],
    ['ITL p50 / p99 (ms)', msList(s.itlMs.p50, s.itlMs.p99)],
    ['E2E p50 / p99 (ms)', msList(s.e2eMs.p50, s.e2eMs.p99)],
  ];
  const cache = cacheFraction(s);
  rows.push(['Prompt tokens from cache', cache === undefined ? '–' : `${(cache * 100).toFixed(1)} %`]);
  rows.push(['Goodput (req/s)', `${num(s.goodput.requestsPerS, 2)} (${Number.isFinite(s.goodput.fraction) ? (s.goodput.fraction * 100).toFixed(0) : '–'} %)`]);
  for (const t of s.tenants ?? []) {
    rows.push([`Tenant ${t.tenant}`, `ok ${t.completed} / 429 ${t.rejected429} / other ${t.otherErrors}; TTFT p50/p90 ${msList(t.ttftMs.p50, t.ttftMs.p90)} ms; goodput ${num(t.goodput.requestsPerS, 2)} req/s`]);
  }
  const errs = Object.entries(s.errors).sort((a, b) => b[1] - a[1]);
  if (errs.length) rows.push(['Errors', errs.slice(0, 3).map(([k, n]) => `${k} × ${n}`).join(', ')]);
  rows.push(['Health', s.health.reliable ? 'ok' : 'UNRELIABLE (see below)']);
  const label = Math.max(...rows.map((r) => r[0].length)) + 2;
  return [title(`${s.strategy} · ${s.name}`, '='), ...rows.map(([k, v]) => `${(k + ':').padEnd(label)}${v}`), '='.repeat(WIDTH)].join('\n');
}

/** The warning of an unreliable stage: why, and what to do. */
export function healthWarning(s: StageReport): string {
  const h = s.health;
  return [`⚠ UNRELIABLE: ${s.strategy} · ${s.name} — the machine could not keep up, so these figures measure it as much as the router:`, ...h.reasons.map((r) => `    - ${r}`), `  What to do: ${h.advice.join('; ')}.`].join('\n');
}

/** Everything printed at the end of a run. */
export function terminalReport(r: Report): string {
  const out: string[] = [];
  if (r.partial) out.push('Interrupted: partial results (what completed).', '');
  for (const s of r.stages) out.push(summaryBlock(s), '');
  for (const s of r.stages) if (!s.health.reliable) out.push(healthWarning(s), '');
  for (const v of r.verdict ?? []) out.push(v);
  return out.join('\n').replace(/\n+$/, '') + '\n';
}
