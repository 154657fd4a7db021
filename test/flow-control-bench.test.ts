// bench:flow-control (bench/flow-control.bench.ts): its reading of the config and the objectives,
// the fleet it asks for, the verdict per criterion of issue 15, and one very short real run (the
// simulated fleet, both llm-epps and gateways, the load generator) checked for the report's shape,
// never its timings.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  RUN_LABELS,
  criterionLine,
  eppQueue,
  fleetArgs,
  fleetRunLabel,
  fleetWideCriteria,
  flowControlCriteria,
  flowControlPlanFromArgs,
  longestOver,
  objectivePriorities,
  podRequests,
  podsInFlightFigures,
  resultsSection,
  runFlowControl,
  samplingTolerance,
  scenarioConfig,
  type FleetRow,
  type FlowControlPlan,
  type QueuePeaks,
} from '../bench/flow-control.bench.ts';
import { buildReport } from '../bench/load/report.ts';
import type { RequestRecord, RunResult } from '../bench/load/runner.ts';

const CONFIG = readFileSync(new URL('../bench/config/flow-control.yaml', import.meta.url), 'utf8');

describe('bench:flow-control: its inputs', () => {
  it('runs the config as given with flow control on, and without the gate off; reads the queue limits and the capacity', () => {
    const sc = scenarioConfig(CONFIG, 'flow-control.yaml');
    expect(sc.onText).toBe(CONFIG);
    expect(sc.onText).toMatch(/featureGates: \[flowControl\]/);
    expect(sc.offText).not.toContain('featureGates');
    expect(sc.offText).toContain('flowControl:');
    expect(sc.bandLimits).toEqual(new Map([[100, 5000], [0, 16]]));
    expect(sc.defaultBandLimit).toBe(5000);
    expect(sc.totalLimit).toBe(0);
    expect(sc.maxConcurrency).toBe(8);
    const other = scenarioConfig('featureGates: [flowControl, haPopulateNonLeaderDatastore]\nflowControl: {maxRequests: 1k, saturationDetector: {pluginRef: sat}}\nplugins: [{type: utilization-detector, name: sat}]\n', 'x');
    expect(other.offText).toContain('haPopulateNonLeaderDatastore');
    expect(other.offText).not.toContain('flowControl\n');
    expect(other.totalLimit).toBe(1000);
    expect(other.maxConcurrency).toBeUndefined();
    expect(() => scenarioConfig('plugins: []\n', 'plain.yaml')).toThrow(/plain.yaml: the flow-control-on config must list featureGates: \[flowControl\]/);
  });

  it('reads objectives from documents or a List, and asks the fleet for the detector\'s batch unless told otherwise', () => {
    const p = objectivePriorities(readFileSync(new URL('../deploy/objectives/flow-control.yaml', import.meta.url), 'utf8'));
    expect(p).toEqual(new Map([['critical', 100], ['standard', 0], ['batch', -10]]));
    expect(objectivePriorities('kind: List\nitems:\n- {kind: InferenceObjective, metadata: {name: a}, spec: {priority: -5}}\n- {kind: InferenceObjective, metadata: {name: b}}\n')).toEqual(new Map([['a', -5], ['b', 0]]));
    expect(fleetArgs({ simArgs: [] }, { maxConcurrency: 8 })).toEqual(['--max-num-seqs=8', '--time-scale=5', '--stream-interval=4']);
    expect(fleetArgs({ simArgs: ['--time-scale=2', '--max-num-seqs', '4'] }, { maxConcurrency: 8 })).toEqual(['--time-scale=2', '--max-num-seqs', '4', '--stream-interval=4']);
    expect(fleetArgs({ simArgs: [] }, {})).toEqual(['--time-scale=5', '--stream-interval=4']);
  });

  it('plans the noisy burst over the measured window by default, and rejects one tenant given twice', () => {
    const plan = flowControlPlanFromArgs(['--warmup', '2s', '--duration', '10s', '--pods', '3']);
    if (plan === 'help') throw new Error('help');
    expect(plan.quiet).toEqual({ name: 'quiet', rate: 3, objective: 'critical' });
    expect(plan.noisy).toEqual({ name: 'noisy', rate: 3, objective: 'standard', burst: { rate: 32, fromS: 2, toS: 12 } });
    expect(plan).toMatchObject({ pods: 3, warmupMs: 2000, durationMs: 10_000, slo: { ttftMs: 2000, tpotMs: 100 }, configFile: 'bench/config/flow-control.yaml' });
    expect(() => flowControlPlanFromArgs(['--noisy', 'quiet,rate=9'])).toThrow(/same tenant "quiet"/);
    expect(flowControlPlanFromArgs(['--help'])).toBe('help');
    expect(plan).toMatchObject({ replicas: 1, stateSync: false, fleetWide: false });
  });

  it('plans replicas with and without --state-sync, and the fleet-wide pair; refuses sync or fleet-wide on one replica', () => {
    expect(flowControlPlanFromArgs(['--replicas', '2', '--state-sync'])).toMatchObject({ replicas: 2, stateSync: true, fleetWide: false });
    expect(flowControlPlanFromArgs(['--replicas', '3', '--fleet-wide'])).toMatchObject({ replicas: 3, stateSync: false, fleetWide: true });
    expect(() => flowControlPlanFromArgs(['--state-sync'])).toThrow(/--state-sync needs --replicas 2 or more/);
    expect(() => flowControlPlanFromArgs(['--fleet-wide', '--replicas', '1'])).toThrow(/--fleet-wide needs --replicas 2 or more/);
    expect(() => flowControlPlanFromArgs(['--fleet-wide', '--replicas', '2', '--state-sync'])).toThrow(/leave --state-sync out/);
    expect(() => flowControlPlanFromArgs(['--replicas', '0'])).toThrow(/--replicas must be an integer >= 1/);
  });

  it("reads llm-epp's flow-control queue by priority from its /metrics", () => {
    const page = [
      '# TYPE llm_d_epp_flow_control_queue_size gauge',
      'llm_d_epp_flow_control_queue_size{fairness_id="noisy",priority="0",inference_pool="p",model_name="m",target_model_name="m"} 12',
      'llm_d_epp_flow_control_queue_size{fairness_id="other",priority="0",inference_pool="p",model_name="m",target_model_name="m"} 3',
      'llm_d_epp_flow_control_queue_size{fairness_id="quiet",priority="100",inference_pool="p",model_name="m",target_model_name="m"} 1',
      'inference_extension_flow_control_queue_size{fairness_id="noisy",priority="0"} 12',
    ].join('\n');
    expect(eppQueue(page)).toEqual({ byPriority: { '0': 15, '100': 1 }, total: 16 });
    expect(eppQueue('# nothing\n')).toEqual({ byPriority: {}, total: 0 });
  });

  it("reads a pod's running and waiting requests, and their peak, p90 and longest stretch above a capacity", () => {
    expect(podRequests('# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 8\nvllm:num_requests_waiting{model_name="m"} 3\n')).toEqual({ running: 8, waiting: 3 });
    expect(podRequests('# nothing\n')).toEqual({ running: 0, waiting: 0 });
    const samples = [10, 12, 17, 18, 12, 16, 20, 21, 22, 9].map((inFlight, i) => ({ atMs: i * 200, inFlight, skewMs: 1 }));
    // Peak over every sample; p90 over [400, 1800): 17 18 12 16 20 21 22 → nearest rank 7 of 7.
    expect(podsInFlightFigures(samples, 400, 1800)).toEqual({ peak: 22, p90: 22 });
    expect(podsInFlightFigures(samples, 0, 1000)).toEqual({ peak: 22, p90: 18 });
    expect(podsInFlightFigures([], 0, 1000)).toEqual({ peak: 0, p90: 0 });
    // Above 16: 400–800 (the next sample at or under it at 800), then 1200–1800.
    expect(longestOver(samples, 16)).toBe(600);
    expect(longestOver(samples.slice(0, 9), 16)).toBe(400);
    expect(longestOver(samples, 30)).toBe(0);
  });
});

