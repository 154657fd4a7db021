// `npm run bench:active-active`: active-active llm-epp replicas on the
// simulated fleet, with the demo's shared-prefix workload through the
// benchmark gateway (which spreads its streams over the replicas): one replica
// alone, then N replicas without sync (each learns a share of the prefixes: the
// degradation llm-d's operations guide warns about), then N replicas with
// --state-sync through a real redis-server this script starts. Approximate
// prefix routing (the GAIE default config) in every run.
//
// --kill-restart runs another scenario instead: two replicas (the first of
// --replicas), one of them SIGKILLed part-way through the measured time and
// started again at once with the same flags and ports, under the same load;
// once with --state-sync (it should serve warm from the shared history), once
// without (it comes back cold). It reports the restarted replica's start-up
// (process start to ready, the warm-start metric, the prefix blocks it held at
// ready), the hit rate, TTFT and failures before the kill, while it was down,
// right after it was back and later, and the restarted replica's own decisions
// right after the restart next to the other replica's.
//
//   npm run bench:active-active                          replicas 2,3, 20 s stages
//   npm run bench:active-active -- --replicas 2 --duration 30s --append-results
//   npm run bench:active-active -- --kill-restart --duration 40s
import { once } from 'node:events';
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { demoPlanFromArgs, runDemo, startGatewayChild, startSimFleet, type DemoPlan } from './demo.ts';
import { figuresOf, type Figures } from './precise-routing.bench.ts';
import { ROOT, eppBenchArgs, freePort, json, startRedisServer, waitReady, type EppPorts } from './lib/processes.ts';
import { killChildrenSync, startChild, stopChildren, type StartedChild } from './load/children.ts';
import { parseDuration } from './load/cli.ts';
import { describeEnvironment } from './load/environment.ts';
import { preflight } from './load/preflight.ts';
import { onInterrupt } from './load/interrupt.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { EXIT_INTERRUPTED, EXIT_OK } from './load/outcome.ts';
import { HealthMonitor, promLagSource } from './load/probes.ts';
import { buildReport, errorKind, stageReport, writeReports } from './load/report.ts';
import { runStages, type RequestRecord, type RunResult, type StageResult } from './load/runner.ts';
import { makeWorkload } from './load/workloads.ts';

const HELP = `Usage: npm run bench:active-active -- [options]

  --replicas LIST     replica counts to compare with one replica (default 2,3)
  --rate R            offered load, req/s (default 28, the demo's)
  --duration D        measured time per run (default 20s)
  --warmup D          warm-up per run (default 10s)
  --pods N            simulated pods (default 8)
  --append-results    append the table and the command to bench/RESULTS.md
  --kill-restart      instead of the comparison above: the first of --replicas replicas (2 by
                      default), the last one SIGKILLed during the measured time and restarted at
                      once with the same flags and ports; with --state-sync, then without
  --kill-after D      --kill-restart: when, from the start of the measured time (default a third
                      of --duration)
  --back-window D     --kill-restart: the "right after the restart" window, from its readiness
                      (default 5s)

Needs redis-server on the PATH (Debian package redis-server).
`;

interface Row {
  label: string;
  replicas: number;
  sync: boolean;
  f: Figures;
}


const pct = (x: number | undefined) => (x === undefined ? '–' : `${(x * 100).toFixed(1)} %`);

