// `npm run demo`: llm-epp against other routing strategies, side by side in one run.
// Starts a simulated vLLM fleet (bench/sim/fleet.ts), llm-epp on it, one gateway per
// strategy (bench/gateway/gateway.ts: the llm-epp one does what Envoy does with an EPP),
// then drives the same request sequence through each gateway in turn, resetting the pods'
// caches and counters in between, and prints the comparison. Reports (JSON, Markdown,
// HTML with charts) go to bench/results/.
//
//   npm run demo                                       8 pods, shared prefix, llm-epp vs round-robin
//   npm run demo -- --strategies llm-epp,round-robin,least-request,random --rates 10,20,30
//   npm run demo -- --workload no-sharing --config-file deploy/config/prefix-heavy-chat.yaml
import { appendFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { boolFlag, numFlag } from './lib/args.ts';
import { ROOT, json, start, startEpp, stop, waitReady, type Child } from './lib/processes.ts';
import { cacheScraper } from './load/metrics.ts';
import { buildReport, toMarkdown, writeReports, type Report } from './load/report.ts';
import { runStages, type RunResult, type StageSpec } from './load/runner.ts';
import { makeWorkload, type WorkloadKind, type WorkloadOptions } from './load/workloads.ts';
import { parseDuration } from './load/cli.ts';

export const STRATEGIES = ['llm-epp', 'round-robin', 'least-request', 'random'] as const;
export type DemoStrategy = (typeof STRATEGIES)[number];

export const DEMO_HELP = `Usage: npm run demo -- [options]

  --pods N                 simulated vLLM pods (default 8)
  --strategies LIST        any of ${STRATEGIES.join(', ')} (default llm-epp,round-robin)
  --workload KIND          shared-prefix | multi-turn | no-sharing (default shared-prefix)
  --rates LIST             offered load per stage, req/s, Poisson (default 28)
  --duration D             measured time per stage (default 30s)
  --warmup D               warm-up before each stage, excluded from its figures (default 10s)
  --config-file FILE       EndpointPickerConfig for llm-epp (default: the GAIE default config)
  --epp-args "…"           extra llm-epp flags
  --sim-args "…"           extra bench/sim/fleet.ts flags (they override the demo's)
  --groups N --prompts-per-group N --system-tokens N --question-tokens N --output-tokens N
                           shared-prefix shape (default 64 × 5, 6000 / 1200 / 100)
  --conversations N --turns N --prompt-tokens N   multi-turn / no-sharing shape
  --seed N                 (default 1)
  --out PREFIX             report files (default bench/results/demo-<time>)
  --progress BOOL          progress bar (default: when stderr is a TTY)
  --append-results         append the table, the command and the machine to bench/RESULTS.md

The fleet is scaled so that the shared-prefix demand is ≈ 70 % of the fleet's KV cache and
≈ 6× one pod's (the canonical benchmark's cache pressure, shared/reference/benchmarks.md §3.1):
--num-gpu-blocks is derived from --groups × --system-tokens unless --sim-args sets it.
`;

const OPTIONS = {
  pods: { type: 'string', default: '8' },
  strategies: { type: 'string', default: 'llm-epp,round-robin' },
  workload: { type: 'string', default: 'shared-prefix' },
  rates: { type: 'string', default: '28' },
  duration: { type: 'string', default: '30s' },
  warmup: { type: 'string', default: '10s' },
  'config-file': { type: 'string' },
  'epp-args': { type: 'string', default: '' },
  'sim-args': { type: 'string', default: '' },
  groups: { type: 'string', default: '64' },
  'prompts-per-group': { type: 'string', default: '5' },
  'system-tokens': { type: 'string', default: '6000' },
  'question-tokens': { type: 'string', default: '1200' },
  'output-tokens': { type: 'string', default: '100' },
  conversations: { type: 'string' },
  turns: { type: 'string' },
  'prompt-tokens': { type: 'string' },
  seed: { type: 'string', default: '1' },
  out: { type: 'string' },
  progress: { type: 'string' },
  'append-results': { type: 'boolean' },
  title: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface DemoPlan {
  pods: number;
  strategies: DemoStrategy[];
  kind: Exclude<WorkloadKind, 'trace'>;
  workload: WorkloadOptions;
  stages: StageSpec[];
  simArgs: string[];
  eppArgs: string[];
  seed: number;
  out: string;
  progress?: boolean;
  appendResults: boolean;
  argv: string[];
  title: string;
}

/** Turn argv into a demo plan (exported for tests). */
export function demoPlanFromArgs(argv: string[]): DemoPlan | 'help' {
  const { values: v } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (v.help) return 'help';
  const pods = numFlag('pods', v.pods, true, 1)!;
  const strategies = v.strategies.split(',').map((s) => s.trim()).filter(Boolean) as DemoStrategy[];
  for (const s of strategies) if (!STRATEGIES.includes(s)) throw new Error(`unknown strategy "${s}" (${STRATEGIES.join(', ')})`);
  if (strategies.length === 0) throw new Error('--strategies is empty');
  const kind = v.workload as DemoPlan['kind'];
  if (!['shared-prefix', 'multi-turn', 'no-sharing'].includes(kind)) throw new Error(`unknown --workload ${kind} (shared-prefix, multi-turn, no-sharing)`);
  const seed = numFlag('seed', v.seed, true, 1)!;
  const outputTokens = numFlag('output-tokens', v['output-tokens'], true, 1)!;
  const groups = numFlag('groups', v.groups, true, 1)!;
  const systemTokens = numFlag('system-tokens', v['system-tokens'], true, 1)!;
  const questionTokens = numFlag('question-tokens', v['question-tokens'], true, 1)!;
  let workload: WorkloadOptions;
  if (kind === 'shared-prefix') {
    workload = { seed, groups, promptsPerGroup: numFlag('prompts-per-group', v['prompts-per-group'], true, 1), systemTokens, questionTokens, outputTokens };
  } else if (kind === 'no-sharing') {
    workload = { seed, promptTokens: numFlag('prompt-tokens', v['prompt-tokens'], true, 1) ?? systemTokens + questionTokens, outputTokens };
  } else {
    workload = { seed, conversations: numFlag('conversations', v.conversations, true, 1) ?? 64, turns: numFlag('turns', v.turns, true, 1) ?? 5, outputTokens };
  }
  const rates = v.rates.split(',').map((x) => Number(x.trim()));
  if (rates.length === 0 || rates.some((r) => !(r > 0))) throw new Error(`--rates must be positive numbers, got "${v.rates}"`);
  const durationMs = parseDuration(v.duration);
  const warmupMs = parseDuration(v.warmup);
  // Each stage warms up at its own rate, so a step up in load is not measured as a transient.
  const stages: StageSpec[] = rates.map((rate) => ({ rate, durationMs, warmupMs }));
  const simArgs = v['sim-args'].split(/\s+/).filter(Boolean);
  if (!simArgs.some((a) => a.startsWith('--num-gpu-blocks'))) {
    // Prefix demand ≈ 70 % of the fleet's KV: blocks per pod = demand / 0.7 / pods / 16.
    // The same fleet for every workload, so the no-sharing control runs on the same pods.
    const demand = groups * systemTokens;
    simArgs.unshift(`--num-gpu-blocks=${Math.max(256, Math.ceil(demand / 0.7 / pods / 16))}`);
  }
  const eppArgs = v['epp-args'].split(/\s+/).filter(Boolean);
  if (v['config-file']) eppArgs.push(`--config-file=${v['config-file']}`);
  const plan: DemoPlan = {
    pods,
    strategies,
    kind,
    workload,
    stages,
    simArgs,
    eppArgs,
    seed,
    out: v.out ?? `bench/results/demo-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    appendResults: v['append-results'] ?? false,
    argv,
    title: v.title ?? `llm-epp demo: ${kind}, ${pods} simulated pods`,
  };
  const progress = boolFlag('progress', v.progress);
  if (progress !== undefined) plan.progress = progress;
  return plan;
}

export interface DemoResult {
  report: Report;
  markdown: string;
  files: { json: string; md: string; html: string };
}

async function post(url: string): Promise<void> {
  const res = await request(url, { method: 'POST' });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`POST ${url}: HTTP ${res.statusCode}`);
}

export async function runDemo(plan: DemoPlan, log: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<DemoResult> {
  const children: Child[] = [];
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  try {
    let endpoints = '';
    let podNames: string[] = [];
    const fleet = await start(['bench/sim/fleet.ts', `--pods=${plan.pods}`, '--port=0', '--enable-prompt-tokens-details=true', ...plan.simArgs], (l) => {
      const j = json(l) as { endpoints?: string; pods?: Array<{ name: string }> } | undefined;
      if (!j?.endpoints) return undefined;
      endpoints = j.endpoints;
      podNames = (j.pods ?? []).map((p) => p.name);
      return {};
    });
    children.push(fleet);
    const urls = endpoints.split(',');
    log(`fleet: ${plan.pods} simulated pods on ${urls[0]}…  (${plan.simArgs.join(' ')})`);
    const gateways = new Map<DemoStrategy, string>();
    const gateway = async (strategy: DemoStrategy, extra: string[]) => {
      const g = await start(['bench/gateway/gateway.ts', '--port=0', ...extra], (l) => {
        const j = json(l) as { port?: number } | undefined;
        return j?.port ? { port: j.port } : undefined;
      });
      children.push(g);
      gateways.set(strategy, `http://127.0.0.1:${g.info.port}`);
    };
    for (const s of plan.strategies) {
      if (s === 'llm-epp') {
        const epp = await startEpp(endpoints, plan.eppArgs, [], 'ignore');
        children.push(epp);
        await waitReady(epp.info.metricsPort, plan.pods);
        log(`llm-epp: ext_proc on 127.0.0.1:${epp.info.port}, metrics on :${epp.info.metricsPort}${plan.eppArgs.length ? ' (' + plan.eppArgs.join(' ') + ')' : ''}`);
        await gateway(s, ['--strategy=epp', `--epp=127.0.0.1:${epp.info.port}`]);
      } else {
        await gateway(s, [`--strategy=${s}`, `--endpoints=${endpoints}`]);
      }
    }
    const metrics = Object.fromEntries(podNames.map((n, i) => [n, `http://${urls[i]}/metrics`]));
    const runs: RunResult[] = [];
    for (const s of plan.strategies) {
      if (ac.signal.aborted) break;
      // Every strategy starts from empty caches and zeroed counters.
      await Promise.all(urls.map((u) => post(`http://${u}/sim/reset`)));
      log(`\n▶ ${s}: ${plan.stages.map((st) => `${st.rate} req/s`).join(', ')} × ${(plan.stages[0].durationMs ?? 0) / 1000} s (warm-up ${(plan.stages[0].warmupMs ?? 0) / 1000} s)`);
      runs.push(
        await runStages({
          url: gateways.get(s)!,
          strategy: s,
          workload: makeWorkload(plan.kind, plan.workload),
          stages: plan.stages,
          arrival: 'poisson',
          seed: plan.seed,
          timeoutMs: 300_000,
          progress: plan.progress,
          cacheCounters: cacheScraper(metrics),
          signal: ac.signal,
        }),
      );
    }
    const report = buildReport(runs, { pods: podNames, title: plan.title, meta: { plan } });
    const files = writeReports(report, plan.out, runs);
    return { report, markdown: toMarkdown(report), files };
  } finally {
    process.off('SIGINT', onSig);
    await Promise.all(children.map((c) => stop(c)));
  }
}

if (import.meta.main) {
  let plan: DemoPlan | 'help';
  try {
    plan = demoPlanFromArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n\n${DEMO_HELP}`);
    process.exit(2);
  }
  if (plan === 'help') {
    process.stdout.write(DEMO_HELP);
    process.exit(0);
  }
  const t0 = performance.now();
  const r = await runDemo(plan);
  process.stdout.write('\n' + r.markdown);
  if (plan.appendResults) {
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
    const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
    const md = r.markdown.replace(/^## (.*)$/m, `## $1 — ${when} UTC`);
    appendFileSync(`${ROOT}bench/RESULTS.md`, `\n${md}\nCommand: \`npm run demo -- ${plan.argv.join(' ')}\` (${((performance.now() - t0) / 1000).toFixed(0)} s). Machine: ${machine}; fleet, llm-epp, gateways and load generator on the same machine. Report: \`${r.files.json}\`.\n`);
  }
  process.stderr.write(`\nwrote ${r.files.json}, ${r.files.md}, ${r.files.html} (open the .html in a browser) in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
}