/** A run of the two tenants: `n` requests each, the quiet one's TTFT `quietTtft`, noisy's `noisy429` of them shed. */
function run(strategy: string, o: { quietTtft: number; noisy?: { n: number; shed: number; ttft: number } }): RunResult {
  const records: RequestRecord[] = [];
  const add = (tenant: string, i: number, ttft: number, shed: boolean) =>
    records.push({
      id: `${tenant}/${i}`,
      stage: 0,
      warmup: false,
      tenant,
      intendedMs: i * 10,
      startMs: i * 10,
      scheduleDelayMs: 0,
      ok: !shed,
      status: shed ? 429 : 200,
      ...(shed ? { error: 'HTTP 429', droppedReason: 'rejected-saturated' } : { ttftMs: ttft }),
      itlMs: [],
      e2eMs: shed ? 2 : ttft + 500,
      outputTokens: shed ? 0 : 24,
    });
  for (let i = 0; i < 20; i++) add('quiet', i, o.quietTtft * (1 + i / 100), false);
  if (o.noisy) for (let i = 0; i < o.noisy.n; i++) add('noisy', i, o.noisy.ttft, i < o.noisy.shed);
  return { strategy, url: 'http://x', workload: 'tenants', startedAt: '', stages: [{ index: 0, name: 'tenants', spec: {}, arrival: 'trace', startMs: 0, measuredStartMs: 0, arrivalsEndMs: 1000, endMs: 4000, records }] };
}

