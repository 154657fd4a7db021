// Command line of the load generator:
//   node bench/load/cli.ts --url http://127.0.0.1:8081 --workload shared-prefix \
//     --rates 2,4 --duration 20s --warmup 5s --out bench/results/run
// Several strategies side by side: --url llm-epp=http://127.0.0.1:8081 --url round-robin=http://127.0.0.1:8082
// (identical request sequences, each from a reset fleet or interleaved: compare.ts).
import { parseArgs } from 'node:util';
import { parseDuration as parseFlagDuration } from '../../src/units.ts';
import { runComparison } from './compare.ts';
import { describeEnvironment } from './environment.ts';
import { decideReset, podBases, resetPods, type ResetMode } from './fleet-reset.ts';
import { HEALTH_HELP, HEALTH_OPTIONS, thresholdsFromFlags, type HealthThresholds } from './health.ts';
import { onInterrupt } from './interrupt.ts';
import { cacheScraper } from './metrics.ts';
import { EXIT_ERRORS, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, budgetMessage, parseErrorRate, stagesOverBudget } from './outcome.ts';
import { preflight, PreflightError, type PreflightResult } from './preflight.ts';
import { HealthMonitor, promLagSource } from './probes.ts';
import { buildReport, writeReports, type SLO } from './report.ts';
import type { RunResult, StageSpec } from './runner.ts';
import { terminalReport } from './terminal.ts';
import { verdicts } from './verdict.ts';
import { checkTenants, makeWorkload, parseTenant, type WorkloadKind, type WorkloadOptions } from './workloads.ts';

export const HELP = `Usage: npm run load -- --url [NAME=]URL [--url ...] [options]

Target and load
  --url [NAME=]URL        OpenAI-compatible base URL; repeat to compare strategies (NAME is the label).
                          Each gets the same request sequence, and a fair start: see Fair comparisons
  --strategy NAME         label when a single --url has no NAME (default "default")
  --workload KIND         shared-prefix | multi-turn | no-sharing | trace | tenants (default shared-prefix)
  --rates LIST            open-loop stages, req/s, e.g. 2,4,8
  --concurrency LIST      closed-loop stages (in-flight requests); 0 = open loop (default 0)
  --duration D            measured time per stage, e.g. 20s, 500ms, 2m (default 20s; trace: until it ends)
  --warmup D              warm-up per stage, excluded from results (default 0s)
  --arrival KIND          poisson | constant (default poisson)
  --max-requests N        cap per stage
  --max-in-flight N       open-loop cap on requests in flight
  --timeout D             per-request timeout (default 300s)
  --seed N                seed of text, order and arrivals (default 1)
  --model NAME            model in the request body (default sim-model)
  --ignore-eos BOOL       send ignore_eos (default true)

Workload parameters (tokens are 4 characters)
  shared-prefix: --groups 150 --prompts-per-group 5 --system-tokens 6000 --question-tokens 1200 --output-tokens 1000 [--fresh-questions]
  multi-turn:    --conversations 32 --turns 5 --system-tokens 1000 --conversations-per-system-prompt 1 --user-tokens 100 --output-tokens 200 --think-time 0ms
  no-sharing:    --prompt-tokens 7200 --output-tokens 1000
  trace:         --trace FILE.jsonl --speed 1 --block-tokens 512
  tenants:       --tenant NAME,rate=R[,objective=O][,burst=R@FROM-TO][,kind=no-sharing|shared-prefix] (repeat;
                 each its own Poisson arrivals, its requests with x-llm-d-inference-fairness-id: NAME and
                 x-llm-d-inference-objective: O; the burst window counts from the stage's start, warm-up
                 included), shaped by the no-sharing / shared-prefix flags above; one stage of --duration,
                 reported per tenant too (requests, ok, 429 and the x-llm-d-request-dropped-reason, TTFT, goodput)

Fair comparisons (several --url)
  --reset-between MODE     auto | on | off (default auto). Before each strategy's run, POST /sim/reset
                           to every pod given with --metrics, so no strategy inherits a cache another one
                           warmed. auto: on when the targets serve simulated pods (npm run sim: the
                           x-sim-pod header) and --metrics names the pods; on: required
  --interleave             run stage by stage, the strategies' order rotating each stage (with a reset
                           before each run when resetting) — for real pods, which cannot be reset

Report
  --slo-ttft MS --slo-tpot MS --slo-e2e MS   goodput SLO (default TTFT 2000, TPOT 100)
  --metrics [POD=]URL,...  pod /metrics URLs to scrape vllm:prefix_cache_* before/after each stage
                           (and the pods to reset between strategies)
  --lag-metrics [NAME=]URL,...  /metrics of Node processes (llm-epp's --metrics-port) whose
                           nodejs_eventloop_lag_* count in the health check
  --pods NAME,...          all pod names, so idle pods count in the spread
  --out PREFIX             writes PREFIX.json, .md, .html, .csv, .requests.jsonl (default bench/results/load-<time>)
  --progress / --no-progress   progress bar on stderr (default: when stderr is a TTY)
  --title TEXT

Robustness
  --max-error-rate R       exit 1 when a stage's failed fraction exceeds R (0..1 or 5%);
                           default: only when every request of a stage failed
  --skip-preflight         do not send the 1-token request that checks each --url first
  Ctrl-C writes a partial report of what completed and exits 130.

${HEALTH_HELP}`;

