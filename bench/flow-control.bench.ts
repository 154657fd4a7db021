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
//
// With --replicas N each llm-epp is N active-active replicas behind its gateway (which hands
// each request's ext_proc stream to the next replica in turn), sharing state through a
// redis-server the runner starts with --state-sync. --fleet-wide runs instead: N replicas
// without sync, then N with --state-sync, both with flow control on, and judges the pods' own
// running + waiting requests against the fleet's capacity (maxConcurrency × pods).
//
//   npm run bench:flow-control -- --replicas 2 --fleet-wide
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { DEFAULT_BAND_MAX_REQUESTS, FLOW_CONTROL_GATE } from '../src/flowcontrol/config.ts';
import { parseQuantity } from '../src/flowcontrol/quantity.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { startGatewayChild, startLlmEpp, startSimFleet } from './demo.ts';
import { boolFlag, numFlag } from './lib/args.ts';
import { ROOT, eppBenchArgs, freePort, startRedisServer } from './lib/processes.ts';
import { percentile } from './lib/stats.ts';
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

const FLOW_CONTROL_HELP = `Usage: npm run bench:flow-control -- [options]

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

Replicas
  --replicas N             llm-epp replicas behind each gateway, which spreads the streams over them
                           (default 1)
  --state-sync             with --replicas ≥ 2: the replicas share state (--state-sync=redis://…)
                           through a redis-server the runner starts and stops
  --fleet-wide             with --replicas ≥ 2, instead of the three runs: N replicas without sync, then
                           N with --state-sync, both with flow control on (the quiet-alone and
                           flow-control-off runs are skipped); judges the pods' own running + waiting
                           requests against the fleet's capacity, maxConcurrency × pods (needs the
                           concurrency-detector). Needs redis-server on the PATH.

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
  replicas: { type: 'string', default: '1' },
  'state-sync': { type: 'boolean' },
  'fleet-wide': { type: 'boolean' },
  out: { type: 'string' },
  progress: { type: 'string' },
  'append-results': { type: 'boolean' },
  ...HEALTH_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

/** The criterion of issue 15: the quiet tenant's p90 TTFT with flow control on at most this many times its value alone. */
const QUIET_P90_FACTOR = 1.5;

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
  /** llm-epp replicas behind each gateway. */
  replicas: number;
  /** The replicas share state through the runner's redis-server. */
  stateSync: boolean;
  /** The fleet-wide scenario: N replicas without sync, then with, flow control on. */
  fleetWide: boolean;
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
  const replicas = numFlag('replicas', v.replicas, true, 1)!;
  const stateSync = v['state-sync'] ?? false;
  const fleetWide = v['fleet-wide'] ?? false;
  if (stateSync && replicas < 2) throw new Error('--state-sync needs --replicas 2 or more');
  if (fleetWide && replicas < 2) throw new Error('--fleet-wide needs --replicas 2 or more');
  if (fleetWide && stateSync) throw new Error('--fleet-wide runs the replicas without and with --state-sync: leave --state-sync out');
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
    replicas,
    stateSync,
    fleetWide,
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
  /** llm_d_epp_flow_control_queue_size summed over flows (and over the replicas), by priority, and over everything. */
  eppByPriority: Record<string, number>;
  eppTotal: number;
  /** vllm:num_requests_waiting summed over the pods. */
  podsWaiting: number;
  /** vllm:num_requests_running + vllm:num_requests_waiting summed over the pods: the requests the pods hold. */
  podsInFlight: number;
  /** Their p90 over the samples taken in the measured window (warm-up and drain excluded). */
  podsInFlightP90: number;
  samples: number;
}

/** One sample of the pods' requests: ms on the run's clock, their running + waiting, how far apart the pods' pages answered (ms). */
export interface PodSample {
  atMs: number;
  inFlight: number;
  skewMs: number;
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

/** A simulated pod's requests in one /metrics page: running and waiting. */
export function podRequests(text: string): { running: number; waiting: number } {
  return { running: sumCounter(text, ['vllm:num_requests_running']) ?? 0, waiting: sumCounter(text, ['vllm:num_requests_waiting']) ?? 0 };
}

async function page(url: string): Promise<{ text?: string; at: number }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const text = res.ok ? await res.text() : undefined;
    return { text, at: performance.now() };
  } catch {
    return { at: performance.now() };
  }
}

/** The pods' in-flight peak over every sample and p90 over those taken in [fromMs, toMs). */
export function podsInFlightFigures(samples: readonly PodSample[], fromMs: number, toMs: number): { peak: number; p90: number } {
  const measured = Float64Array.from(samples.filter((s) => s.atMs >= fromMs && s.atMs < toMs).map((s) => s.inFlight)).sort();
  return { peak: samples.reduce((m, s) => Math.max(m, s.inFlight), 0), p90: measured.length ? percentile(measured, 90) : 0 };
}

/**
 * Sample every 200 ms, until stop(), llm-epp's queues (summed over its replicas' pages) and the
 * pods' own queues and requests; stop() returns the peaks (the p90 over the run's measured window)
 * and the pods' samples. Times on the clock of `t0`.
 */
function watchQueues(eppMetricsUrls: readonly string[], podMetricsUrls: readonly string[], t0: number): { stop(window: { fromMs: number; toMs: number }): Promise<{ peaks: QueuePeaks; pods: PodSample[] }> } {
  const peaks: QueuePeaks = { eppByPriority: {}, eppTotal: 0, podsWaiting: 0, podsInFlight: 0, podsInFlightP90: 0, samples: 0 };
  const pods: PodSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const [epps, podPages] = await Promise.all([Promise.all(eppMetricsUrls.map(page)), Promise.all(podMetricsUrls.map(page))]);
      if (epps.every((e) => e.text !== undefined)) {
        const byPriority: Record<string, number> = {};
        let total = 0;
        for (const e of epps) {
          const q = eppQueue(e.text!);
          for (const [p, n] of Object.entries(q.byPriority)) byPriority[p] = (byPriority[p] ?? 0) + n;
          total += q.total;
        }
        for (const [p, n] of Object.entries(byPriority)) peaks.eppByPriority[p] = Math.max(peaks.eppByPriority[p] ?? 0, n);
        peaks.eppTotal = Math.max(peaks.eppTotal, total);
        peaks.samples++;
      }
      let waiting = 0;
      let inFlight = 0;
      for (const t of podPages) {
        if (t.text === undefined) continue;
        const r = podRequests(t.text);
        waiting += r.waiting;
        inFlight += r.running + r.waiting;
      }
      peaks.podsWaiting = Math.max(peaks.podsWaiting, waiting);
      if (podPages.every((t) => t.text !== undefined)) {
        const at = podPages.map((t) => t.at);
        pods.push({ atMs: Math.round(started - t0), inFlight, skewMs: Math.round((Math.max(...at) - Math.min(...at)) * 10) / 10 });
      }
      await new Promise((r) => setTimeout(r, Math.max(0, SAMPLE_MS - (performance.now() - started))));
    }
  })();
  return {
    async stop(window) {
      running = false;
      await loop;
      const f = podsInFlightFigures(pods, window.fromMs, window.toMs);
      peaks.podsInFlight = f.peak;
      peaks.podsInFlightP90 = f.p90;
      return { peaks, pods };
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

interface VerdictInput {
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
// --fleet-wide: the pods' requests against the fleet's capacity, N replicas without and with sync

/** A --fleet-wide run's label (the report's strategy). */
export function fleetRunLabel(replicas: number, sync: boolean): string {
  return `${replicas} replicas, ${sync ? '--state-sync' : 'no sync'} (flow control on)`;
}

/**
 * How far past the capacity a sample may read before it counts as an overshoot: the pods' pages
 * are asked for together but answer at different moments (PodSample.skewMs), and a request that
 * ended on a pod read early and the one dispatched in its place to a pod read later are both
 * counted: at most one such double count per pod read before the last.
 */
export const samplingTolerance = (pods: number): number => Math.max(0, pods - 1);

/** One --fleet-wide run's figures. */
export interface FleetRow {
  run: string;
  sync: boolean;
  /** The pods' running + waiting: peak over every sample, p90 over the measured window. */
  peak: number;
  p90: number;
  /** maxConcurrency × pods. */
  capacity: number;
  samples: number;
  /** Samples above the capacity, and the longest stretch of them (ms, from its first sample to the next one at or under it). */
  overSamples: number;
  longestOverMs: number;
  /** The pods' pages' answer spread, median and max (ms). */
  skewP50Ms: number;
  skewMaxMs: number;
  quietTtftP90Ms?: number;
  noisy429: number;
  noisyRequests: number;
  goodputRps?: number;
}

/** The longest stretch of samples above `capacity`, ms from its first sample to the next sample at or under it (or the last sample). */
export function longestOver(samples: readonly PodSample[], capacity: number): number {
  let longest = 0;
  let from: number | undefined;
  for (const s of samples) {
    if (s.inFlight > capacity) from ??= s.atMs;
    else if (from !== undefined) {
      longest = Math.max(longest, s.atMs - from);
      from = undefined;
    }
  }
  if (from !== undefined && samples.length) longest = Math.max(longest, samples[samples.length - 1].atMs - from);
  return longest;
}

/** A --fleet-wide run's row, from the report and its samples. */
function fleetRow(r: Report, run: { label: string; sync: boolean; peaks: QueuePeaks; pods: readonly PodSample[] }, o: { quiet: string; noisy: string; capacity: number }): FleetRow {
  const stage = r.stages.find((s) => s.strategy === run.label);
  const tenant = (name: string) => stage?.tenants?.find((t) => t.tenant === name);
  const q = tenant(o.quiet);
  const n = tenant(o.noisy);
  const skews = Float64Array.from(run.pods.map((p) => p.skewMs)).sort();
  const row: FleetRow = {
    run: run.label,
    sync: run.sync,
    peak: run.peaks.podsInFlight,
    p90: run.peaks.podsInFlightP90,
    capacity: o.capacity,
    samples: run.pods.length,
    overSamples: run.pods.filter((p) => p.inFlight > o.capacity).length,
    longestOverMs: longestOver(run.pods, o.capacity),
    skewP50Ms: skews.length ? percentile(skews, 50) : 0,
    skewMaxMs: skews.length ? skews[skews.length - 1] : 0,
    noisy429: n?.rejected429 ?? 0,
    noisyRequests: n?.requests ?? 0,
  };
  if (q && q.completed > 0) row.quietTtftP90Ms = q.ttftMs.p90;
  if (stage?.goodput) row.goodputRps = stage.goodput.requestsPerS;
  return row;
}

/** The fleet-wide verdict: with sync the pods' peak stays within capacity + tolerance; without, it goes past it. */
export function fleetWideCriteria(rows: readonly FleetRow[], o: { replicas: number; maxConcurrency: number; pods: number }): Criterion[] {
  const capacity = o.maxConcurrency * o.pods;
  const tol = samplingTolerance(o.pods);
  const limit = `the fleet's capacity ${capacity} (maxConcurrency ${o.maxConcurrency} × ${o.pods} pods; tolerance +${tol} for the sampling moment)`;
  const over = (r: FleetRow) => `above ${capacity} in ${r.overSamples} of ${r.samples} samples, the longest stretch ≤ ${(r.longestOverMs / 1000).toFixed(1)} s`;
  const sync = rows.find((r) => r.sync);
  const noSync = rows.find((r) => !r.sync);
  return [
    !sync || sync.samples === 0
      ? { name: 'sync holds capacity', met: undefined, text: `${o.replicas} replicas with --state-sync: no samples of the pods` }
      : {
          name: 'sync holds capacity',
          met: sync.peak <= capacity + tol,
          text: `${o.replicas} replicas with --state-sync: the pods held at most ${sync.peak} requests (p90 ${sync.p90}) against ${limit}; ${over(sync)} (criterion: peak ≤ ${capacity + tol})`,
        },
    !noSync || noSync.samples === 0
      ? { name: 'no sync exceeds capacity', met: undefined, text: `${o.replicas} replicas without sync: no samples of the pods` }
      : {
          name: 'no sync exceeds capacity',
          met: noSync.peak > capacity + tol,
          text: `${o.replicas} replicas without sync: the pods held at most ${noSync.peak} requests (p90 ${noSync.p90}) against ${limit}; ${over(noSync)} (criterion: peak > ${capacity + tol}, each replica admitting up to the capacity on its own)`,
        },
  ];
}