const peaks = (byPriority: Record<string, number>, podsWaiting = 0): QueuePeaks => ({ eppByPriority: byPriority, eppTotal: Object.values(byPriority).reduce((a, b) => a + b, 0), podsWaiting, podsInFlight: 0, podsInFlightP90: 0, samples: 20 });
const config = { bandLimits: new Map([[100, 5000], [0, 16]]), defaultBandLimit: 5000, totalLimit: 0 };

describe('bench:flow-control: the verdict', () => {
  it('judges each criterion of issue 15 from the runs and the queue peaks', () => {
    const report = buildReport([
      run(RUN_LABELS.alone, { quietTtft: 100 }),
      run(RUN_LABELS.off, { quietTtft: 5000, noisy: { n: 100, shed: 0, ttft: 6000 } }),
      run(RUN_LABELS.on, { quietTtft: 120, noisy: { n: 100, shed: 60, ttft: 900 } }),
    ]);
    const c = flowControlCriteria(report, { quiet: 'quiet', noisy: 'noisy', queues: { off: peaks({}, 300), on: peaks({ '0': 16, '100': 1 }, 0) }, config });
    expect(c.map((x) => [x.name, x.met])).toEqual([
      ['quiet p90 TTFT on', true],
      ['quiet p90 TTFT off', true],
      ['noisy shed, queue bounded', true],
      ['goodput', true],
    ]);
    expect(criterionLine(c[0])).toMatch(/^PASS: quiet p90 TTFT with flow control on 1\d\d ms vs 1\d\d ms alone \(1\.\d\d×; criterion ≤ 1\.5×\)$/);
    expect(c[2].text).toContain('noisy: 60 of 100 answered 429 with flow control on (rejected-saturated × 60), 0 without');
    expect(c[2].text).toContain("llm-epp's queue peaked at 1 at priority 100 (limit 5000), 16 at priority 0 (limit 16)");
    expect(c[2].text).toContain("the pods' own queues peaked at 300 waiting without flow control, 0 with");
  });

  it('fails what the figures miss: a slow quiet tenant, a queue past its band, nothing shed, lower goodput, no data', () => {
    const report = buildReport([
      run(RUN_LABELS.alone, { quietTtft: 100 }),
      run(RUN_LABELS.off, { quietTtft: 120, noisy: { n: 100, shed: 0, ttft: 300 } }),
      run(RUN_LABELS.on, { quietTtft: 400, noisy: { n: 100, shed: 0, ttft: 3000 } }),
    ]);
    const c = flowControlCriteria(report, { quiet: 'quiet', noisy: 'noisy', queues: { on: peaks({ '0': 17 }) }, config });
    expect(c.map((x) => x.met)).toEqual([false, false, false, false]);
    expect(criterionLine(c[0])).toMatch(/^FAIL: /);
    const bounded = flowControlCriteria(report, { quiet: 'quiet', noisy: 'noisy', queues: { on: peaks({ '0': 17 }) }, config: { ...config, bandLimits: new Map([[0, 20]]) } });
    expect(bounded[2].met).toBe(false); // still nothing shed
    // Shed, but the queue went past its band's limit: the bound fails on its own.
    const shedReport = buildReport([
      run(RUN_LABELS.alone, { quietTtft: 100 }),
      run(RUN_LABELS.off, { quietTtft: 120, noisy: { n: 100, shed: 0, ttft: 300 } }),
      run(RUN_LABELS.on, { quietTtft: 110, noisy: { n: 100, shed: 10, ttft: 300 } }),
    ]);
    const unbounded = flowControlCriteria(shedReport, { quiet: 'quiet', noisy: 'noisy', queues: { on: peaks({ '0': 17 }) }, config: { ...config, bandLimits: new Map([[0, 16]]) } });
    expect(unbounded[2].met).toBe(false);
    const within = flowControlCriteria(shedReport, { quiet: 'quiet', noisy: 'noisy', queues: { on: peaks({ '0': 16 }) }, config: { ...config, bandLimits: new Map([[0, 16]]) } });
    expect(within[2].met).toBe(true);
    const missing = flowControlCriteria(buildReport([run(RUN_LABELS.alone, { quietTtft: 100 })]), { quiet: 'quiet', noisy: 'noisy', queues: {}, config });
    expect(missing.map((x) => x.met)).toEqual([undefined, undefined, undefined, undefined]);
    expect(criterionLine(missing[3])).toBe('NO DATA: total goodput: a run is missing');
  });
});

