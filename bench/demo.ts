// `npm run demo`: llm-epp against other routing strategies, side by side in one run.
// Starts a simulated vLLM fleet (bench/sim/fleet.ts), llm-epp on it, one gateway per
// strategy (bench/gateway/gateway.ts: the llm-epp one does what Envoy does with an EPP),
// then drives the same request sequence through each gateway in turn, resetting the pods'
// caches and counters before each, and prints a summary per strategy, a warning for every
// stage the machine could not keep up with, and a verdict line. Reports (JSON, Markdown,
// HTML with charts, CSV) go to bench/results/.
//
//   npm run demo                                       8 pods, shared prefix, llm-epp vs round-robin
//   npm run demo -- --strategies llm-epp,round-robin,least-request,random --rates 10,20,30
//   npm run demo -- --workload no-sharing --config-file deploy/config/prefix-heavy-chat.yaml
import { appendFileSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { boolFlag, numFlag } from './lib/args.ts';
import { ROOT, eppBenchArgs, freePort, json, waitReady } from './lib/processes.ts';
import { killChildrenSync, startChild, stopChildren, type StartedChild } from './load/children.ts';
import { parseDuration } from './load/cli.ts';
import { runComparison } from './load/compare.ts';
import { describeEnvironment } from './load/environment.ts';
import { resetPods } from './load/fleet-reset.ts';
import { HEALTH_HELP, HEALTH_OPTIONS, thresholdsFromFlags, type HealthThresholds } from './load/health.ts';
import { onInterrupt } from './load/interrupt.ts';
import { cacheScraper } from './load/metrics.ts';
import { EXIT_ERRORS, EXIT_INTERRUPTED, EXIT_OK, budgetMessage, parseErrorRate, planOrExit, stagesOverBudget } from './load/outcome.ts';
import { preflight } from './load/preflight.ts';
import { HealthMonitor, promLagSource } from './load/probes.ts';
import { buildReport, toMarkdown, writeReports, type Report } from './load/report.ts';
import type { RunResult, StageSpec } from './load/runner.ts';
import { terminalReport } from './load/terminal.ts';
import { verdicts } from './load/verdict.ts';
import { makeWorkload, type WorkloadKind, type WorkloadOptions } from './load/workloads.ts';

export const STRATEGIES = ['llm-epp', 'approximate', 'precise', 'round-robin', 'least-request', 'random', 'oracle'] as const;
export type DemoStrategy = (typeof STRATEGIES)[number];

export const DEMO_HELP = `Usage: npm run demo -- [options]

  --pods N                 simulated vLLM pods (default 8)
  --strategies LIST        any of ${STRATEGIES.join(', ')} (default llm-epp,round-robin):
                             llm-epp       llm-epp with --config-file (default: the GAIE default config)
                             approximate   llm-epp with the GAIE default config (approximate prefix index)
                             precise       llm-epp with the GAIE default weights, the prefix score from
                                           the pods' KV-cache events (precise-prefix-cache-producer, discover
                                           mode) and tokens from pod 0's render endpoint (token-producer vllm)
                             round-robin, least-request, random   the gateway alone
                             oracle        the gateway asks every simulated pod how much of the prompt it
                                           caches (/sim/prefix-match) and picks the most (ties: least busy)
  --epp-replicas N         llm-epp replicas per llm-epp strategy, behind one gateway that spreads the
                           streams over them (active-active; default 1)
  --restart-pods N         restart N pods (/sim/restart: empty cache, no event) during each strategy's
                           run (default 0)
  --restart-after D        when, from the start of each run (default: the first stage's warm-up plus
                           half its measured time)
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
  --max-error-rate R       exit 1 when a stage's failed fraction exceeds R (0..1 or 5%);
                           default: only when every request of a stage failed

Every strategy gets the same request sequence and starts from a reset fleet (empty caches,
zeroed counters). Ctrl-C writes a partial report of what completed and exits 130.

The fleet is scaled so that the shared-prefix demand is ≈ 70 % of the fleet's KV cache and
≈ 6× one pod's (the cache pressure of llm-d's shared-prefix benchmark): --num-gpu-blocks is
derived from --groups × --system-tokens unless --sim-args sets it.

${HEALTH_HELP}`;

const OPTIONS = {
  pods: { type: 'string', default: '8' },
  strategies: { type: 'string', default: 'llm-epp,round-robin' },
  workload: { type: 'string', default: 'shared-prefix' },
  rates: { type: 'string', default: '28' },
  duration: { type: 'string', default: '30s' },
  warmup: { type: 'string', default: '10s' },
  'config-file': { type: 'string' },
  'epp-args': { type: 'string', default: '' },
  'epp-replicas': { type: 'string', default: '1' },
  'restart-pods': { type: 'string', default: '0' },
  'restart-after': { type: 'string' },
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
  'max-error-rate': { type: 'string' },
  ...HEALTH_OPTIONS,
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
  eppReplicas: number;
  /** Pods restarted during each run, and when (ms from the run's start). */
  restart?: { pods: number; afterMs: number };
  seed: number;
  out: string;
  progress?: boolean;
  appendResults: boolean;
  argv: string[];
  title: string;
  thresholds: HealthThresholds;
  maxErrorRate?: number;
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
  const eppReplicas = numFlag('epp-replicas', v['epp-replicas'], true, 1)!;
  const restartPods = numFlag('restart-pods', v['restart-pods'], true, 0)!;
  if (restartPods > pods) throw new Error(`--restart-pods ${restartPods} is more than --pods ${pods}`);
  const restartAfterMs = v['restart-after'] !== undefined ? parseDuration(v['restart-after']) : warmupMs + durationMs / 2;
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
    eppReplicas,
    seed,
    out: v.out ?? `bench/results/demo-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    appendResults: v['append-results'] ?? false,
    argv,
    title: v.title ?? `llm-epp demo: ${kind}, ${pods} simulated pods`,
    thresholds: thresholdsFromFlags(v),
  };
  if (restartPods > 0) plan.restart = { pods: restartPods, afterMs: restartAfterMs };
  const maxErrorRate = parseErrorRate(v['max-error-rate']);
  if (maxErrorRate !== undefined) plan.maxErrorRate = maxErrorRate;
  const progress = boolFlag('progress', v.progress);
  if (progress !== undefined) plan.progress = progress;
  return plan;
}

export interface DemoResult {
  report: Report;
  markdown: string;
  /** What the terminal shows: summary blocks, health warnings, verdict lines. */
  terminal: string;
  /** Absent when the run was interrupted before any stage started. */
  files?: { json: string; md: string; html: string; csv: string };
  /** Stopped by the signal: the report is partial. */
  interrupted: boolean;
}

const EPP_CONFIG_MAX = 64 * 1024;

/** The llm-epp config the demo ran with, for the report: the file's text (bounded), or the default. */
function eppConfig(eppArgs: string[]): { file?: string; text?: string } | string {
  const flag = eppArgs.find((a) => a.startsWith('--config-file='));
  if (!flag) return 'the GAIE default config';
  const file = flag.slice('--config-file='.length);
  try {
    const text = readFileSync(new URL(file, `file://${ROOT}`), 'utf8');
    return { file, text: text.length > EPP_CONFIG_MAX ? text.slice(0, EPP_CONFIG_MAX) + '\n…' : text };
  } catch {
    return { file };
  }
}