/** llm-epp's duration syntax ("20s", "500ms", "2m", "1m30s"), and a plain number as seconds → milliseconds. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (/^\d+(?:\.\d+)?$/.test(t)) return Number(t) * 1000;
  try {
    return parseFlagDuration(t);
  } catch {
    throw new Error(`bad duration "${s}" (e.g. 20s, 500ms, 2m)`);
  }
}

function numList(s: string | undefined): number[] {
  if (!s) return [];
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      const v = Number(x);
      if (!Number.isFinite(v) || v < 0) throw new Error(`bad number "${x}"`);
      return v;
    });
}

function named(s: string, fallback: string): [string, string] {
  const i = s.indexOf('=');
  if (i > 0 && !s.slice(0, i).includes('://')) return [s.slice(0, i), s.slice(i + 1)];
  return [fallback, s];
}

const OPTIONS = {
  url: { type: 'string', multiple: true },
  strategy: { type: 'string' },
  workload: { type: 'string', default: 'shared-prefix' },
  rates: { type: 'string' },
  concurrency: { type: 'string', default: '0' },
  duration: { type: 'string' },
  warmup: { type: 'string', default: '0s' },
  arrival: { type: 'string', default: 'poisson' },
  'max-requests': { type: 'string' },
  'max-in-flight': { type: 'string' },
  timeout: { type: 'string', default: '300s' },
  seed: { type: 'string', default: '1' },
  model: { type: 'string', default: 'sim-model' },
  'ignore-eos': { type: 'string', default: 'true' },
  groups: { type: 'string' },
  'prompts-per-group': { type: 'string' },
  'system-tokens': { type: 'string' },
  'question-tokens': { type: 'string' },
  'output-tokens': { type: 'string' },
  'fresh-questions': { type: 'boolean' },
  conversations: { type: 'string' },
  turns: { type: 'string' },
  'conversations-per-system-prompt': { type: 'string' },
  'user-tokens': { type: 'string' },
  'think-time': { type: 'string' },
  'prompt-tokens': { type: 'string' },
  trace: { type: 'string' },
  speed: { type: 'string' },
  'block-tokens': { type: 'string' },
  tenant: { type: 'string', multiple: true },
  'slo-ttft': { type: 'string' },
  'slo-tpot': { type: 'string' },
  'slo-e2e': { type: 'string' },
  metrics: { type: 'string' },
  pods: { type: 'string' },
  out: { type: 'string' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  title: { type: 'string' },
  'reset-between': { type: 'string', default: 'auto' },
  interleave: { type: 'boolean' },
  'lag-metrics': { type: 'string' },
  'max-error-rate': { type: 'string' },
  'skip-preflight': { type: 'boolean' },
  ...HEALTH_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

export interface CliPlan {
  targets: Array<[string, string]>;
  kind: WorkloadKind;
  workloadOptions: WorkloadOptions;
  stages: StageSpec[];
  arrival: 'poisson' | 'constant';
  seed: number;
  timeoutMs: number;
  maxInFlight?: number;
  slo: SLO;
  metrics?: Record<string, string>;
  pods?: string[];
  out: string;
  progress?: boolean;
  title?: string;
  resetBetween: ResetMode;
  interleave: boolean;
  /** Node processes whose event-loop lag counts in the health check: name → /metrics URL. */
  lagMetrics?: Record<string, string>;
  maxErrorRate?: number;
  preflight: boolean;
  thresholds: HealthThresholds;
}