/** The demo's command line for one run: approximate routing, `replicas` llm-epp replicas, --state-sync when `stateSync` is given. */
function demoArgs(v: { pods: string; rate: string; duration: string; warmup: string }, replicas: number | string, out: string, title: string, stateSync: string | undefined): string[] {
  return [
    '--strategies=approximate',
    `--pods=${v.pods}`,
    `--rates=${v.rate}`,
    `--duration=${v.duration}`,
    `--warmup=${v.warmup}`,
    `--epp-replicas=${replicas}`,
    '--progress=false',
    `--out=${ROOT}bench/results/active-active-${out}`,
    `--title=${title}`,
    ...(stateSync ? [`--epp-args=--state-sync=${stateSync}`] : []),
  ];
}

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      replicas: { type: 'string', default: '2,3' },
      rate: { type: 'string', default: '28' },
      duration: { type: 'string', default: '20s' },
      warmup: { type: 'string', default: '10s' },
      pods: { type: 'string', default: '8' },
      'append-results': { type: 'boolean', default: false },
      'kill-restart': { type: 'boolean', default: false },
      'kill-after': { type: 'string' },
      'back-window': { type: 'string', default: '5s' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const counts = v.replicas.split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 2 || n > 8)) throw new Error(`--replicas: replica counts 2-8, got "${v.replicas}"`);
  if (v['kill-restart']) return killRestartMain(argv, { ...v, replicas: counts[0] });
  if (v['kill-after'] !== undefined) throw new Error('--kill-after goes with --kill-restart');
  const port = await freePort('127.0.0.1');
  const redis = await startRedisServer(port);
  const runs: { label: string; replicas: number; sync: boolean }[] = [{ label: 'one replica', replicas: 1, sync: false }];
  for (const n of counts) runs.push({ label: `${n} replicas, no sync`, replicas: n, sync: false }, { label: `${n} replicas, --state-sync`, replicas: n, sync: true });
  const rows: Row[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  try {
    for (const [i, r] of runs.entries()) {
      // A stream of its own per run: no run warms from another's history.
      const args = demoArgs(v, r.replicas, `${stamp}-${i}`, `active-active: ${r.label}`, r.sync ? `redis://127.0.0.1:${port}?key=llm-epp:bench:${stamp}:${i}` : undefined);
      const plan = demoPlanFromArgs(args);
      if (plan === 'help') continue;
      process.stderr.write(`\n=== ${r.label}: npm run demo -- ${args.join(' ')}\n`);
      const result = await runDemo(plan);
      const stage = result.report.stages[0];
      if (!stage) throw new Error(`${r.label}: the demo produced no stage`);
      rows.push({ ...r, f: figuresOf(stage) });
    }
  } finally {
    redis.kill('SIGKILL');
  }
  const one = rows[0].f;
  const lines = [
    '| run | prefix-cache hit | vs one replica | TTFT p50 ms | TTFT p90 ms | p90 vs one replica | req/s | failed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const hitRatio = r.f.hit !== undefined && one.hit ? `${((r.f.hit / one.hit) * 100).toFixed(1)} %` : '–';
      return `| ${r.label} | ${pct(r.f.hit)} | ${hitRatio} | ${r.f.ttftP50.toFixed(0)} | ${r.f.ttftP90.toFixed(0)} | ${((r.f.ttftP90 / one.ttftP90) * 100).toFixed(1)} % | ${r.f.throughput.toFixed(1)} | ${r.f.failed} |`;
    }),
  ];
  const md = lines.join('\n');
  process.stdout.write('\n' + md + '\n');
  if (v['append-results']) {
    const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
    appendFileSync(`${ROOT}bench/RESULTS.md`, `\n## Active-active replicas: approximate prefix routing with and without --state-sync — ${when} UTC\n\n${md}\n\nCommand: \`npm run bench:active-active -- ${argv.join(' ')}\`. Fleet, replicas, gateway, redis-server and load generator on the same machine.\n`);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// --kill-restart: one replica SIGKILLed mid-run and started again at once.

/** The times of one kill and restart, ms on the run's clock (the records' startMs). */
export interface KillTimeline {
  /** SIGKILL sent. */
  killMs: number;
  /** The killed process's exit seen. */
  goneMs: number;
  /** The replacement spawned, with the same flags and ports. */
  spawnMs: number;
  /** Its "llm-epp serving" line: logged once health is SERVING, after the state-sync warm start. */
  readyMs: number;
  /** Its inference_pool_ready_pods reached the pool's size (every pod scraped once). */
  podsReadyMs?: number;
}

/** A window of the measured requests by send time, [fromMs, toMs); toMs Infinity: to the end. */
export interface TimeWindow {
  name: string;
  fromMs: number;
  toMs: number;
}

/** The windows a kill/restart run is judged in: before the kill, while down, right after, later. */
export function killRestartWindows(measuredStartMs: number, t: Pick<KillTimeline, 'killMs' | 'readyMs'>, backMs: number): TimeWindow[] {
  return [
    { name: 'before the kill', fromMs: measuredStartMs, toMs: t.killMs },
    { name: 'down (kill → ready)', fromMs: t.killMs, toMs: t.readyMs },
    { name: `back, first ${backMs / 1000} s`, fromMs: t.readyMs, toMs: t.readyMs + backMs },
    { name: 'back, later', fromMs: t.readyMs + backMs, toMs: Infinity },
  ];
}

/** The stage cut to its measured requests sent in the window (and kept by `keep`), for stageReport. */
export function windowOf(st: StageResult, w: TimeWindow, keep: (r: RequestRecord) => boolean = () => true): StageResult {
  const cut: StageResult = {
    index: st.index,
    name: st.name,
    spec: st.spec,
    arrival: st.arrival,
    startMs: st.startMs,
    measuredStartMs: Math.max(w.fromMs, st.measuredStartMs),
    arrivalsEndMs: Math.min(w.toMs, st.arrivalsEndMs),
    endMs: st.endMs,
    records: st.records.filter((r) => !r.warmup && r.startMs >= w.fromMs && r.startMs < w.toMs && keep(r)),
  };
  if (st.rate !== undefined) cut.rate = st.rate;
  return cut;
}

/** Which replica each request's stream went to, as far as the gateway's turns tell. */
export interface TurnAttribution {
  replicas: number;
  /** Failed requests sent while the killed replica was down, and how many of them were on its turn. */
  refused: number;
  onVictim: number;
  /** The request went to the killed (then restarted) replica. */
  victimOf(r: RequestRecord): boolean;
}

/**
 * The benchmark gateway hands each request's ext_proc stream to the next replica in turn, so the
 * k-th request it received went to replica (k + c) mod n. Requests reach it in the order the load
 * generator sent them (two sent within the same instant may swap), and while the killed replica
 * was down every request of its turn failed: the turn with the most failures in that window is the
 * killed replica's. `records`: the whole run's, warm-up included (the gateway counts them all).
 * Undefined when nothing failed while it was down.
 */
export function attributeTurns(records: readonly RequestRecord[], replicas: number, t: Pick<KillTimeline, 'killMs' | 'readyMs'>): TurnAttribution | undefined {
  const order = [...records].sort((a, b) => a.startMs - b.startMs);
  const turn = new Map<RequestRecord, number>();
  const refusedBy = new Array<number>(replicas).fill(0);
  order.forEach((r, k) => {
    turn.set(r, k % replicas);
    if (!r.ok && !r.aborted && r.startMs >= t.killMs && r.startMs < t.readyMs) refusedBy[k % replicas]++;
  });
  const refused = refusedBy.reduce((a, b) => a + b, 0);
  if (refused === 0) return undefined;
  const victim = refusedBy.indexOf(Math.max(...refusedBy));
  return { replicas, refused, onVictim: refusedBy[victim], victimOf: (r) => turn.get(r) === victim };
}

/** The run's failures (warm-up included, aborted ones not), by error kind, by when they happened. */
export interface FailureBreakdown {
  /** In flight at the kill (sent before it, ended after it): cut mid-stream. */
  cut: Record<string, number>;
  /** Sent while the replica was down. */
  down: Record<string, number>;
  /** Any other failure. */
  other: Record<string, number>;
}

export function failureBreakdown(records: readonly RequestRecord[], t: Pick<KillTimeline, 'killMs' | 'readyMs'>): FailureBreakdown {
  const b: FailureBreakdown = { cut: {}, down: {}, other: {} };
  for (const r of records) {
    if (r.ok || r.aborted) continue;
    const kind = errorKind(r.error ?? 'error');
    const into = r.startMs < t.killMs && r.startMs + r.e2eMs >= t.killMs ? b.cut : r.startMs >= t.killMs && r.startMs < t.readyMs ? b.down : b.other;
    into[kind] = (into[kind] ?? 0) + 1;
  }
  return b;
}

/** The first sample of `name` (with `labels`, when given) in a Prometheus text. */
export function promValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  // The metrics parser llm-epp scrapes model servers with: labels compared exactly.
  const want = Object.entries(labels);
  for (const sample of parsePrometheusText(text, new Set([name])).get(name) ?? []) {
    if (want.every(([k, v]) => sample.labels[k] === v)) return sample.value;
  }
  return undefined;
}