const row = (sync: boolean, peak: number, o: Partial<FleetRow> = {}): FleetRow => ({
  run: fleetRunLabel(2, sync),
  sync,
  peak,
  p90: peak - 1,
  capacity: 16,
  samples: 50,
  overSamples: 0,
  longestOverMs: 0,
  skewP50Ms: 1,
  skewMaxMs: 5,
  noisy429: 10,
  noisyRequests: 100,
  ...o,
});

describe('bench:flow-control --fleet-wide: the verdict', () => {
  it('passes when the pods stay within capacity + tolerance with sync and go past it without', () => {
    expect(samplingTolerance(2)).toBe(1);
    expect(samplingTolerance(1)).toBe(0);
    const c = fleetWideCriteria([row(false, 26, { overSamples: 30, longestOverMs: 6800 }), row(true, 17, { overSamples: 2, longestOverMs: 200 })], { replicas: 2, maxConcurrency: 8, pods: 2 });
    expect(c.map((x) => [x.name, x.met])).toEqual([
      ['sync holds capacity', true],
      ['no sync exceeds capacity', true],
    ]);
    expect(criterionLine(c[0])).toBe(
      "PASS: 2 replicas with --state-sync: the pods held at most 17 requests (p90 16) against the fleet's capacity 16 (maxConcurrency 8 × 2 pods; tolerance +1 for the sampling moment); above 16 in 2 of 50 samples, the longest stretch ≤ 0.2 s (criterion: peak ≤ 17)",
    );
  });

  it('fails an overshoot with sync, no overshoot without, and says when a run is missing', () => {
    const c = fleetWideCriteria([row(false, 17), row(true, 18)], { replicas: 2, maxConcurrency: 8, pods: 2 });
    expect(c.map((x) => x.met)).toEqual([false, false]);
    const missing = fleetWideCriteria([row(false, 30)], { replicas: 2, maxConcurrency: 8, pods: 2 });
    expect(missing.map((x) => x.met)).toEqual([undefined, true]);
    expect(criterionLine(missing[0])).toBe('NO DATA: 2 replicas with --state-sync: no samples of the pods');
  });
});