/** The fleet-wide runs as a Markdown table. */
function fleetTable(rows: readonly FleetRow[], o: { quiet: string; noisy: string }): string[] {
  return [
    `| run | pods' running + waiting, peak | p90 | fleet capacity | samples above it | longest stretch | ${o.quiet} p90 TTFT | ${o.noisy} 429s | goodput req/s | pods' pages' spread p50 / max |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.run} | ${r.peak} | ${r.p90} | ${r.capacity} | ${r.overSamples} of ${r.samples} | ${(r.longestOverMs / 1000).toFixed(1)} s | ${r.quietTtftP90Ms === undefined ? '–' : formatMs(r.quietTtftP90Ms)} | ${r.noisy429} of ${r.noisyRequests} | ${r.goodputRps === undefined ? '–' : r.goodputRps.toFixed(2)} | ${r.skewP50Ms} / ${r.skewMaxMs} ms |`,
    ),
  ];
}

// ---------------------------------------------------------------------------
// The run

export interface FlowControlResult {
  report: Report;
  criteria: Criterion[];
  /** --fleet-wide: each run's figures. */
  fleet?: FleetRow[];
  files?: { json: string; md: string; html: string; csv: string };
  interrupted: boolean;
  seconds: number;
}

/** One gateway and the llm-epp replicas behind it. */
interface PathSpec {
  key: string;
  name: string;
  gate: 'on' | 'off';
  sync: boolean;
}