/** What a replica's /metrics said at one moment (atMs on the run's clock); only atMs when it did not answer. */
export interface EppSample {
  atMs: number;
  /** inference_extension_prefix_indexer_size: prefix blocks held over all endpoints. */
  prefixBlocks?: number;
  /** inference_extension_prefix_indexer_hit_ratio: the predicted prefix match of its picks so far. */
  hitRatioSum?: number;
  hitRatioCount?: number;
  warmStartS?: number;
  replayedBatches?: number;
  readyPods?: number;
}

export function eppSample(text: string, atMs: number): EppSample {
  const s: EppSample = { atMs };
  const put = (k: Exclude<keyof EppSample, 'atMs'>, v: number | undefined) => {
    if (v !== undefined) s[k] = v;
  };
  // A metric declared (# TYPE) without a sample has not been set yet: an empty index, no pick.
  const declared = (metric: string) => (text.includes(`\n# TYPE ${metric} `) || text.startsWith(`# TYPE ${metric} `) ? 0 : undefined);
  put('prefixBlocks', promValue(text, 'inference_extension_prefix_indexer_size') ?? declared('inference_extension_prefix_indexer_size'));
  put('hitRatioSum', promValue(text, 'inference_extension_prefix_indexer_hit_ratio_sum') ?? declared('inference_extension_prefix_indexer_hit_ratio'));
  put('hitRatioCount', promValue(text, 'inference_extension_prefix_indexer_hit_ratio_count') ?? declared('inference_extension_prefix_indexer_hit_ratio'));
  put('warmStartS', promValue(text, 'llm_epp_state_sync_warm_start_seconds'));
  put('replayedBatches', promValue(text, 'llm_epp_state_sync_batches_total', { direction: 'replayed' }));
  put('readyPods', promValue(text, 'inference_pool_ready_pods'));
  return s;
}