/** A very short run's plan (2 s measured, a fleet at time scale 1), reports in a fresh temporary folder, with `extra` flags. */
function shortPlan(extra: string[]): FlowControlPlan {
  const dir = mkdtempSync(join(tmpdir(), 'llm-epp-flow-control-'));
  const plan = flowControlPlanFromArgs([
    '--warmup', '500ms',
    '--duration', '2s',
    '--quiet', 'quiet,rate=3,objective=critical',
    '--noisy', 'noisy,rate=2,objective=standard,burst=40@500ms-2500ms',
    '--output-tokens', '4',
    '--prompt-tokens', '64',
    '--sim-args=--time-scale=1',
    '--progress', 'false',
    '--out', join(dir, 'fc'),
    ...extra,
  ]);
  if (plan === 'help') throw new Error('help');
  return plan;
}

describe('bench:flow-control: a very short real run', () => {
  it('starts the fleet, llm-epp off and on, runs the three runs and writes the report with its tenants and verdict', async () => {
    const plan = shortPlan([]);
    const r = await runFlowControl(plan, () => {});
    expect(r.interrupted).toBe(false);
    const rep = r.report;
    expect(rep.strategies).toEqual([RUN_LABELS.alone, RUN_LABELS.off, RUN_LABELS.on]);
    expect(rep.stages.map((s) => s.tenants?.map((t) => t.tenant).sort())).toEqual([['quiet'], ['noisy', 'quiet'], ['noisy', 'quiet']]);
    expect(r.criteria.map((c) => c.name)).toEqual(['quiet p90 TTFT on', 'quiet p90 TTFT off', 'noisy shed, queue bounded', 'goodput']);
    expect(rep.verdict!.slice(0, 4)).toEqual(r.criteria.map(criterionLine));
    const meta = rep.meta as { queuePeaks: { on?: QueuePeaks; off?: QueuePeaks } };
    expect(meta.queuePeaks.on!.samples).toBeGreaterThan(0);
    expect(meta.queuePeaks.off!.samples).toBeGreaterThan(0);
    const config = rep.config as { scenario: { tenants: Array<{ name: string; priority: number }> } };
    expect(config.scenario.tenants.map((t) => [t.name, t.priority])).toEqual([['quiet', 100], ['noisy', 0]]);
    for (const f of Object.values(r.files!)) expect(existsSync(f)).toBe(true);
    const html = readFileSync(r.files!.html, 'utf8');
    for (const t of ['TTFT by tenant — tenants', 'Outcome by tenant — tenants', `TTFT over time by tenant — ${RUN_LABELS.on} · tenants`]) expect(html).toContain(`aria-label="${t}"`);
    const section = resultsSection(r, 'npm run bench:flow-control -- --duration 2s');
    expect(section).toMatch(/^## Flow control off vs on: a quiet tenant and a noisy one, 2 simulated pods — \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    expect(section).toContain('| tenants | flow control on | noisy |');
    expect(section).toContain('Command: `npm run bench:flow-control -- --duration 2s`');
  }, 120_000);

  it('runs the three runs through 2 replicas behind each gateway sharing state through a redis-server', async () => {
    const logs: string[] = [];
    const plan = shortPlan(['--replicas', '2', '--state-sync']);
    const r = await runFlowControl(plan, (l) => logs.push(l));
    expect(r.interrupted).toBe(false);
    // Two replicas per gateway (off and on), each told the runner's redis-server.
    expect(logs.filter((l) => /^llm-epp flow control (off|on) replica [12]: ext_proc/.test(l))).toHaveLength(4);
    expect(logs.some((l) => /^redis-server on 127\.0\.0\.1:\d+ \(--state-sync\)$/.test(l))).toBe(true);
    const rep = r.report;
    expect(rep.title).toBe('Flow control off vs on: a quiet tenant and a noisy one, 2 simulated pods, 2 llm-epp replicas with --state-sync');
    expect(rep.strategies).toEqual([RUN_LABELS.alone, RUN_LABELS.off, RUN_LABELS.on]);
    expect(rep.stages.map((s) => s.tenants?.map((t) => t.tenant).sort())).toEqual([['quiet'], ['noisy', 'quiet'], ['noisy', 'quiet']]);
    expect(r.criteria.map((c) => c.name)).toEqual(['quiet p90 TTFT on', 'quiet p90 TTFT off', 'noisy shed, queue bounded', 'goodput']);
    expect(r.fleet).toBeUndefined();
    const meta = rep.meta as { replicas: number; stateSync: boolean; capacity: number; queuePeaks: { on?: QueuePeaks; off?: QueuePeaks } };
    expect(meta).toMatchObject({ replicas: 2, stateSync: true, capacity: 16 });
    expect(meta.queuePeaks.on!.samples).toBeGreaterThan(0);
    expect(meta.queuePeaks.on!.podsInFlight).toBeGreaterThanOrEqual(meta.queuePeaks.on!.podsInFlightP90);
    const config = rep.config as { scenario: { replicas: number; stateSync: boolean } };
    expect(config.scenario).toMatchObject({ replicas: 2, stateSync: true });
    for (const f of Object.values(r.files!)) expect(existsSync(f)).toBe(true);
    const section = resultsSection(r, 'npm run bench:flow-control -- --replicas 2 --state-sync');
    expect(section).toContain('every llm-epp replica, the gateways, redis-server (with --state-sync)');
  }, 120_000);

  it('--fleet-wide: 2 replicas without, then with --state-sync, flow control on; a row and a verdict each', async () => {
    const plan = shortPlan(['--replicas', '2', '--fleet-wide']);
    const r = await runFlowControl(plan, () => {});
    expect(r.interrupted).toBe(false);
    expect(r.report.strategies).toEqual([fleetRunLabel(2, false), fleetRunLabel(2, true)]);
    expect(r.criteria.map((c) => c.name)).toEqual(['sync holds capacity', 'no sync exceeds capacity']);
    expect(r.report.verdict!.slice(0, 2)).toEqual(r.criteria.map(criterionLine));
    expect(r.fleet!.map((f) => [f.run, f.sync, f.capacity])).toEqual([
      [fleetRunLabel(2, false), false, 16],
      [fleetRunLabel(2, true), true, 16],
    ]);
    for (const f of r.fleet!) {
      expect(f.samples).toBeGreaterThan(0);
      expect(f.peak).toBeGreaterThanOrEqual(f.p90);
      expect(f.overSamples).toBeLessThanOrEqual(f.samples);
      expect(f.noisyRequests).toBeGreaterThan(0);
    }
    const meta = r.report.meta as { podSamples: Record<string, unknown[]>; fleet: FleetRow[] };
    expect(Object.keys(meta.podSamples).sort()).toEqual(['no-sync', 'sync']);
    expect(meta.fleet).toEqual(r.fleet);
    const section = resultsSection(r, 'npm run bench:flow-control -- --replicas 2 --fleet-wide');
    expect(section).toMatch(/^## Flow control across 2 active-active llm-epp replicas: the pods' requests against the fleet's capacity, without and with --state-sync, 2 simulated pods — /);
    expect(section).toContain(`| ${fleetRunLabel(2, true)} | ${r.fleet![1].peak} | ${r.fleet![1].p90} | 16 |`);
    expect(section).toContain('the quiet-alone and flow-control-off runs are skipped');
  }, 120_000);
});
