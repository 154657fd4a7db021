// Command line of the load generator:
//   node bench/load/cli.ts --url http://127.0.0.1:8081 --workload shared-prefix \
//     --rates 2,4 --duration 20s --warmup 5s --out bench/results/run
// Several strategies side by side: --url llm-epp=http://127.0.0.1:8081 --url round-robin=http://127.0.0.1:8082
// (run one after the other with identical request sequences).
import { parseArgs } from 'node:util';
import { parseDuration as parseFlagDuration } from '../../src/units.ts';
import { cacheScraper } from './metrics.ts';
import { buildReport, toMarkdown, writeReports, type SLO } from './report.ts';
import { runStages, type RunResult, type StageSpec } from './runner.ts';
import { makeWorkload, type WorkloadKind, type WorkloadOptions } from './workloads.ts';

export const HELP = `Usage: node bench/load/cli.ts --url [NAME=]URL [--url ...] [options]

Target and load
  --url [NAME=]URL        OpenAI-compatible base URL; repeat for strategies side by side (NAME is the label)
  --strategy NAME         label when a single --url has no NAME (default "default")
  --workload KIND         shared-prefix | multi-turn | no-sharing | trace (default shared-prefix)
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

Report
  --slo-ttft MS --slo-tpot MS --slo-e2e MS   goodput SLO (default TTFT 2000, TPOT 100)
  --metrics [POD=]URL,...  pod /metrics URLs to scrape vllm:prefix_cache_* before/after each stage
  --pods NAME,...          all pod names, so idle pods count in the spread
  --out PREFIX             writes PREFIX.json, .md, .html, .requests.jsonl (default bench/results/load-<time>)
  --progress / --no-progress   progress bar on stderr (default: when stderr is a TTY)
  --title TEXT
`;

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
  'slo-ttft': { type: 'string' },
  'slo-tpot': { type: 'string' },
  'slo-e2e': { type: 'string' },
  metrics: { type: 'string' },
  pods: { type: 'string' },
  out: { type: 'string' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  title: { type: 'string' },
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
}

/** Turn argv into a run plan (exported for tests). */
export function planFromArgs(argv: string[]): CliPlan | 'help' {
  const { values: v } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (v.help) return 'help';
  if (!v.url || v.url.length === 0) throw new Error('--url is required');
  const targets = v.url.map((u) => named(u, v.strategy ?? 'default'));
  if (new Set(targets.map((t) => t[0])).size !== targets.length) throw new Error('each --url needs a distinct NAME= when several are given');
  const kind = v.workload as WorkloadKind;
  if (!['shared-prefix', 'multi-turn', 'no-sharing', 'trace'].includes(kind)) throw new Error(`unknown --workload ${kind}`);
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
  if (kind === 'trace') stages.push({ ...base, name: 'trace' });
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
  };
  if (v['max-in-flight']) plan.maxInFlight = Number(v['max-in-flight']);
  if (v.metrics) {
    const m: Record<string, string> = {};
    for (const s of v.metrics.split(',').filter(Boolean)) {
      const [name, url] = named(s.trim(), '');
      m[name || new URL(url).host] = url;
    }
    plan.metrics = m;
  }
  if (v.pods) plan.pods = v.pods.split(',').map((s) => s.trim()).filter(Boolean);
  if (v.progress) plan.progress = true;
  if (v['no-progress']) plan.progress = false;
  if (v.title) plan.title = v.title;
  return plan;
}

export async function main(argv: string[]): Promise<number> {
  let plan: CliPlan | 'help';
  try {
    plan = planFromArgs(argv);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (plan === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const runs: RunResult[] = [];
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  try {
    for (const [strategy, url] of plan.targets) {
      const run = await runStages({
        url,
        strategy,
        workload: makeWorkload(plan.kind, plan.workloadOptions),
        stages: plan.stages,
        arrival: plan.arrival,
        seed: plan.seed,
        timeoutMs: plan.timeoutMs,
        maxInFlight: plan.maxInFlight,
        progress: plan.progress,
        cacheCounters: plan.metrics ? cacheScraper(plan.metrics) : undefined,
        signal: ac.signal,
      });
      runs.push(run);
      if (ac.signal.aborted) break;
    }
  } finally {
    process.off('SIGINT', onSig);
  }
  const report = buildReport(runs, {
    slo: plan.slo,
    pods: plan.pods,
    title: plan.title,
    meta: { argv, workload: plan.kind, workloadOptions: plan.workloadOptions, stages: plan.stages, arrival: plan.arrival, targets: Object.fromEntries(plan.targets) },
  });
  const paths = writeReports(report, plan.out, runs);
  process.stdout.write(toMarkdown(report));
  process.stderr.write(`\nwrote ${paths.json}, ${paths.md}, ${paths.html}${paths.requests ? ', ' + paths.requests : ''}\n`);
  return 0;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