async function sampleEpp(metricsPort: number, t0: number): Promise<EppSample> {
  const atMs = performance.now() - t0;
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
    return eppSample(await res.text(), atMs);
  } catch {
    return { atMs };
  }
}

/** The mean predicted prefix match of the picks a replica made between two samples of the same process. */
export function predictedMatch(a: EppSample | undefined, b: EppSample | undefined): number | undefined {
  if (a?.hitRatioSum === undefined || a.hitRatioCount === undefined || b?.hitRatioSum === undefined || b.hitRatioCount === undefined) return undefined;
  const n = b.hitRatioCount - a.hitRatioCount;
  return n > 0 ? (b.hitRatioSum - a.hitRatioSum) / n : undefined;
}

interface ReplicaSamples {
  /** At the start of the measured time, just before the kill, at the restart's readiness, at the end of the back window. */
  start: EppSample;
  kill: EppSample;
  ready: EppSample;
  back: EppSample;
}

export interface KillRestartResult {
  label: string;
  sync: boolean;
  replicas: number;
  backMs: number;
  stage: StageResult;
  timeline: KillTimeline;
  /** The restarted replica's "state sync: warmed from the shared history" log line. */
  warmLog?: { replayedBatches?: number; seconds?: number };
  /** The killed-and-restarted replica (before the kill: its first process) and the first other replica. */
  victim: ReplicaSamples;
  other: ReplicaSamples;
  /** The machine kept up (health.ts), and why not. */
  reliable: boolean;
  healthReasons: string[];
  /** The JSON report. */
  report?: string;
}

const sec = (ms: number | undefined, digits = 1) => (ms === undefined || !Number.isFinite(ms) ? '–' : (ms / 1000).toFixed(digits));
const ms0 = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '–' : ms.toFixed(0));
const kinds = (k: Record<string, number>) => {
  const n = Object.values(k).reduce((a, b) => a + b, 0);
  const top = Object.entries(k)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([what, c]) => `${what.replace(/\|/g, '/')} × ${c}`);
  return n === 0 ? '0' : `${n} (${top.join(', ')})`;
};