/** Every pod's KV-event port: the one --sim-args names, else a free one on the fleet's loopback addresses (then the fleet is told). */
async function kvEventsPort(simArgs: string[]): Promise<{ port: number; fleetArgs: string[] }> {
  const given = simArgs.find((a) => a.startsWith('--kv-events-port='));
  if (given) return { port: Number(given.slice('--kv-events-port='.length)), fleetArgs: [] };
  const port = await freePort('127.0.1.1');
  return { port, fleetArgs: [`--kv-events-port=${port}`] };
}

/**
 * llm-epp's config for the precise strategy: the GAIE default config (deploy/config/gaie-default.yaml,
 * the approximate strategy's, so only the prefix signal differs) with the prefix score taken from the
 * pods' KV events in discover mode and tokens from a simulated pod's render endpoint (token-producer
 * vllm, as llm-d users run it; the simulator's ids are the ones its cache keys on).
 */
export function preciseConfigText(renderUrl: string, kvPort: number, model: string): string {
  const doc = parseYaml(readFileSync(`${ROOT}deploy/config/gaie-default.yaml`, 'utf8')) as { plugins: Array<{ type: string; parameters?: unknown }> };
  const prefix = doc.plugins.find((p) => p.type === 'prefix-cache-scorer');
  if (!prefix) throw new Error('deploy/config/gaie-default.yaml has no prefix-cache-scorer');
  prefix.parameters = { prefixMatchInfoProducerName: 'precise-prefix-cache-producer' };
  doc.plugins.unshift(
    { type: 'token-producer', parameters: { modelName: model, vllm: { url: renderUrl, timeout: '5s' } } },
    { type: 'precise-prefix-cache-producer', parameters: { kvEventsConfig: { discoverPods: true, podDiscoveryConfig: { socketPort: kvPort } }, speculativeIndexing: true } },
  );
  return stringifyYaml(doc);
}

