// One line per comparison, for the terminal, the Markdown and the top of the HTML:
//   "llm-epp: p90 TTFT 327 ms vs 7,178 ms round-robin, +25 % req/s, 68 % vs 12 % prompt tokens from cache"
import type { Report, StageReport } from './report.ts';

const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Milliseconds as a reader wants them: 7,178 ms, 76.4 ms, 3.21 ms. */
export function formatMs(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 100) return `${INT.format(v)} ms`;
  return `${v.toFixed(Math.abs(v) >= 10 ? 1 : 2)} ms`;
}

/** Fraction of prompt tokens served from the prefix cache: the pods' counters, else the usage chunks. */
export function cacheFraction(s: StageReport): number | undefined {
  const v = s.prefixCacheHitRate?.rate ?? s.cachedTokenRate;
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

function errorsText(s: StageReport): string {
  return Object.entries(s.errors)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([k, n]) => `${k} × ${n}`)
    .join(', ');
}

/**
 * The comparison of one strategy's stage with another's, e.g.
 * "llm-epp: p90 TTFT 327 ms vs 7,178 ms round-robin, +25 % req/s, 68 % vs 12 % prompt tokens from cache".
 * Says so when either side failed every request, and ends with a warning when either stage is unreliable.
 */
export function verdictLine(subject: StageReport, baseline: StageReport): string {
  let line: string;
  if (subject.completed === 0 || baseline.completed === 0) {
    const dead = [subject, baseline].filter((s) => s.completed === 0);
    line = dead.map((s) => `${s.strategy}: no request succeeded${s.failed ? ` (${errorsText(s)})` : ''}`).join('; ');
  } else {
    const parts = [`${subject.strategy}: p90 TTFT ${formatMs(subject.ttftMs.p90)} vs ${formatMs(baseline.ttftMs.p90)} ${baseline.strategy}`];
    if (baseline.requestThroughput > 0) {
      const d = Math.round((subject.requestThroughput / baseline.requestThroughput - 1) * 100);
      parts.push(`${d > 0 ? '+' : d < 0 ? '−' : '±'}${Math.abs(d)} % req/s`);
    }
    const a = cacheFraction(subject);
    const b = cacheFraction(baseline);
    if (a !== undefined && b !== undefined) parts.push(`${Math.round(a * 100)} % vs ${Math.round(b * 100)} % prompt tokens from cache`);
    if (subject.failed || baseline.failed) parts.push(`errors ${subject.failed} vs ${baseline.failed}`);
    line = parts.join(', ');
  }
  const unreliable = [subject, baseline].filter((s) => !s.health?.reliable).map((s) => s.strategy);
  if (unreliable.length) line += ` (UNRELIABLE: the machine could not keep up during ${unreliable.length === 1 ? `${unreliable[0]}'s run` : `the ${unreliable.join(' and ')} runs`})`;
  return line;
}

/**
 * Every comparison of a report: the subject (llm-epp when it is one of the strategies, else the
 * first) against each other strategy, per stage; the stage name leads when there are several.
 */
export function verdicts(r: Report): string[] {
  if (r.strategies.length < 2) return [];
  const subject = r.strategies.includes('llm-epp') ? 'llm-epp' : r.strategies[0];
  const names: string[] = [];
  for (const s of r.stages) if (!names.includes(s.name)) names.push(s.name);
  const out: string[] = [];
  for (const name of names) {
    const a = r.stages.find((s) => s.name === name && s.strategy === subject);
    if (!a) continue;
    for (const other of r.strategies) {
      if (other === subject) continue;
      const b = r.stages.find((s) => s.name === name && s.strategy === other);
      if (b) out.push((names.length > 1 ? `${name} · ` : '') + verdictLine(a, b));
    }
  }
  return out;
}