interface RunSpec {
  label: string;
  tenants: TenantSpec[];
  path: string;
  sync: boolean;
}

/** The gateways and runs of a plan: (a), (b), (c) or, with --fleet-wide, N replicas without then with sync. */
function layout(plan: Pick<FlowControlPlan, 'replicas' | 'stateSync' | 'fleetWide' | 'quiet' | 'noisy'>): { paths: PathSpec[]; runs: RunSpec[] } {
  const both = [plan.quiet, plan.noisy];
  if (plan.fleetWide) {
    const paths = [false, true].map((sync) => ({ key: sync ? 'sync' : 'no-sync', name: `llm-epp ${sync ? 'with --state-sync' : 'without sync'}`, gate: 'on' as const, sync }));
    return { paths, runs: paths.map((p) => ({ label: fleetRunLabel(plan.replicas, p.sync), tenants: both, path: p.key, sync: p.sync })) };
  }
  const paths = (['off', 'on'] as const).map((gate) => ({ key: gate, name: `llm-epp flow control ${gate}`, gate, sync: plan.stateSync }));
  return {
    paths,
    runs: [
      { label: RUN_LABELS.alone, tenants: [plan.quiet], path: 'on', sync: plan.stateSync },
      { label: RUN_LABELS.off, tenants: both, path: 'off', sync: plan.stateSync },
      { label: RUN_LABELS.on, tenants: both, path: 'on', sync: plan.stateSync },
    ],
  };
}

