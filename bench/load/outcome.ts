// The exit status of `load` and `demo`: 0 when the run completed within its
// error budget, 1 when a stage failed too many requests (by default: every
// one), 2 for a bad command line, 130 when interrupted (Ctrl-C), as shells do.
import type { Report, StageReport } from './report.ts';

export const EXIT_OK = 0;
export const EXIT_ERRORS = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

/** Stages over the error budget: failed / requests > maxErrorRate, or, without one, every request failed. */
export function stagesOverBudget(r: Report, maxErrorRate?: number): StageReport[] {
  return r.stages.filter((s) => {
    if (s.requests === 0) return false;
    return maxErrorRate === undefined ? s.failed === s.requests : s.failed / s.requests > maxErrorRate;
  });
}

/** The message for stages over budget, one line each. */
export function budgetMessage(over: readonly StageReport[], maxErrorRate?: number): string {
  return over
    .map((s) => {
      const errs = Object.entries(s.errors).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${k} × ${n}`).join(', ');
      const what = s.failed === s.requests ? `every request failed (${s.failed})` : `${((s.failed / s.requests) * 100).toFixed(1)} % of requests failed > --max-error-rate ${((maxErrorRate ?? 0) * 100).toFixed(1)} %`;
      return `error: ${s.strategy} · ${s.name}: ${what}: ${errs}`;
    })
    .join('\n');
}

/** A fraction 0..1, or a percentage with %, for --max-error-rate. */
export function parseErrorRate(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  const n = t.endsWith('%') ? Number(t.slice(0, -1)) / 100 : Number(t);
  if (t === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new Error(`--max-error-rate must be a fraction 0..1 or a percentage (5%), got "${v}"`);
  return n;
}

/**
 * A command's plan from its arguments, or its exit status: EXIT_OK after printing `help` (the plan
 * was 'help'), EXIT_USAGE after a one-line error (the arguments were wrong).
 */
export function planOrExit<P>(parse: (argv: string[]) => P | 'help', argv: string[], help: string): P | number {
  let plan: P | 'help';
  try {
    plan = parse(argv);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\nRun with --help for the options.\n`);
    return EXIT_USAGE;
  }
  if (plan === 'help') {
    process.stdout.write(help);
    return EXIT_OK;
  }
  return plan;
}