/** The Markdown of kill/restart runs: windows, the restarted replica at ready, the decisions right after it. */
export function killRestartMarkdown(results: readonly KillRestartResult[]): string {
  const win = [
    '| run | window | sent (s into the measured time) | requests | failed | prefix-cache hit | TTFT p50 ms | TTFT p90 ms |',
    '|---|---|---|---:|---:|---:|---:|---:|',
  ];
  const boot = [
    '| run | killed at (s) | SIGKILL → exit ms | start → ready s | warm-start metric s | replayed batches | prefix blocks at ready: restarted / other | picks it had made at ready | start → all pods scraped s | last refusal on its turn, s after start |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const dec = [
    '| run | replica | requests (by gateway turn) | failed | prefix-cache hit | TTFT p90 ms | predicted prefix match of its picks | same, before the kill |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  const notes: string[] = [];
  for (const r of results) {
    const st = r.stage;
    const t = r.timeline;
    const rel = (ms: number) => (ms === Infinity ? 'end' : ((ms - st.measuredStartMs) / 1000).toFixed(1));
    const windows: TimeWindow[] = [{ name: 'whole measured time', fromMs: st.measuredStartMs, toMs: Infinity }, ...killRestartWindows(st.measuredStartMs, t, r.backMs)];
    for (const w of windows) {
      const rep = stageReport(r.label, windowOf(st, w));
      const f = figuresOf(rep);
      const ttft = (v: number) => (rep.completed > 0 ? v.toFixed(0) : '–');
      win.push(`| ${r.label} | ${w.name} | ${rel(w.fromMs)}–${rel(w.toMs)} | ${rep.requests} | ${rep.failed} | ${pct(f.hit)} | ${ttft(f.ttftP50)} | ${ttft(f.ttftP90)} |`);
    }
    const turns = attributeTurns(st.records, r.replicas, t);
    // Good enough to split the decisions by replica: the refusals fell on one turn.
    const usable = turns !== undefined && turns.onVictim / turns.refused >= 0.9 ? turns : undefined;
    // When the gateway last found nothing listening on the restarted replica's port (its turn's failures after the kill).
    let lastRefused: number | undefined;
    if (usable) {
      for (const q of st.records) if (q.startMs >= t.killMs && !q.ok && !q.aborted && usable.victimOf(q)) lastRefused = Math.max(lastRefused ?? -Infinity, q.startMs);
    }
    const v = r.victim.ready;
    const picks = v.hitRatioCount === undefined ? '–' : `${v.hitRatioCount} (read ${ms0(v.atMs - t.readyMs)} ms after)`;
    boot.push(
      `| ${r.label} | ${rel(t.killMs)} | ${ms0(t.goneMs - t.killMs)} | ${sec(t.readyMs - t.spawnMs, 2)} | ${v.warmStartS === undefined ? '–' : v.warmStartS.toFixed(3)} | ${v.replayedBatches ?? '–'} | ${v.prefixBlocks ?? '–'} / ${r.other.ready.prefixBlocks ?? '–'} | ${picks} | ${t.podsReadyMs === undefined ? '–' : sec(t.podsReadyMs - t.spawnMs, 2)} | ${lastRefused === undefined ? '–' : sec(lastRefused - t.spawnMs, 2)} |`,
    );
    const back: TimeWindow = { name: 'back', fromMs: t.readyMs, toMs: t.readyMs + r.backMs };
    const before = { victim: predictedMatch(r.victim.start, r.victim.kill), other: predictedMatch(r.other.start, r.other.kill) };
    const now = { victim: predictedMatch(r.victim.ready, r.victim.back), other: predictedMatch(r.other.ready, r.other.back) };
    for (const who of ['victim', 'other'] as const) {
      const name = who === 'victim' ? 'restarted' : r.replicas > 2 ? 'the others' : 'the other';
      let requests = '–';
      let failed = '–';
      let hit = '–';
      let p90 = '–';
      if (usable) {
        const rep = stageReport(r.label, windowOf(st, back, (q) => usable.victimOf(q) === (who === 'victim')));
        const f = figuresOf(rep);
        requests = String(rep.requests);
        failed = String(rep.failed);
        hit = pct(f.hit);
        p90 = rep.completed > 0 ? f.ttftP90.toFixed(0) : '–';
      }
      // The predicted match is read from one other replica's /metrics (the first).
      const predictedNote = who === 'other' && r.replicas > 2 ? ' (replica 1)' : '';
      dec.push(`| ${r.label} | ${name} | ${requests} | ${failed} | ${hit} | ${p90} | ${pct(now[who])}${predictedNote} | ${pct(before[who])}${predictedNote} |`);
    }
    const b = failureBreakdown(st.records, t);
    notes.push(
      `- ${r.label}: failed requests over the whole run (warm-up included): cut mid-stream at the kill ${kinds(b.cut)}; sent while it was down ${kinds(b.down)}; other ${kinds(b.other)}. ` +
        (turns
          ? `Gateway turns: ${turns.onVictim} of the ${turns.refused} failures while it was down fell on one turn${usable ? '' : ' — too mixed to split the decisions by replica'}.`
          : 'No failure while it was down: the decisions are not split by replica.') +
        (r.warmLog ? ` Its log: warmed from ${r.warmLog.replayedBatches ?? '?'} batches in ${r.warmLog.seconds ?? '?'} s.` : '') +
        (r.reliable ? '' : ` Machine did not keep up: ${r.healthReasons.join('; ')}.`),
    );
  }
  const backS = results.length ? results[0].backMs / 1000 : 0;
  return [
    ...win,
    '',
    ...boot,
    '',
    `Decisions in the first ${backS} s after the restarted replica was ready:`,
    '',
    ...dec,
    '',
    ...notes,
    '',
    'Windows are by send time. Hit rate: Σ cached_tokens / Σ prompt_tokens of the completed requests (usage). ' +
      'Requests are split by replica from the gateway\'s turns (it hands streams to the replicas in turn; the turn that failed while the replica was down is its turn). ' +
      'Predicted prefix match: the mean of each replica\'s own inference_extension_prefix_indexer_hit_ratio over the window (what its index matched at the endpoint it picked). ' +
      'Prefix blocks, picks and the warm-start metric are read from the restarted replica\'s /metrics right after its "llm-epp serving" line (ready: health SERVING); ' +
      'picks made by then: streams the gateway sent it as soon as its port accepted them (the benchmark gateway does not health-check its EPPs), before it was ready or in the milliseconds before the read.',
  ].join('\n');
}

interface KillRestartCase {
  label: string;
  sync: boolean;
  plan: DemoPlan;
  replicas: number;
  killAfterMs: number;
  backMs: number;
}

interface Replica {
  name: string;
  ports: EppPorts;
  args: string[];
  child: StartedChild;
}

/** `n` distinct ports free a moment ago. */
async function freePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort('127.0.0.1'));
  return [...out];
}