/** The report's title. */
function titleOf(plan: Pick<FlowControlPlan, 'replicas' | 'stateSync' | 'fleetWide' | 'pods'>): string {
  if (plan.fleetWide) return `Flow control across ${plan.replicas} active-active llm-epp replicas: the pods' requests against the fleet's capacity, without and with --state-sync, ${plan.pods} simulated pods`;
  const replicas = plan.replicas > 1 ? `, ${plan.replicas} llm-epp replicas${plan.stateSync ? ' with --state-sync' : ' without sync'}` : '';
  return `Flow control off vs on: a quiet tenant and a noisy one, ${plan.pods} simulated pods${replicas}`;
}

/** Start the fleet, the llm-epps (each its replicas) with their gateways, run (a), (b), (c) or the fleet-wide pair, judge and write the reports. */
export async function runFlowControl(plan: FlowControlPlan, log: (s: string) => void = (s) => process.stderr.write(s + '\n'), signal?: AbortSignal): Promise<FlowControlResult> {
  const t0 = performance.now();
  const configText = readFileSync(new URL(plan.configFile, `file://${ROOT}`), 'utf8');
  const sc = scenarioConfig(configText, plan.configFile);
  if (plan.fleetWide && sc.maxConcurrency === undefined) throw new Error(`--fleet-wide judges the pods against maxConcurrency × pods: ${plan.configFile} must use the concurrency-detector (concurrencyMode requests) as its saturation detector`);
  const priorities = objectivePriorities(readFileSync(new URL(plan.objectivesFile, `file://${ROOT}`), 'utf8'));
  for (const t of [plan.quiet, plan.noisy]) {
    if (t.objective !== undefined && !priorities.has(t.objective)) throw new Error(`tenant "${t.name}" names objective "${t.objective}", which ${plan.objectivesFile} does not define`);
  }
  const simArgs = fleetArgs(plan, sc);
  const { paths: pathSpecs, runs: specs } = layout(plan);
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
    replicas: plan.replicas,
    stateSync: plan.stateSync,
    fleetWide: plan.fleetWide,
  };
  const environment = describeEnvironment({ scenario, llmEppConfig: configText }, ['node', 'bench/flow-control.bench.ts', ...plan.argv]);
  const children: StartedChild[] = [];
  const monitor = new HealthMonitor();
  let redis: ChildProcess | undefined;
  const onExit = () => {
    killChildrenSync(children);
    redis?.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const stopped = () => signal?.aborted ?? false;
  const runs: RunResult[] = [];
  const queues: Record<string, QueuePeaks> = {};
  const podSamples: Record<string, PodSample[]> = {};
  let podNames: string[] = [];
  try {
    let redisUrl: string | undefined;
    if (pathSpecs.some((p) => p.sync)) {
      const port = await freePort('127.0.0.1');
      redis = await startRedisServer(port);
      redisUrl = `redis://127.0.0.1:${port}`;
      log(`redis-server on 127.0.0.1:${port} (--state-sync)`);
    }
    const fleet = await startSimFleet({ pods: plan.pods, simArgs }, [], children, monitor);
    podNames = fleet.podNames;
    const urls = fleet.endpoints.split(',');
    log(`fleet: ${plan.pods} simulated pods on ${urls[0]}…  (${simArgs.join(' ')})`);
    const common = ['--allow-experimental-plugins', `--objectives-file=${plan.objectivesFile}`, ...plan.eppArgs];
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const paths = new Map<string, { url: string; metrics: string[] }>();
    for (const p of pathSpecs) {
      if (stopped()) break;
      // A stream of its own per gateway's replicas: they share state with each other only.
      const sync = p.sync && redisUrl ? [`--state-sync=${redisUrl}?key=llm-epp:bench:flow-control:${stamp}:${p.key}`] : [];
      const args = eppBenchArgs(fleet.endpoints, [`--config-text=${p.gate === 'on' ? sc.onText : sc.offText}`, ...common, ...sync]);
      const addresses: string[] = [];
      const metrics: string[] = [];
      for (let r = 0; r < plan.replicas && !stopped(); r++) {
        const name = plan.replicas > 1 ? `${p.name} replica ${r + 1}` : p.name;
        const epp = await startLlmEpp(name, args, children, monitor, plan.pods);
        addresses.push(`127.0.0.1:${epp.info.port}`);
        metrics.push(`http://127.0.0.1:${epp.info.metricsPort}/metrics`);
        log(`${name}: ext_proc on 127.0.0.1:${epp.info.port}, metrics on :${epp.info.metricsPort}`);
      }
      if (stopped()) break;
      // The gateway hands each request's ext_proc stream to the next replica in turn.
      const gw = await startGatewayChild(`the gateway to ${p.name} (bench/gateway/gateway.ts)`, ['--strategy=epp', `--epp=${addresses.join(',')}`], children, monitor, `gateway ${p.key}`);
      paths.set(p.key, { url: `http://127.0.0.1:${gw.info.port}`, metrics });
      log(`the gateway to ${p.name} on :${gw.info.port}`);
    }
    // One request per replica's turn through every gateway: a broken path fails here, with its reason.
    if (!stopped()) {
      await Promise.all(
        [...paths.values()].map(async (p) => {
          for (let i = 0; i < plan.replicas; i++) await preflight(p.url, { model: 'sim-model' });
        }),
      );
    }
    if (plan.fleetWide) log(`--fleet-wide: the quiet-alone and flow-control-off runs are skipped; both runs with flow control on, capacity ${sc.maxConcurrency! * plan.pods} (maxConcurrency ${sc.maxConcurrency} × ${plan.pods} pods)`);
    const podUrls = urls.map((u) => `http://${u}`);
    const stage = { name: 'tenants', durationMs: plan.durationMs, warmupMs: plan.warmupMs };
    for (const r of specs) {
      if (stopped()) break;
      const failed = await resetPods(podUrls);
      if (failed.length) throw new Error(`could not reset the simulated pods: ${failed.map((f) => `${f.pod} ${f.why}`).join(', ')}`);
      log(`\n▶ ${r.label}: ${r.tenants.map((t) => t.name).join(' + ')} × ${plan.durationMs / 1000} s (warm-up ${plan.warmupMs / 1000} s)`);
      const path = paths.get(r.path)!;
      const runT0 = performance.now();
      const watch = watchQueues(path.metrics, podUrls.map((u) => `${u}/metrics`), runT0);
      let run: RunResult | undefined;
      try {
        run = await runStages({
          url: path.url,
          strategy: r.label,
          workload: tenants({ tenants: r.tenants, seed: plan.seed, promptTokens: plan.promptTokens, outputTokens: plan.outputTokens }),
          stages: [stage],
          seed: plan.seed,
          timeoutMs: 300_000,
          progress: plan.progress,
          health: monitor,
          signal,
          t0: runT0,
        });
        runs.push(run);
      } finally {
        const st = run?.stages[0];
        const { peaks, pods } = await watch.stop(st ? { fromMs: st.measuredStartMs, toMs: st.arrivalsEndMs } : { fromMs: plan.warmupMs, toMs: plan.warmupMs + plan.durationMs });
        if (r.label !== RUN_LABELS.alone) queues[r.path] = peaks;
        podSamples[r.path] = pods;
      }
    }
  } finally {
    monitor.close();
    await stopChildren(children);
    redis?.kill('SIGKILL');
    process.off('exit', onExit);
  }
  const capacity = sc.maxConcurrency === undefined ? undefined : sc.maxConcurrency * plan.pods;
  const report = buildReport(runs, {
    slo: plan.slo,
    pods: podNames,
    title: titleOf(plan),
    meta: {
      queuePeaks: queues,
      bandLimits: Object.fromEntries(sc.bandLimits),
      replicas: plan.replicas,
      stateSync: plan.stateSync,
      ...(capacity === undefined ? {} : { capacity }),
      ...(plan.fleetWide ? { podSamples } : {}),
    },
    thresholds: plan.thresholds,
    environment,
    partial: stopped(),
  });
  const fleet = plan.fleetWide
    ? specs.filter((r) => queues[r.path]).map((r) => fleetRow(report, { label: r.label, sync: r.sync, peaks: queues[r.path], pods: podSamples[r.path] }, { quiet: plan.quiet.name, noisy: plan.noisy.name, capacity: capacity! }))
    : undefined;
  if (fleet) report.meta = { ...report.meta, fleet };
  const criteria = fleet
    ? fleetWideCriteria(fleet, { replicas: plan.replicas, maxConcurrency: sc.maxConcurrency!, pods: plan.pods })
    : flowControlCriteria(report, { quiet: plan.quiet.name, noisy: plan.noisy.name, queues, config: sc });
  report.verdict = criteria.map(criterionLine);
  const unreliable = report.stages.filter((s) => !s.health.reliable).map((s) => s.strategy);
  if (unreliable.length) report.verdict.push(`UNRELIABLE: the machine could not keep up during ${unreliable.join(', ')} (see the report)`);
  const result: FlowControlResult = { report, criteria, interrupted: stopped(), seconds: (performance.now() - t0) / 1000 };
  if (fleet) result.fleet = fleet;
  if (report.stages.length) result.files = writeReports(report, plan.out, runs);
  return result;
}