function namedUrls(list: string, flag: string): Record<string, string> {
  const m: Record<string, string> = {};
  for (const s of list.split(',').filter(Boolean)) {
    const [name, url] = named(s.trim(), '');
    let host: string;
    try {
      host = new URL(url).host;
    } catch {
      throw new Error(`--${flag}: bad URL "${url}"`);
    }
    m[name || host] = url;
  }
  return m;
}

const RESET_MODES: Record<string, ResetMode> = { auto: 'auto', on: 'on', true: 'on', off: 'off', false: 'off' };

/** Turn argv into a run plan (exported for tests). */
export function planFromArgs(argv: string[]): CliPlan | 'help' {
  const { values: v } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (v.help) return 'help';
  if (!v.url || v.url.length === 0) throw new Error('--url is required (e.g. --url http://127.0.0.1:8081, where npm run gateway listens)');
  const targets = v.url.map((u) => named(u, v.strategy ?? 'default'));
  for (const [, u] of targets) {
    let ok = false;
    try {
      ok = /^https?:$/.test(new URL(u).protocol);
    } catch {
      // reported below
    }
    if (!ok) throw new Error(`--url: bad URL "${u}" (e.g. http://127.0.0.1:8081)`);
  }
  if (new Set(targets.map((t) => t[0])).size !== targets.length) throw new Error('each --url needs a distinct NAME= when several are given');
  const kind = v.workload as WorkloadKind;
  if (!['shared-prefix', 'multi-turn', 'no-sharing', 'trace', 'tenants'].includes(kind)) throw new Error(`unknown --workload ${kind}`);
  if (v.tenant && kind !== 'tenants') throw new Error('--tenant goes with --workload tenants');
  const int = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  const seed = Number(v.seed);
  const common = { model: v.model, seed, ignoreEos: v['ignore-eos'] !== 'false' };
  let workloadOptions: WorkloadOptions;
  if (kind === 'shared-prefix') {
    workloadOptions = {
      ...common,
      groups: int(v.groups),
      promptsPerGroup: int(v['prompts-per-group']),
      systemTokens: int(v['system-tokens']),
      questionTokens: int(v['question-tokens']),
      outputTokens: int(v['output-tokens']),
      freshQuestions: v['fresh-questions'],
    };
  } else if (kind === 'multi-turn') {
    workloadOptions = {
      ...common,
      conversations: int(v.conversations),
      turns: int(v.turns),
      systemTokens: int(v['system-tokens']),
      conversationsPerSystemPrompt: int(v['conversations-per-system-prompt']),
      userTokens: int(v['user-tokens']),
      outputTokens: int(v['output-tokens']),
      thinkTimeMs: v['think-time'] ? parseDuration(v['think-time']) : undefined,
    };
  } else if (kind === 'no-sharing') {
    workloadOptions = { ...common, promptTokens: int(v['prompt-tokens']), outputTokens: int(v['output-tokens']) };
  } else if (kind === 'tenants') {
    if (!v.tenant?.length) throw new Error('--workload tenants needs --tenant NAME,rate=R[,objective=O][,burst=R@FROM-TO] (repeat for each tenant)');
    const tenants = v.tenant.map(parseTenant);
    checkTenants(tenants);
    workloadOptions = {
      ...common,
      tenants,
      promptTokens: int(v['prompt-tokens']),
      groups: int(v.groups),
      promptsPerGroup: int(v['prompts-per-group']),
      systemTokens: int(v['system-tokens']),
      questionTokens: int(v['question-tokens']),
      outputTokens: int(v['output-tokens']),
    };
  } else {
    if (!v.trace) throw new Error('--workload trace needs --trace FILE');
    workloadOptions = { ...common, file: v.trace, speed: v.speed ? Number(v.speed) : undefined, blockTokens: int(v['block-tokens']) };
  }
  // Drop undefined so the workload's defaults apply.
  for (const k of Object.keys(workloadOptions)) if ((workloadOptions as Record<string, unknown>)[k] === undefined) delete (workloadOptions as Record<string, unknown>)[k];

  const warmupMs = parseDuration(v.warmup);
  const durationMs = v.duration ? parseDuration(v.duration) : kind === 'trace' ? undefined : 20_000;
  const maxRequests = int(v['max-requests']);
  const conc = numList(v.concurrency).filter((c) => c > 0);
  const rates = numList(v.rates).filter((r) => r > 0);
  const stages: StageSpec[] = [];
  const base: StageSpec = { warmupMs };
  if (durationMs !== undefined) base.durationMs = durationMs;
  if (maxRequests !== undefined) base.maxRequests = maxRequests;
  if (kind === 'trace' || kind === 'tenants') stages.push({ ...base, name: kind });
  else if (conc.length) for (const c of conc) stages.push({ ...base, concurrency: c });
  else if (rates.length) for (const r of rates) stages.push({ ...base, rate: r });
  else throw new Error('give --rates (open loop) or --concurrency > 0 (closed loop)');

  if (v.arrival !== 'poisson' && v.arrival !== 'constant') throw new Error('--arrival is poisson or constant');
  const slo: SLO = {};
  if (v['slo-ttft']) slo.ttftMs = Number(v['slo-ttft']);
  if (v['slo-tpot']) slo.tpotMs = Number(v['slo-tpot']);
  if (v['slo-e2e']) slo.e2eMs = Number(v['slo-e2e']);
  if (!v['slo-ttft'] && !v['slo-tpot'] && !v['slo-e2e']) {
    slo.ttftMs = 2000;
    slo.tpotMs = 100;
  }
  const resetBetween = RESET_MODES[v['reset-between']];
  if (!resetBetween) throw new Error(`--reset-between is auto, on or off, got "${v['reset-between']}"`);
  const plan: CliPlan = {
    targets,
    kind,
    workloadOptions,
    stages,
    arrival: v.arrival,
    seed,
    timeoutMs: parseDuration(v.timeout),
    slo,
    out: v.out ?? `bench/results/load-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    resetBetween,
    interleave: v.interleave ?? false,
    preflight: !v['skip-preflight'],
    thresholds: thresholdsFromFlags(v),
  };
  const maxErrorRate = parseErrorRate(v['max-error-rate']);
  if (maxErrorRate !== undefined) plan.maxErrorRate = maxErrorRate;
  if (v['max-in-flight']) plan.maxInFlight = Number(v['max-in-flight']);
  if (v.metrics) plan.metrics = namedUrls(v.metrics, 'metrics');
  if (v['lag-metrics']) plan.lagMetrics = namedUrls(v['lag-metrics'], 'lag-metrics');
  if (v.pods) plan.pods = v.pods.split(',').map((s) => s.trim()).filter(Boolean);
  if (v.progress) plan.progress = true;
  if (v['no-progress']) plan.progress = false;
  if (v.title) plan.title = v.title;
  return plan;
}

/** Where main() writes: the summary to `out`, progress and messages to `err`. */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const STDIO: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** The whole command; returns the exit status (outcome.ts). */
export async function main(argv: string[], io: Io = STDIO): Promise<number> {
  let plan: CliPlan | 'help';
  try {
    plan = planFromArgs(argv);
  } catch (e) {
    io.err(`error: ${(e as Error).message}\nRun with --help for the options.\n`);
    return EXIT_USAGE;
  }
  if (plan === 'help') {
    io.out(HELP);
    return EXIT_OK;
  }
  const environment = describeEnvironment(configOf(plan), ['node', 'bench/load/cli.ts', ...argv]);
  const p = plan;
  let checks: PreflightResult[] = [];
  if (p.preflight) {
    try {
      checks = await Promise.all(p.targets.map(([, url]) => preflight(url, { model: p.workloadOptions.model ?? 'sim-model', timeoutMs: p.timeoutMs })));
    } catch (e) {
      if (!(e instanceof PreflightError)) throw e;
      io.err(`error: ${e.message}\n`);
      return EXIT_ERRORS;
    }
  }
  const pods = p.metrics ? podBases(Object.values(p.metrics)) : [];
  let decision;
  try {
    decision = await decideReset(p.resetBetween, { targets: p.targets.length, simulated: checks.some((c) => c.simulated), pods, interleave: p.interleave });
  } catch (e) {
    io.err(`error: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (p.targets.length > 1) io.err(`fair comparison: ${decision.note}${p.interleave ? '; interleaved stage by stage' : ''}\n`);
  if (decision.warning) io.err(`warning: ${decision.warning}\n`);

  const monitor = new HealthMonitor(Object.entries(p.lagMetrics ?? {}).map(([name, url]) => ({ name, lag: promLagSource(url) })));
  const interrupt = onInterrupt((l) => io.err(l + '\n'));
  let runs: RunResult[] = [];
  try {
    runs = await runComparison({
      targets: p.targets,
      workload: () => makeWorkload(p.kind, p.workloadOptions),
      stages: p.stages,
      arrival: p.arrival,
      seed: p.seed,
      timeoutMs: p.timeoutMs,
      maxInFlight: p.maxInFlight,
      progress: p.progress,
      cacheCounters: p.metrics ? cacheScraper(p.metrics) : undefined,
      health: monitor,
      signal: interrupt.signal,
      reset: decision.reset
        ? async () => {
            const failed = await resetPods(pods);
            if (failed.length) throw new Error(`POST /sim/reset failed on ${failed.map((f) => `${f.pod} (${f.why})`).join(', ')}`);
          }
        : undefined,
      interleave: p.interleave,
      log: p.targets.length > 1 ? (l) => io.err(l + '\n') : undefined,
    });
  } finally {
    interrupt.dispose();
    monitor.close();
  }
  const interrupted = interrupt.by !== undefined;
  const report = buildReport(runs, {
    slo: p.slo,
    pods: p.pods,
    title: p.title,
    thresholds: p.thresholds,
    environment,
    partial: interrupted,
    meta: { argv, workload: p.kind, workloadOptions: p.workloadOptions, stages: p.stages, arrival: p.arrival, targets: Object.fromEntries(p.targets), fairness: decision },
  });
  report.verdict = verdicts(report);
  io.out(terminalReport(report));
  if (report.stages.length) {
    const paths = writeReports(report, p.out, runs);
    io.err(`\nwrote ${[paths.json, paths.md, paths.html, paths.csv, paths.requests].filter(Boolean).join(', ')}\n`);
  } else io.err('\nno stage started: no report written\n');
  if (interrupted) return EXIT_INTERRUPTED;
  const over = stagesOverBudget(report, p.maxErrorRate);
  if (over.length) {
    io.err(budgetMessage(over, p.maxErrorRate) + '\n');
    return EXIT_ERRORS;
  }
  return EXIT_OK;
}

/** The run's configuration as the report records it. */
function configOf(p: CliPlan): Record<string, unknown> {
  return {
    targets: Object.fromEntries(p.targets),
    workload: p.kind,
    workloadOptions: p.workloadOptions,
    stages: p.stages,
    arrival: p.arrival,
    seed: p.seed,
    timeoutMs: p.timeoutMs,
    maxInFlight: p.maxInFlight,
    slo: p.slo,
    resetBetween: p.resetBetween,
    interleave: p.interleave,
    maxErrorRate: p.maxErrorRate,
    thresholds: p.thresholds,
  };
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      // A friendly line, not a stack.
      process.stderr.write(`error: ${(e as Error).message ?? String(e)}\n`);
      process.exit(EXIT_ERRORS);
    },
  );
}
