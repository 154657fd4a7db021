// `npm run bench:flow-control`: flow control off vs on, in one run, on the simulated fleet.
// Two tenants through the benchmark gateway (bench/gateway/) and llm-epp, told apart by
// x-llm-d-inference-fairness-id and given a priority by the InferenceObjective their
// x-llm-d-inference-objective names (--objectives-file): a quiet one well under the fleet's
// capacity, a noisy one bursting well past it. Three runs, each from a reset fleet:
//   (a) the quiet tenant alone, through the flow-control-on llm-epp (alone it never saturates
//       the pool, so this is its baseline with flow control's own cost included);
//   (b) both tenants, flow control off (the same config without featureGates: [flowControl]);
//   (c) both tenants, flow control on.
// The same arrivals in every run (each tenant's are seeded by its name). It prints and writes
// the comparison (JSON, Markdown, HTML with per-tenant charts, CSV) and one verdict line per
// criterion of issue 15: the quiet tenant's p90 TTFT with flow control on within 1.5× of alone;
// without, against alone; the noisy tenant shed with 429 and llm-epp's queue
// (llm_d_epp_flow_control_queue_size, sampled from its /metrics) within the bands' maxRequests;
// total goodput on ≥ off.
//
//   npm run bench:flow-control
//   npm run bench:flow-control -- --duration 30s --append-results
//   npm run bench:flow-control -- --noisy noisy,rate=3,objective=standard,burst=60@5s-25s
import { appendFileSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { DEFAULT_BAND_MAX_REQUESTS, FLOW_CONTROL_GATE } from '../src/flowcontrol/config.ts';
import { parseQuantity } from '../src/flowcontrol/quantity.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { startGatewayChild, startLlmEpp, startSimFleet } from './demo.ts';
import { boolFlag, numFlag } from './lib/args.ts';
import { ROOT, eppBenchArgs } from './lib/processes.ts';
import { killChildrenSync, stopChildren, type StartedChild } from './load/children.ts';
import { parseDuration } from './load/cli.ts';
import { describeEnvironment, shellQuote } from './load/environment.ts';
import { resetPods } from './load/fleet-reset.ts';
import { HEALTH_HELP, HEALTH_OPTIONS, thresholdsFromFlags, type HealthThresholds } from './load/health.ts';
import { onInterrupt } from './load/interrupt.ts';
import { sumCounter } from './load/metrics.ts';
import { EXIT_ERRORS, EXIT_INTERRUPTED, EXIT_OK, planOrExit } from './load/outcome.ts';
import { preflight } from './load/preflight.ts';
import { HealthMonitor } from './load/probes.ts';
import { buildReport, tenantTable, toMarkdown, writeReports, type Report, type SLO, type StageReport, type TenantFigures } from './load/report.ts';
import { reasonsText } from './load/report-html.ts';
import { runStages, type RunResult } from './load/runner.ts';
import { terminalReport } from './load/terminal.ts';
import { formatMs } from './load/verdict.ts';
import { parseTenant, tenants, type TenantSpec } from './load/workloads.ts';

export const FLOW_CONTROL_HELP = `Usage: npm run bench:flow-control -- [options]

Scenario
  --pods N                 simulated pods (default 2)
  --warmup D               warm-up of each run, excluded from the figures (default 5s)
  --duration D             measured time of each run (default 30s)
  --quiet SPEC             the quiet tenant (default "quiet,rate=3,objective=critical")
  --noisy SPEC             the noisy tenant (default "noisy,rate=3,objective=standard,burst=32@W-W+D":
                           bursting through the whole measured window)
                           SPEC: NAME,rate=R[,objective=O][,burst=R@FROM-TO][,kind=no-sharing|shared-prefix],
                           the burst window counted from the start of the run (warm-up included)
  --prompt-tokens N        every request's prompt, unique (default 256)
  --output-tokens N        max_tokens, generated in full (default 24)
  --slo-ttft MS            goodput: TTFT objective (default 2000; TPOT ≤ 100 ms as the load generator's)
  --seed N                 (default 1)

llm-epp and the fleet
  --config-file FILE       the flow-control-on config (default bench/config/flow-control.yaml; it must
                           list featureGates: [flowControl]); the off run uses it without that gate
  --objectives-file FILE   InferenceObjectives giving the tenants' priorities (default
                           deploy/objectives/flow-control.yaml: critical 100, standard 0, batch -10)
  --epp-args "…"           extra llm-epp flags (both llm-epps)
  --sim-args "…"           extra bench/sim/fleet.ts flags; by default --max-num-seqs equals the config's
                           concurrency-detector maxConcurrency, --time-scale=5 --stream-interval=4

Output
  --out PREFIX             report files (default bench/results/flow-control-<time>)
  --progress BOOL          progress bar (default: when stderr is a TTY)
  --append-results         append the figures, the verdict and the command to bench/RESULTS.md

${HEALTH_HELP}`;

const OPTIONS = {
  pods: { type: 'string', default: '2' },
  warmup: { type: 'string', default: '5s' },
  duration: { type: 'string', default: '30s' },
  quiet: { type: 'string', default: 'quiet,rate=3,objective=critical' },
  noisy: { type: 'string' },
  'prompt-tokens': { type: 'string', default: '256' },
  'output-tokens': { type: 'string', default: '24' },
  'slo-ttft': { type: 'string', default: '2000' },
  seed: { type: 'string', default: '1' },
  'config-file': { type: 'string', default: 'bench/config/flow-control.yaml' },
  'objectives-file': { type: 'string', default: 'deploy/objectives/flow-control.yaml' },
  'epp-args': { type: 'string', default: '' },
  'sim-args': { type: 'string', default: '' },
  out: { type: 'string' },
  progress: { type: 'string' },
  'append-results': { type: 'boolean' },
  ...HEALTH_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

/** The criterion of issue 15: the quiet tenant's p90 TTFT with flow control on at most this many times its value alone. */
export const QUIET_P90_FACTOR = 1.5;

/** What the runner reads from the flow-control config. */
export interface ScenarioConfig {
  /** The config as given (flow control on) and without the gate (off). */
  onText: string;
  offText: string;
  /** Each configured band's maxRequests (llm-d's default 5000 when unset); other priorities get the default band's. */
  bandLimits: Map<number, number>;
  defaultBandLimit: number;
  /** flowControl.maxRequests over every band; 0: none. */
  totalLimit: number;
  /** The concurrency-detector's maxConcurrency when it is the saturation detector. */
  maxConcurrency?: number;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const limitOf = (v: unknown): number => (v === undefined || v === null ? 0 : parseQuantity(v)) || DEFAULT_BAND_MAX_REQUESTS;

/** Read the flow-control config: the on and off texts, the queue limits, the detector's capacity. */
export function scenarioConfig(text: string, source: string): ScenarioConfig {
  const doc = parseYaml(text) as unknown;
  if (!isMap(doc)) throw new Error(`${source}: not an EndpointPickerConfig (a YAML mapping)`);
  const gates = Array.isArray(doc.featureGates) ? (doc.featureGates as unknown[]) : [];
  if (!gates.includes(FLOW_CONTROL_GATE)) throw new Error(`${source}: the flow-control-on config must list featureGates: [${FLOW_CONTROL_GATE}]`);
  const off: Record<string, unknown> = { ...doc };
  const rest = gates.filter((g) => g !== FLOW_CONTROL_GATE);
  if (rest.length) off.featureGates = rest;
  else delete off.featureGates;
  const fc = isMap(doc.flowControl) ? doc.flowControl : {};
  const bandLimits = new Map<number, number>();
  for (const b of Array.isArray(fc.priorityBands) ? fc.priorityBands : []) if (isMap(b) && typeof b.priority === 'number') bandLimits.set(b.priority, limitOf(b.maxRequests));
  const defaultBandLimit = isMap(fc.defaultPriorityBand) ? limitOf(fc.defaultPriorityBand.maxRequests) : DEFAULT_BAND_MAX_REQUESTS;
  const totalLimit = fc.maxRequests === undefined || fc.maxRequests === null ? 0 : parseQuantity(fc.maxRequests);
  const sc: ScenarioConfig = { onText: text, offText: stringifyYaml(off), bandLimits, defaultBandLimit, totalLimit };
  const ref = isMap(fc.saturationDetector) ? fc.saturationDetector.pluginRef : undefined;
  const plugins = Array.isArray(doc.plugins) ? doc.plugins.filter(isMap) : [];
  const detector = plugins.find((p) => (p.name ?? p.type) === ref);
  if (detector?.type === 'concurrency-detector') {
    const p = isMap(detector.parameters) ? detector.parameters : {};
    if ((p.concurrencyMode ?? 'requests') === 'requests') sc.maxConcurrency = typeof p.maxConcurrency === 'number' ? p.maxConcurrency : 100;
  }
  return sc;
}

/** InferenceObjective name → priority from an --objectives-file text (documents, or a kind: List). */
export function objectivePriorities(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const add = (d: unknown) => {
    if (!isMap(d)) return;
    if (d.kind === 'List' && Array.isArray(d.items)) return d.items.forEach(add);
    if (d.kind !== 'InferenceObjective' || !isMap(d.metadata) || typeof d.metadata.name !== 'string') return;
    const p = isMap(d.spec) && typeof d.spec.priority === 'number' ? d.spec.priority : 0;
    out.set(d.metadata.name, p);
  };
  for (const doc of parseAllDocuments(text)) add(doc.toJS());
  return out;
}

export interface FlowControlPlan {
  pods: number;
  warmupMs: number;
  durationMs: number;
  quiet: TenantSpec;
  noisy: TenantSpec;
  promptTokens: number;
  outputTokens: number;
  slo: SLO;
  seed: number;
  configFile: string;
  objectivesFile: string;
  eppArgs: string[];
  simArgs: string[];
  out: string;
  progress?: boolean;
  appendResults: boolean;
  argv: string[];
  thresholds: HealthThresholds;
}

/** Turn argv into a plan (exported for tests). The sim's defaults come from the config: see --sim-args. */
export function flowControlPlanFromArgs(argv: string[]): FlowControlPlan | 'help' {
  const { values: v } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (v.help) return 'help';
  const warmupMs = parseDuration(v.warmup);
  const durationMs = parseDuration(v.duration);
  if (!(durationMs > 0)) throw new Error('--duration must be positive');
  const quiet = parseTenant(v.quiet);
  const noisy = parseTenant(v.noisy ?? `noisy,rate=3,objective=standard,burst=32@${warmupMs}ms-${warmupMs + durationMs}ms`);
  if (quiet.name === noisy.name) throw new Error(`--quiet and --noisy name the same tenant "${quiet.name}"`);
  const plan: FlowControlPlan = {
    pods: numFlag('pods', v.pods, true, 1)!,
    warmupMs,
    durationMs,
    quiet,
    noisy,
    promptTokens: numFlag('prompt-tokens', v['prompt-tokens'], true, 1)!,
    outputTokens: numFlag('output-tokens', v['output-tokens'], true, 1)!,
    slo: { ttftMs: numFlag('slo-ttft', v['slo-ttft'], false, 1)!, tpotMs: 100 },
    seed: numFlag('seed', v.seed, true, 0)!,
    configFile: v['config-file'],
    objectivesFile: v['objectives-file'],
    eppArgs: v['epp-args'].split(/\s+/).filter(Boolean),
    simArgs: v['sim-args'].split(/\s+/).filter(Boolean),
    out: v.out ?? `bench/results/flow-control-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    appendResults: v['append-results'] ?? false,
    argv,
    thresholds: thresholdsFromFlags(v),
  };
  const progress = boolFlag('progress', v.progress);
  if (progress !== undefined) plan.progress = progress;
  return plan;
}

/** The fleet's flags: the caller's, then the scenario's defaults for what they leave unset. */
export function fleetArgs(plan: Pick<FlowControlPlan, 'simArgs'>, sc: Pick<ScenarioConfig, 'maxConcurrency'>): string[] {
  const args = [...plan.simArgs];
  const set = (flag: string, value: number | undefined) => {
    if (value !== undefined && !args.some((a) => a === flag || a.startsWith(`${flag}=`))) args.push(`${flag}=${value}`);
  };
  // The pod's batch is the detector's capacity: past it a request would wait in the pod's own queue.
  set('--max-num-seqs', sc.maxConcurrency);
  // Requests long enough in wall time that a 2-vCPU machine keeps up with the fleet's capacity in req/s.
  set('--time-scale', 5);
  set('--stream-interval', 4);
  return args;
}

// ---------------------------------------------------------------------------
// Queues while a run goes: llm-epp's flow-control queue and the pods' own waiting requests

/** The largest queues seen. */
export interface QueuePeaks {
  /** llm_d_epp_flow_control_queue_size summed over flows, by priority, and over everything. */
  eppByPriority: Record<string, number>;
  eppTotal: number;
  /** vllm:num_requests_waiting summed over the pods. */
  podsWaiting: number;
  samples: number;
}

const QUEUE_SIZE = 'llm_d_epp_flow_control_queue_size';
const QUEUE_NAMES = new Set([QUEUE_SIZE]);
const SAMPLE_MS = 200;

/** llm-epp's flow-control queue in one /metrics page: by priority label and in total. */
export function eppQueue(text: string): { byPriority: Record<string, number>; total: number } {
  const byPriority: Record<string, number> = {};
  let total = 0;
  for (const s of parsePrometheusText(text, QUEUE_NAMES).get(QUEUE_SIZE) ?? []) {
    const p = s.labels.priority ?? '';
    byPriority[p] = (byPriority[p] ?? 0) + s.value;
    total += s.value;
  }
  return { byPriority, total };
}

async function page(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

/** Sample the queues every 200 ms until stop(), which returns the peaks. */
function watchQueues(eppMetricsUrl: string, podMetricsUrls: readonly string[]): { stop(): Promise<QueuePeaks> } {
  const peaks: QueuePeaks = { eppByPriority: {}, eppTotal: 0, podsWaiting: 0, samples: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const [epp, ...pods] = await Promise.all([page(eppMetricsUrl), ...podMetricsUrls.map(page)]);
      if (epp !== undefined) {
        const q = eppQueue(epp);
        for (const [p, n] of Object.entries(q.byPriority)) peaks.eppByPriority[p] = Math.max(peaks.eppByPriority[p] ?? 0, n);
        peaks.eppTotal = Math.max(peaks.eppTotal, q.total);
        peaks.samples++;
      }
      let waiting = 0;
      for (const t of pods) waiting += t === undefined ? 0 : (sumCounter(t, ['vllm:num_requests_waiting']) ?? 0);
      peaks.podsWaiting = Math.max(peaks.podsWaiting, waiting);
      await new Promise((r) => setTimeout(r, Math.max(0, SAMPLE_MS - (performance.now() - started))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peaks;
    },
  };
}

// ---------------------------------------------------------------------------
// The verdict

/** The three runs' labels (the report's strategies). */
export const RUN_LABELS = { alone: 'quiet alone (flow control on)', off: 'flow control off', on: 'flow control on' } as const;

export interface Criterion {
  /** Short name. */
  name: string;
  /** undefined: no data to judge. */
  met: boolean | undefined;
  /** The line printed, without the PASS/FAIL mark. */
  text: string;
}

export interface VerdictInput {
  quiet: string;
  noisy: string;
  /** Each run's queue peaks. */
  queues: { off?: QueuePeaks; on?: QueuePeaks };
  config: Pick<ScenarioConfig, 'bandLimits' | 'defaultBandLimit' | 'totalLimit'>;
}

const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}×` : '–');

/** The criteria of issue 15, judged from the report (one stage per run) and the queue peaks. */
export function flowControlCriteria(r: Report, o: VerdictInput): Criterion[] {
  const stage = (run: string): StageReport | undefined => r.stages.find((s) => s.strategy === run);
  const tenant = (run: string, name: string): TenantFigures | undefined => stage(run)?.tenants?.find((t) => t.tenant === name);
  const p90 = (run: string) => {
    const t = tenant(run, o.quiet);
    return t && t.completed > 0 ? t.ttftMs.p90 : undefined;
  };
  const alone = p90(RUN_LABELS.alone);
  const off = p90(RUN_LABELS.off);
  const on = p90(RUN_LABELS.on);
  const out: Criterion[] = [];
  out.push(
    alone === undefined || on === undefined
      ? { name: 'quiet p90 TTFT on', met: undefined, text: `${o.quiet} p90 TTFT with flow control on vs alone: no completed request to judge` }
      : {
          name: 'quiet p90 TTFT on',
          met: on <= QUIET_P90_FACTOR * alone,
          text: `${o.quiet} p90 TTFT with flow control on ${formatMs(on)} vs ${formatMs(alone)} alone (${ratio(on, alone)}; criterion ≤ ${QUIET_P90_FACTOR}×)`,
        },
  );
  out.push(
    alone === undefined || off === undefined
      ? { name: 'quiet p90 TTFT off', met: undefined, text: `${o.quiet} p90 TTFT without flow control vs alone: no completed request to judge` }
      : {
          name: 'quiet p90 TTFT off',
          met: off > QUIET_P90_FACTOR * alone,
          text: `${o.quiet} p90 TTFT without flow control ${formatMs(off)} vs ${formatMs(alone)} alone (${ratio(off, alone)}; criterion: degrades with the burst, > ${QUIET_P90_FACTOR}×)`,
        },
  );
  const nOn = tenant(RUN_LABELS.on, o.noisy);
  const nOff = tenant(RUN_LABELS.off, o.noisy);
  const q = o.queues.on;
  if (!nOn || !q) out.push({ name: 'noisy shed, queue bounded', met: undefined, text: `${o.noisy}: no requests or no queue samples with flow control on` });
  else {
    const limitOf = (p: string) => o.config.bandLimits.get(Number(p)) ?? o.config.defaultBandLimit;
    const bands = Object.entries(q.eppByPriority).sort((a, b) => Number(b[0]) - Number(a[0]));
    const bounded = bands.every(([p, n]) => n <= limitOf(p)) && (o.config.totalLimit === 0 || q.eppTotal <= o.config.totalLimit);
    const queued = bands.length ? bands.map(([p, n]) => `${n} at priority ${p} (limit ${limitOf(p)})`).join(', ') : 'nothing';
    const offText = nOff ? `, ${nOff.rejected429} without` : '';
    const podsOff = o.queues.off ? `; the pods' own queues peaked at ${o.queues.off.podsWaiting} waiting without flow control, ${q.podsWaiting} with` : '';
    out.push({
      name: 'noisy shed, queue bounded',
      met: nOn.rejected429 > 0 && bounded && q.samples > 0,
      text: `${o.noisy}: ${nOn.rejected429} of ${nOn.requests} answered 429 with flow control on (${reasonsText(nOn.droppedReasons)})${offText}; llm-epp's queue peaked at ${queued} over ${q.samples} samples${podsOff}`,
    });
  }
  const gOn = stage(RUN_LABELS.on)?.goodput;
  const gOff = stage(RUN_LABELS.off)?.goodput;
  out.push(
    !gOn || !gOff
      ? { name: 'goodput', met: undefined, text: 'total goodput: a run is missing' }
      : {
          name: 'goodput',
          met: gOn.requestsPerS >= gOff.requestsPerS,
          text: `total goodput with flow control on ${gOn.requestsPerS.toFixed(2)} req/s (${gOn.met} requests) vs ${gOff.requestsPerS.toFixed(2)} req/s (${gOff.met}) off (criterion: not lower)`,
        },
  );
  return out;
}

/** A criterion as a verdict line. */
export function criterionLine(c: Criterion): string {
  return `${c.met === undefined ? 'NO DATA' : c.met ? 'PASS' : 'FAIL'}: ${c.text}`;
}

// ---------------------------------------------------------------------------
// The run

export interface FlowControlResult {
  report: Report;
  criteria: Criterion[];
  files?: { json: string; md: string; html: string; csv: string };
  interrupted: boolean;
  seconds: number;
}

interface RunSpec {
  label: string;
  tenants: TenantSpec[];
  gate: 'on' | 'off';
}

/** Start the fleet and the two llm-epps with their gateways, run (a), (b), (c), judge and write the reports. */
export async function runFlowControl(plan: FlowControlPlan, log: (s: string) => void = (s) => process.stderr.write(s + '\n'), signal?: AbortSignal): Promise<FlowControlResult> {
  const t0 = performance.now();
  const configText = readFileSync(new URL(plan.configFile, `file://${ROOT}`), 'utf8');
  const sc = scenarioConfig(configText, plan.configFile);
  const priorities = objectivePriorities(readFileSync(new URL(plan.objectivesFile, `file://${ROOT}`), 'utf8'));
  for (const t of [plan.quiet, plan.noisy]) {
    if (t.objective !== undefined && !priorities.has(t.objective)) throw new Error(`tenant "${t.name}" names objective "${t.objective}", which ${plan.objectivesFile} does not define`);
  }
  const simArgs = fleetArgs(plan, sc);
  const scenario = {
    pods: plan.pods,
    warmupMs: plan.warmupMs,
    durationMs: plan.durationMs,
    tenants: [plan.quiet, plan.noisy].map((t) => ({ ...t, priority: t.objective === undefined ? 0 : priorities.get(t.objective) })),
    promptTokens: plan.promptTokens,
    outputTokens: plan.outputTokens,
    slo: plan.slo,
    simArgs,
    eppArgs: plan.eppArgs,
    configFile: plan.configFile,
    objectivesFile: plan.objectivesFile,
  };
  const environment = describeEnvironment({ scenario, llmEppConfig: configText }, ['node', 'bench/flow-control.bench.ts', ...plan.argv]);
  const children: StartedChild[] = [];
  const monitor = new HealthMonitor();
  const onExit = () => killChildrenSync(children);
  process.once('exit', onExit);
  const stopped = () => signal?.aborted ?? false;
  const runs: RunResult[] = [];
  const queues: { off?: QueuePeaks; on?: QueuePeaks } = {};
  let podNames: string[] = [];
  try {
    const fleet = await startSimFleet({ pods: plan.pods, simArgs }, [], children, monitor);
    podNames = fleet.podNames;
    const urls = fleet.endpoints.split(',');
    log(`fleet: ${plan.pods} simulated pods on ${urls[0]}…  (${simArgs.join(' ')})`);
    const common = ['--allow-experimental-plugins', `--objectives-file=${plan.objectivesFile}`, ...plan.eppArgs];
    const paths = new Map<'on' | 'off', { url: string; metrics: string }>();
    for (const gate of ['off', 'on'] as const) {
      if (stopped()) break;
      const name = `llm-epp flow control ${gate}`;
      const epp = await startLlmEpp(name, eppBenchArgs(fleet.endpoints, [`--config-text=${gate === 'on' ? sc.onText : sc.offText}`, ...common]), children, monitor, plan.pods);
      const gw = await startGatewayChild(`the gateway to ${name} (bench/gateway/gateway.ts)`, ['--strategy=epp', `--epp=127.0.0.1:${epp.info.port}`], children, monitor, `gateway ${gate}`);
      paths.set(gate, { url: `http://127.0.0.1:${gw.info.port}`, metrics: `http://127.0.0.1:${epp.info.metricsPort}/metrics` });
      log(`${name}: ext_proc on 127.0.0.1:${epp.info.port}, metrics on :${epp.info.metricsPort}, gateway on :${gw.info.port}`);
    }
    if (!stopped()) await Promise.all([...paths.values()].map((p) => preflight(p.url, { model: 'sim-model' })));
    const podUrls = urls.map((u) => `http://${u}`);
    const specs: RunSpec[] = [
      { label: RUN_LABELS.alone, tenants: [plan.quiet], gate: 'on' },
      { label: RUN_LABELS.off, tenants: [plan.quiet, plan.noisy], gate: 'off' },
      { label: RUN_LABELS.on, tenants: [plan.quiet, plan.noisy], gate: 'on' },
    ];
    const stage = { name: 'tenants', durationMs: plan.durationMs, warmupMs: plan.warmupMs };
    for (const r of specs) {
      if (stopped()) break;
      const failed = await resetPods(podUrls);
      if (failed.length) throw new Error(`could not reset the simulated pods: ${failed.map((f) => `${f.pod} ${f.why}`).join(', ')}`);
      log(`\n▶ ${r.label}: ${r.tenants.map((t) => t.name).join(' + ')} × ${plan.durationMs / 1000} s (warm-up ${plan.warmupMs / 1000} s)`);
      const path = paths.get(r.gate)!;
      const watch = watchQueues(path.metrics, podUrls.map((u) => `${u}/metrics`));
      try {
        runs.push(
          await runStages({
            url: path.url,
            strategy: r.label,
            workload: tenants({ tenants: r.tenants, seed: plan.seed, promptTokens: plan.promptTokens, outputTokens: plan.outputTokens }),
            stages: [stage],
            seed: plan.seed,
            timeoutMs: 300_000,
            progress: plan.progress,
            health: monitor,
            signal,
          }),
        );
      } finally {
        const peaks = await watch.stop();
        if (r.label !== RUN_LABELS.alone) queues[r.gate] = peaks;
      }
    }
  } finally {
    monitor.close();
    await stopChildren(children);
    process.off('exit', onExit);
  }
  const report = buildReport(runs, {
    slo: plan.slo,
    pods: podNames,
    title: `Flow control off vs on: a quiet tenant and a noisy one, ${plan.pods} simulated pods`,
    meta: { queuePeaks: queues, bandLimits: Object.fromEntries(sc.bandLimits) },
    thresholds: plan.thresholds,
    environment,
    partial: stopped(),
  });
  const criteria = flowControlCriteria(report, { quiet: plan.quiet.name, noisy: plan.noisy.name, queues, config: sc });
  report.verdict = criteria.map(criterionLine);
  const unreliable = report.stages.filter((s) => !s.health.reliable).map((s) => s.strategy);
  if (unreliable.length) report.verdict.push(`UNRELIABLE: the machine could not keep up during ${unreliable.join(', ')} (see the report)`);
  const result: FlowControlResult = { report, criteria, interrupted: stopped(), seconds: (performance.now() - t0) / 1000 };
  if (report.stages.length) result.files = writeReports(report, plan.out, runs);
  return result;
}

/** The section --append-results adds to bench/RESULTS.md. */
export function resultsSection(r: FlowControlResult, command: string): string {
  const rep = r.report;
  const m = rep.machine;
  const when = rep.generatedAt.slice(0, 16).replace('T', ' ');
  const machine = m ? `${m.cpus} × ${m.model}, ${Math.round(m.memoryGiB)} GiB, load average ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} at the start; Node ${rep.versions?.node}` : 'unknown';
  // The tables (per stage, per tenant) and the errors; the verdict, machine and command are said once, here.
  const md = toMarkdown({ ...rep, verdict: undefined, command: undefined, machine: undefined, versions: undefined }).replace(/^## .*\n\n/, '');
  return [
    `## ${rep.title} — ${when} UTC (\`npm run bench:flow-control\`)`,
    '',
    ...r.criteria.map((c) => `- ${criterionLine(c)}`),
    '',
    md.trimEnd(),
    '',
    `Command: \`${command}\` (${r.seconds.toFixed(0)} s). Machine: ${machine}; fleet, both llm-epps, both gateways and the load generator on the same machine. Report: \`${r.files?.json ?? '–'}\`.`,
    '',
  ].join('\n');
}

export async function flowControlMain(argv: string[]): Promise<number> {
  const plan = planOrExit(flowControlPlanFromArgs, argv, FLOW_CONTROL_HELP);
  if (typeof plan === 'number') return plan;
  const interrupt = onInterrupt((l) => process.stderr.write(l + '\n'));
  let r: FlowControlResult;
  try {
    r = await runFlowControl(plan, undefined, interrupt.signal);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return interrupt.by ? EXIT_INTERRUPTED : EXIT_ERRORS;
  } finally {
    interrupt.dispose();
  }
  process.stdout.write('\n' + terminalReport(r.report) + '\n' + tenantTable(r.report).join('\n') + '\n');
  const command = `npm run bench:flow-control${plan.argv.length ? ' -- ' + plan.argv.map(shellQuote).join(' ') : ''}`;
  if (plan.appendResults && r.files && !r.interrupted) appendFileSync(`${ROOT}bench/RESULTS.md`, '\n' + resultsSection(r, command));
  if (r.files) process.stderr.write(`\nwrote ${r.files.json}, ${r.files.md}, ${r.files.html}, ${r.files.csv} in ${r.seconds.toFixed(0)} s\n`);
  return r.interrupted ? EXIT_INTERRUPTED : EXIT_OK;
}

if (import.meta.main) process.exit(await flowControlMain(process.argv.slice(2)));