/** What the --fleet-wide table means. */
const FLEET_NOTE =
  "--fleet-wide: the quiet-alone and flow-control-off runs are skipped; both runs have flow control on. The pods' running + waiting is vllm:num_requests_running + vllm:num_requests_waiting summed over the simulated pods' /metrics, sampled every 200 ms: the peak over the whole run, the p90 over the measured window; the stretch above capacity runs from its first sample to the next one at or under it. The pods' pages are asked for together but answer apart (the spread column): a request ended on a pod read early and the one dispatched in its place to a pod read later are both counted, so a sample may read up to pods − 1 above the truth; that is the tolerance.";

/** The tenants' names, as the report's scenario lists them (quiet first). */
function fleetNames(rep: Report): { quiet: string; noisy: string } {
  const t = (rep.config as { scenario?: { tenants?: Array<{ name: string }> } } | undefined)?.scenario?.tenants ?? [];
  return { quiet: t[0]?.name ?? 'quiet', noisy: t[1]?.name ?? 'noisy' };
}

/** The section --append-results adds to bench/RESULTS.md. */
export function resultsSection(r: FlowControlResult, command: string): string {
  const rep = r.report;
  const m = rep.machine;
  const when = rep.generatedAt.slice(0, 16).replace('T', ' ');
  const machine = m ? `${m.cpus} × ${m.model}, ${Math.round(m.memoryGiB)} GiB, load average ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} at the start; Node ${rep.versions?.node}` : 'unknown';
  // The tables (per stage, per tenant) and the errors; the verdict, machine and command are said once, here.
  const md = toMarkdown({ ...rep, verdict: undefined, command: undefined, machine: undefined, versions: undefined }).replace(/^## .*\n\n/, '');
  const fleet = r.fleet ? ['', ...fleetTable(r.fleet, fleetNames(rep)), '', FLEET_NOTE] : [];
  const who = ((rep.meta?.replicas as number | undefined) ?? 1) > 1 ? "fleet, every llm-epp replica, the gateways, redis-server (with --state-sync) and the load generator" : 'fleet, both llm-epps, both gateways and the load generator';
  return [
    `## ${rep.title} — ${when} UTC (\`npm run bench:flow-control\`)`,
    '',
    ...r.criteria.map((c) => `- ${criterionLine(c)}`),
    ...fleet,
    '',
    md.trimEnd(),
    '',
    `Command: \`${command}\` (${r.seconds.toFixed(0)} s). Machine: ${machine}; ${who} on the same machine. Report: \`${r.files?.json ?? '–'}\`.`,
    '',
  ].join('\n');
}

async function flowControlMain(argv: string[]): Promise<number> {
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
  if (r.fleet) process.stdout.write('\n' + fleetTable(r.fleet, { quiet: plan.quiet.name, noisy: plan.noisy.name }).join('\n') + '\n\n' + FLEET_NOTE + '\n');
  const command = `npm run bench:flow-control${plan.argv.length ? ' -- ' + plan.argv.map(shellQuote).join(' ') : ''}`;
  if (plan.appendResults && r.files && !r.interrupted) appendFileSync(`${ROOT}bench/RESULTS.md`, '\n' + resultsSection(r, command));
  if (r.files) process.stderr.write(`\nwrote ${r.files.json}, ${r.files.md}, ${r.files.html}, ${r.files.csv} in ${r.seconds.toFixed(0)} s\n`);
  return r.interrupted ? EXIT_INTERRUPTED : EXIT_OK;
}

if (import.meta.main) process.exit(await flowControlMain(process.argv.slice(2)));