/** The llm-epp flags of one llm-epp strategy (approximate and precise ignore --config-file). */
function eppArgsOf(s: DemoStrategy, plan: DemoPlan, pod0: string, kvPort: number | undefined): string[] {
  if (s === 'llm-epp') return plan.eppArgs;
  const rest = plan.eppArgs.filter((a) => !a.startsWith('--config-file=') && !a.startsWith('--config-text='));
  if (s === 'approximate') return rest;
  return [...rest, `--config-text=${preciseConfigText(`http://${pod0}`, kvPort!, plan.workload.model ?? 'sim-model')}`];
}

/** The --restart-pods disruption: during each run, restart the first N pods at the given time. */
function restartPods(restart: { pods: number; afterMs: number }, podUrls: string[], log: (s: string) => void) {
  return async (strategy: string, _firstStage: number, signal: AbortSignal): Promise<void> => {
    try {
      await sleep(restart.afterMs, undefined, { signal });
    } catch {
      return; // the run ended first
    }
    const targets = podUrls.slice(0, restart.pods);
    const answers = await Promise.all(targets.map((u) => fetch(`${u}/sim/restart`, { method: 'POST' }).then((r) => r.status, (e: Error) => e.message)));
    const failed = answers.map((a, i) => [targets[i], a] as const).filter(([, a]) => a !== 200);
    if (failed.length) throw new Error(`could not restart ${failed.map(([u, a]) => `${u} (${a})`).join(', ')}`);
    log(`  ${strategy}: restarted ${targets.length} pod${targets.length > 1 ? 's' : ''} at ${(restart.afterMs / 1000).toFixed(1)} s`);
  };
}

/** The simulated fleet of a plan, started, tracked in `children` and watched by `monitor`: its endpoints and pod names. */
export async function startSimFleet(plan: Pick<DemoPlan, 'pods' | 'simArgs'>, extraArgs: readonly string[], children: StartedChild[], monitor: HealthMonitor): Promise<{ endpoints: string; podNames: string[] }> {
  let endpoints = '';
  let podNames: string[] = [];
  const fleet = await startChild({
    label: 'the simulated fleet (bench/sim/fleet.ts)',
    args: ['bench/sim/fleet.ts', `--pods=${plan.pods}`, '--port=0', '--enable-prompt-tokens-details=true', ...extraArgs, ...plan.simArgs],
    ready: (l) => {
      const j = json(l) as { endpoints?: string; pods?: Array<{ name: string }> } | undefined;
      if (!j?.endpoints) return undefined;
      endpoints = j.endpoints;
      podNames = (j.pods ?? []).map((p) => p.name);
      return {};
    },
  });
  children.push(fleet);
  monitor.add({ name: 'simulated fleet', pid: fleet.pid, lag: fleet.lag });
  return { endpoints, podNames };
}

/**
 * llm-epp (src/main.ts with `args`, as `npm start` and the container run it), tracked in `children`,
 * its lag read from its own /metrics by `monitor`; resolves once it has scraped `pods` pods.
 * info: {port (ext_proc), metricsPort}.
 */
export async function startLlmEpp(name: string, args: string[], children: StartedChild[], monitor: HealthMonitor, pods: number): Promise<StartedChild> {
  const epp = await startChild({
    label: `${name} (src/main.ts)`,
    nodeArgs: ['--max-semi-space-size=4'],
    probe: false,
    args,
    ready: (l) => {
      const j = json(l) as { msg?: string; grpcPort?: number; metricsPort?: number } | undefined;
      return j?.msg === 'llm-epp serving' ? { port: j.grpcPort!, metricsPort: j.metricsPort! } : undefined;
    },
  });
  children.push(epp);
  monitor.add({ name, pid: epp.pid, lag: promLagSource(`http://127.0.0.1:${epp.info.metricsPort}/metrics`) });
  await waitReady(epp.info.metricsPort, pods);
  return epp;
}

/** A benchmark gateway (bench/gateway/gateway.ts --port=0 with `args`), tracked in `children` and watched by `monitor` as `name`. info: {port[, metricsPort]}. */
export async function startGatewayChild(label: string, args: string[], children: StartedChild[], monitor: HealthMonitor, name: string): Promise<StartedChild> {
  const g = await startChild({
    label,
    args: ['bench/gateway/gateway.ts', '--port=0', ...args],
    ready: (l) => {
      const j = json(l) as { port?: number; metricsPort?: number } | undefined;
      return j?.port ? { port: j.port, ...(j.metricsPort ? { metricsPort: j.metricsPort } : {}) } : undefined;
    },
  });
  children.push(g);
  // A gateway that serves prom-client metrics is read there; else through the lag probe.
  monitor.add({ name, pid: g.pid, lag: g.info.metricsPort ? promLagSource(`http://127.0.0.1:${g.info.metricsPort}/metrics`) : g.lag });
  return g;
}

/**
 * Run the demo. `signal` stops it early: the report then holds what completed. Throws, with the
 * child's own first error lines, when a process does not start.
 */
export async function runDemo(plan: DemoPlan, log: (s: string) => void = (s) => process.stderr.write(s + '\n'), signal?: AbortSignal): Promise<DemoResult> {
  const environment = describeEnvironment({ plan, llmEppConfig: eppConfig(plan.eppArgs) }, ['node', 'bench/demo.ts', ...plan.argv]);
  const children: StartedChild[] = [];
  const monitor = new HealthMonitor();
  // Children have their own process group: if the demo dies, take them along.
  const onExit = () => killChildrenSync(children);
  process.once('exit', onExit);
  const stopped = () => signal?.aborted ?? false;
  let runs: RunResult[] = [];
  let podNames: string[] = [];
  try {
    // Precise routing reads the pods' KV events: every pod publishes on its own address, one port.
    const kv = plan.strategies.includes('precise') ? await kvEventsPort(plan.simArgs) : undefined;
    const fleet = await startSimFleet(plan, kv?.fleetArgs ?? [], children, monitor);
    const endpoints = fleet.endpoints;
    podNames = fleet.podNames;
    const urls = endpoints.split(',');
    log(`fleet: ${plan.pods} simulated pods on ${urls[0]}…  (${plan.simArgs.join(' ')})`);
    const gateways = new Map<DemoStrategy, string>();
    const gateway = async (strategy: DemoStrategy, extra: string[]) => {
      const g = await startGatewayChild(`the ${strategy} gateway (bench/gateway/gateway.ts)`, extra, children, monitor, `gateway ${strategy}`);
      gateways.set(strategy, `http://127.0.0.1:${g.info.port}`);
    };
    for (const s of plan.strategies) {
      if (stopped()) break;
      if (s === 'llm-epp' || s === 'approximate' || s === 'precise') {
        const args = eppArgsOf(s, plan, urls[0], kv?.port);
        const addresses: string[] = [];
        for (let r = 0; r < plan.eppReplicas && !stopped(); r++) {
          // "llm-epp", "llm-epp precise", "llm-epp approximate replica 2"…
          const name = [s === 'llm-epp' ? '' : ` ${s}`, plan.eppReplicas > 1 ? ` replica ${r + 1}` : ''].join('');
          const epp = await startLlmEpp(`llm-epp${name}`, eppBenchArgs(endpoints, args), children, monitor, plan.pods);
          log(`llm-epp${name}: ext_proc on 127.0.0.1:${epp.info.port}, metrics on :${epp.info.metricsPort}${s === 'llm-epp' && plan.eppArgs.length ? ' (' + plan.eppArgs.join(' ') + ')' : ''}`);
          addresses.push(`127.0.0.1:${epp.info.port}`);
        }
        if (!stopped()) await gateway(s, ['--strategy=epp', `--epp=${addresses.join(',')}`]);
      } else {
        await gateway(s, [`--strategy=${s}`, `--endpoints=${endpoints}`]);
      }
    }
    if (!stopped()) {
      // One request through every gateway first: a broken path fails here, with its reason.
      await Promise.all([...gateways].map(([, url]) => preflight(url, { model: plan.workload.model ?? 'sim-model' })));
      const metrics = Object.fromEntries(podNames.map((n, i) => [n, `http://${urls[i]}/metrics`]));
      const podUrls = urls.map((u) => `http://${u}`);
      runs = await runComparison({
        targets: plan.strategies.filter((s) => gateways.has(s)).map((s) => [s, gateways.get(s)!] as const),
        workload: () => makeWorkload(plan.kind, plan.workload),
        stages: plan.stages,
        arrival: 'poisson',
        seed: plan.seed,
        timeoutMs: 300_000,
        progress: plan.progress,
        cacheCounters: cacheScraper(metrics),
        health: monitor,
        signal,
        // Every strategy starts from empty caches and zeroed counters.
        reset: async () => {
          const failed = await resetPods(podUrls);
          if (failed.length && !stopped()) throw new Error(`could not reset the simulated pods: ${failed.map((f) => `${f.pod} ${f.why}`).join(', ')}`);
        },
        ...(plan.restart ? { during: restartPods(plan.restart, podUrls, log) } : {}),
        log: (l) => log(`\n${l} — ${plan.stages.map((st) => `${st.rate} req/s`).join(', ')} × ${(plan.stages[0].durationMs ?? 0) / 1000} s (warm-up ${(plan.stages[0].warmupMs ?? 0) / 1000} s)`),
      });
    }
  } finally {
    monitor.close();
    await stopChildren(children);
    process.off('exit', onExit);
  }
  const report = buildReport(runs, { pods: podNames, title: plan.title, meta: { plan }, thresholds: plan.thresholds, environment, partial: stopped() });
  report.verdict = verdicts(report);
  const files = report.stages.length ? writeReports(report, plan.out, runs) : undefined;
  const r: DemoResult = { report, markdown: toMarkdown(report), terminal: terminalReport(report), interrupted: stopped() };
  if (files) r.files = files;
  return r;
}

/** `npm run demo`: returns the exit status. */
export async function demoMain(argv: string[]): Promise<number> {
  const plan = planOrExit(demoPlanFromArgs, argv, DEMO_HELP);
  if (typeof plan === 'number') return plan;
  const t0 = performance.now();
  const interrupt = onInterrupt((l) => process.stderr.write(l + '\n'));
  let r: DemoResult;
  try {
    r = await runDemo(plan, undefined, interrupt.signal);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return interrupt.by ? EXIT_INTERRUPTED : EXIT_ERRORS;
  } finally {
    interrupt.dispose();
  }
  process.stdout.write('\n' + r.terminal);
  if (plan.appendResults && r.files && !r.interrupted) {
    const m = r.report.machine!;
    const machine = `${m.cpus} × ${m.model}, ${Math.round(m.memoryGiB)} GiB, Node ${r.report.versions!.node}`;
    const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
    const md = r.markdown.replace(/^## (.*)$/m, `## $1 — ${when} UTC`);
    appendFileSync(`${ROOT}bench/RESULTS.md`, `\n${md}\nCommand: \`npm run demo -- ${plan.argv.join(' ')}\` (${((performance.now() - t0) / 1000).toFixed(0)} s). Machine: ${machine}; fleet, llm-epp, gateways and load generator on the same machine. Report: \`${r.files.json}\`.\n`);
  }
  if (r.files) process.stderr.write(`\nwrote ${r.files.json}, ${r.files.md}, ${r.files.html} (open the .html in a browser), ${r.files.csv} in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  else process.stderr.write('\nno stage started: no report written\n');
  if (r.interrupted) return EXIT_INTERRUPTED;
  const over = stagesOverBudget(r.report, plan.maxErrorRate);
  if (over.length) {
    process.stderr.write(budgetMessage(over, plan.maxErrorRate) + '\n');
    return EXIT_ERRORS;
  }
  return EXIT_OK;
}

if (import.meta.main) process.exit(await demoMain(process.argv.slice(2)));