/** Start one llm-epp replica; resolves on its "llm-epp serving" line, with its warm-start line if it logged one. */
async function startReplica(name: string, args: string[]): Promise<{ child: StartedChild; warm?: KillRestartResult['warmLog'] }> {
  const seen: { warm?: KillRestartResult['warmLog'] } = {};
  const child = await startChild({
    label: `llm-epp ${name} (src/main.ts)`,
    // As `npm start` and the container run it (and as the demo starts its replicas).
    nodeArgs: ['--max-semi-space-size=4'],
    probe: false,
    args,
    ready: (l) => {
      const j = json(l) as { msg?: string; grpcPort?: number; metricsPort?: number; replayedBatches?: number; seconds?: number } | undefined;
      if (j?.msg === 'state sync: warmed from the shared history') seen.warm = { replayedBatches: j.replayedBatches, seconds: j.seconds };
      return j?.msg === 'llm-epp serving' ? { port: j.grpcPort!, metricsPort: j.metricsPort! } : undefined;
    },
  });
  return seen.warm ? { child, warm: seen.warm } : { child };
}

/** ms on the run's clock when the replica's inference_pool_ready_pods reached `pods`; undefined if not within 20 s. */
async function podsReadyAt(metricsPort: number, pods: number, t0: number, signal: AbortSignal): Promise<number | undefined> {
  const end = performance.now() + 20_000;
  while (performance.now() < end && !signal.aborted) {
    const s = await sampleEpp(metricsPort, t0);
    if ((s.readyPods ?? 0) >= pods) return s.atMs;
    try {
      await sleep(25, undefined, { signal });
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** During the run: sample, SIGKILL the victim at the planned time, start it again at once, sample. */
async function killAndRestart(o: {
  t0: number;
  warmupMs: number;
  killAfterMs: number;
  backMs: number;
  endMs: number;
  victim: Replica;
  other: Replica;
  pods: number;
  signal: AbortSignal;
  /** The restarted process, for the caller to stop at the end. */
  restarted: (child: StartedChild) => void;
  log: (s: string) => void;
}): Promise<Omit<KillRestartResult, 'label' | 'sync' | 'replicas' | 'backMs' | 'stage' | 'reliable' | 'healthReasons' | 'report'>> {
  const at = (ms: number) => sleep(Math.max(0, o.t0 + ms - performance.now()), undefined, { signal: o.signal });
  const now = () => performance.now() - o.t0;
  const both = () => Promise.all([sampleEpp(o.victim.ports.metrics, o.t0), sampleEpp(o.other.ports.metrics, o.t0)]);
  await at(o.warmupMs);
  const [vStart, oStart] = await both();
  await at(o.warmupMs + o.killAfterMs);
  const [vKill, oKill] = await both();
  const gone = once(o.victim.child.proc, 'exit');
  const killMs = now();
  o.victim.child.proc.kill('SIGKILL');
  await gone;
  const goneMs = now();
  // At once, with the same command line: the same ports, so the gateway finds it again.
  const spawnMs = now();
  const fresh = await startReplica(`${o.victim.name} (restarted)`, o.victim.args);
  const readyMs = now();
  o.restarted(fresh.child);
  const [vReady, oReady] = await both();
  o.log(`  killed ${o.victim.name} ${(killMs / 1000).toFixed(1)} s into the run (warm-up ${o.warmupMs / 1000} s); restarted, ready ${((readyMs - spawnMs) / 1000).toFixed(2)} s after its start`);
  const pods = podsReadyAt(o.victim.ports.metrics, o.pods, o.t0, o.signal);
  await at(Math.min(readyMs + o.backMs, o.endMs));
  const [vBack, oBack] = await both();
  const podsReadyMs = await pods;
  const timeline: KillTimeline = { killMs, goneMs, spawnMs, readyMs };
  if (podsReadyMs !== undefined) timeline.podsReadyMs = podsReadyMs;
  return {
    timeline,
    ...(fresh.warm ? { warmLog: fresh.warm } : {}),
    victim: { start: vStart, kill: vKill, ready: vReady, back: vBack },
    other: { start: oStart, kill: oKill, ready: oReady, back: oBack },
  };
}

/** One kill/restart run on its own fleet, replicas and gateway. */
async function killRestartRun(c: KillRestartCase, log: (s: string) => void, signal: AbortSignal): Promise<KillRestartResult | undefined> {
  const { plan } = c;
  const environment = describeEnvironment({ plan, killRestart: { replicas: c.replicas, killAfterMs: c.killAfterMs, backMs: c.backMs } }, ['node', 'bench/active-active.bench.ts', ...plan.argv]);
  const children: StartedChild[] = [];
  const onExit = () => killChildrenSync(children);
  process.once('exit', onExit);
  const monitor = new HealthMonitor();
  try {
    const { endpoints, podNames } = await startSimFleet(plan, [], children, monitor);
    // Ports fixed up front: the restart gets exactly the command line the replica first had.
    const ports = await freePorts(3 * c.replicas);
    const replicas: Replica[] = [];
    for (let r = 0; r < c.replicas && !signal.aborted; r++) {
      const p: EppPorts = { grpc: ports[3 * r], health: ports[3 * r + 1], metrics: ports[3 * r + 2] };
      const args = eppBenchArgs(endpoints, plan.eppArgs, p);
      const name = `replica ${r + 1}`;
      const { child } = await startReplica(name, args);
      children.push(child);
      await waitReady(p.metrics, plan.pods);
      replicas.push({ name, ports: p, args, child });
      log(`llm-epp ${name}: ext_proc on 127.0.0.1:${p.grpc}, metrics on :${p.metrics}${plan.eppArgs.length ? ` (${plan.eppArgs.join(' ')})` : ''}`);
    }
    if (signal.aborted) return undefined;
    const victim = replicas[replicas.length - 1];
    const other = replicas[0];
    // The killed replica's CPU is not followed across its two processes; its lag is read from its /metrics.
    for (const r of replicas) monitor.add({ name: `llm-epp ${r.name}`, ...(r === victim ? {} : { pid: r.child.pid }), lag: promLagSource(`http://127.0.0.1:${r.ports.metrics}/metrics`) });
    const gw = await startGatewayChild('the gateway (bench/gateway/gateway.ts)', ['--strategy=epp', `--epp=${replicas.map((r) => `127.0.0.1:${r.ports.grpc}`).join(',')}`], children, monitor, 'gateway');
    const url = `http://127.0.0.1:${gw.info.port}`;
    // One request per replica's turn: a broken path fails here, with its reason.
    for (let i = 0; i < c.replicas; i++) await preflight(url, { model: plan.workload.model ?? 'sim-model' });
    const stage = plan.stages[0];
    const warmupMs = stage.warmupMs ?? 0;
    const endMs = warmupMs + (stage.durationMs ?? 0);
    log(`\n▶ ${c.label}: ${stage.rate} req/s × ${(stage.durationMs ?? 0) / 1000} s (warm-up ${warmupMs / 1000} s), ${victim.name} killed ${c.killAfterMs / 1000} s into the measured time`);
    const t0 = performance.now();
    const stop = new AbortController();
    const runSignal = AbortSignal.any([signal, stop.signal]);
    const failure: { err?: Error } = {};
    const disruption = killAndRestart({
      t0,
      warmupMs,
      killAfterMs: c.killAfterMs,
      backMs: c.backMs,
      endMs,
      victim,
      other,
      pods: plan.pods,
      signal: runSignal,
      restarted: (child) => children.push(child),
      log,
    }).catch((e: Error) => {
      failure.err = e;
      stop.abort(e);
      return undefined;
    });
    const run: RunResult = await runStages({
      url,
      strategy: c.label,
      workload: makeWorkload(plan.kind, plan.workload),
      stages: [stage],
      arrival: 'poisson',
      seed: plan.seed,
      timeoutMs: 300_000,
      progress: plan.progress ?? false,
      health: monitor,
      signal: runSignal,
      t0,
    });
    const d = await disruption;
    if (signal.aborted) return undefined;
    if (failure.err || !d) throw new Error(`${c.label}: the kill/restart failed: ${failure.err?.message ?? 'no result'}`);
    const st = run.stages[0];
    if (!st) throw new Error(`${c.label}: the run produced no stage`);
    const report = buildReport([run], {
      pods: podNames,
      title: `active-active kill/restart: ${c.label}`,
      meta: { plan, killRestart: { replicas: c.replicas, killAfterMs: c.killAfterMs, backMs: c.backMs, ...d } },
      thresholds: plan.thresholds,
      environment,
    });
    const files = writeReports(report, plan.out, [run]);
    const health = report.stages[0].health;
    return { label: c.label, sync: c.sync, replicas: c.replicas, backMs: c.backMs, stage: st, ...d, reliable: health.reliable, healthReasons: health.reasons, report: files.json };
  } finally {
    monitor.close();
    await stopChildren(children);
    process.off('exit', onExit);
  }
}

/** `--kill-restart`: with --state-sync, then without; prints (and with --append-results appends) the tables. */
async function killRestartMain(
  argv: string[],
  v: { replicas: number; rate: string; duration: string; warmup: string; pods: string; 'append-results': boolean; 'kill-after'?: string; 'back-window': string },
): Promise<number> {
  const durationMs = parseDuration(v.duration);
  const killAfterMs = v['kill-after'] !== undefined ? parseDuration(v['kill-after']) : durationMs / 3;
  if (!(killAfterMs > 0 && killAfterMs < durationMs)) throw new Error(`--kill-after must fall inside the measured time (0, ${v.duration}), got "${v['kill-after']}"`);
  const backMs = parseDuration(v['back-window']);
  if (!(backMs > 0)) throw new Error(`--back-window must be positive, got "${v['back-window']}"`);
  const t0 = performance.now();
  const log = (s: string) => process.stderr.write(s + '\n');
  const port = await freePort('127.0.0.1');
  const redis = await startRedisServer(port);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const interrupt = onInterrupt(log);
  const results: KillRestartResult[] = [];
  try {
    for (const sync of [true, false]) {
      if (interrupt.signal.aborted) break;
      const label = `${v.replicas} replicas, ${sync ? '--state-sync' : 'no sync'}`;
      const args = demoArgs(v, v.replicas, `${stamp}-kill-restart-${sync ? 'sync' : 'nosync'}`, `active-active kill/restart: ${label}`, sync ? `redis://127.0.0.1:${port}?key=llm-epp:bench:${stamp}:kill-restart` : undefined);
      const plan = demoPlanFromArgs(args);
      if (plan === 'help') continue;
      log(`\n=== ${label}, replica ${v.replicas} killed and restarted (the demo's workload: npm run demo -- ${args.join(' ')})`);
      const r = await killRestartRun({ label, sync, plan, replicas: v.replicas, killAfterMs, backMs }, log, interrupt.signal);
      if (r) results.push(r);
    }
  } finally {
    redis.kill('SIGKILL');
    interrupt.dispose();
  }
  if (interrupt.signal.aborted) {
    log('interrupted: no table');
    return EXIT_INTERRUPTED;
  }
  const md = killRestartMarkdown(results);
  const seconds = ((performance.now() - t0) / 1000).toFixed(0);
  const command = `npm run bench:active-active -- ${argv.join(' ')}`;
  process.stdout.write(`\n${md}\n\nCommand: \`${command}\` (${seconds} s). Reports: ${results.map((r) => r.report).join(', ')}.\n`);
  if (v['append-results']) {
    const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
    appendFileSync(
      `${ROOT}bench/RESULTS.md`,
      `\n## Active-active replicas: one killed mid-run and restarted, with and without --state-sync — ${when} UTC\n\n${md}\n\nCommand: \`${command}\` (${seconds} s). Fleet, replicas, gateway, redis-server and load generator on the same machine.\n`,
    );
  }
  return EXIT_OK;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
