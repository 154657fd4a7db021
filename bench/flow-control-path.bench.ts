// What flow control costs a request that goes straight through (the gate
// open, nothing queued), in one process: request control's whole decision
// (director.handleRequest on bench:epp's headline chat bodies, GAIE's default
// scorers over 64 endpoints with fresh metrics, then responseComplete) with the
// flowControl gate off and on, interleaved in rounds so drift hits both alike.
// The gate-off run is the floor; the figure is the difference per request and
// the ratio on/off. Then the same with 1,000 requests queued in another band
// while the gate is shut: what a request that enters the queue costs.
//
//   npm run bench:flow-control-path                 ≈ 30 s
//   npm run bench:flow-control-path -- --append     also appends to bench/RESULTS.md
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { flowControlOf } from '../src/flowcontrol/config.ts';
import type { FlowController } from '../src/flowcontrol/controller.ts';
import { startFlowControl } from '../src/app.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { createLogger } from '../src/log.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { Director, type Routing } from '../src/request-control/director.ts';
import { RequestPolicy } from '../src/request-control/policy.ts';
import { RequestPlugins } from '../src/request-control/request-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import { chatBodies } from './epp/run.ts';
import { numFlag } from './lib/args.ts';
import { defaultConfigWithDetector } from './lib/flow-config.ts';
import { runMeta } from './lib/run-meta.ts';
import { percentile } from './lib/stats.ts';

const { values } = parseArgs({ options: { append: { type: 'boolean', default: false }, rounds: { type: 'string', default: '7' }, requests: { type: 'string', default: '2000' } } });
const ROUNDS = numFlag('rounds', values.rounds, true, 1)!;
const PER_ROUND = numFlag('requests', values.requests, true, 1)!;
const PODS = 64;
/** Metrics set by the bench stay fresh through a round, however slow the machine. */
const STALE_MS = 600_000;
const log = createLogger('silent');

// A detector the pool never reaches: the gate stays open (the cost measured is the gate's, not waiting).
const OPEN = '{name: open, type: concurrency-detector, parameters: {maxConcurrency: 1000000}}';

interface Setup {
  director: Director;
  pool: Datastore;
  flow: FlowController | undefined;
}

function setup(gate: boolean): Setup {
  const pool = new Datastore();
  pool.replaceAll(Array.from({ length: PODS }, (_, i) => ({ address: `10.0.${i >> 8}.${i & 255}`, port: 8000, name: `pod-${i}` })));
  const metrics = new EppMetrics(pool, { poolName: 'bench', stalenessThresholdMs: STALE_MS, version: 'bench', processMetrics: false });
  const text = defaultConfigWithDetector(OPEN, 'open', gate);
  const config = loadConfig(parseConfigText(text, 'bench'), createRegistry(), { pool, log, metrics, random: Math.random }, 'bench');
  const scheduler = new PipelineScheduler(config, log, metrics);
  const plugins = new RequestPlugins(config.plugins.values(), scheduler.timer, config.saturationDetector);
  const settings = flowControlOf(config, 'bench');
  // Wired as llm-epp wires it (src/app.ts).
  const flow = settings ? startFlowControl(settings, config.saturationDetector, pool, new RequestPolicy(), metrics, 'bench', STALE_MS, 50, log).controller : undefined;
  const director = new Director({
    pool,
    scheduler,
    plugins,
    options: { metricsStalenessThresholdMs: STALE_MS, fallbackEndpoints: 0, disableEndpointSubsetFilter: false },
    metrics,
    log,
    flow,
  });
  return { director, pool, flow };
}

function freshen(pool: Datastore): void {
  const now = performance.now();
  let i = 0;
  for (const ep of pool.list()) {
    ep.metrics = { waitingQueueSize: i % 4, runningRequests: 8, kvCacheUsage: 0.2 + (i % 10) / 20 };
    ep.metricsUpdatedAt = now;
    i++;
  }
}

const bodies = chatBodies(512, 32);
/** Heap bytes per queued request (with --expose-gc). */
const heapPerQueued: number[] = [];
const headers = new Map([['x-llm-d-inference-fairness-id', 'tenant-a']]);

/** Route and complete PER_ROUND requests; µs per request. */
function round(s: Setup, offset: number): number {
  freshen(s.pool);
  const t0 = performance.now();
  for (let i = 0; i < PER_ROUND; i++) {
    const body = bodies[(offset + i) % bodies.length];
    const r = s.director.handleRequest({ requestId: `r${i}`, headers, path: '/v1/chat/completions', body, subset: undefined, receivedAt: performance.now() });
    if (r instanceof Promise) throw new Error('a request waited: the gate was meant to stay open');
    s.director.responseComplete(r as Routing);
  }
  return ((performance.now() - t0) * 1000) / PER_ROUND;
}

/**
 * 1,000 requests (10 flows) through the gate while it is open, then the same
 * 1,000 arriving while it is shut (every endpoint at its limit), queued, and
 * drained once it opens: µs per request of each.
 */
async function queuedRound(s: Setup): Promise<{ straight: number; queued: number }> {
  freshen(s.pool);
  const flow = s.flow!;
  const eps = s.pool.list();
  const incoming = (i: number) => ({ requestId: `q${i}`, headers: new Map([['x-llm-d-inference-fairness-id', `tenant-${i % 10}`]]), path: '/v1/chat/completions', body: bodies[i % bodies.length], subset: undefined, receivedAt: performance.now() });
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) s.director.responseComplete(s.director.handleRequest(incoming(i)) as Routing);
  const straight = ((performance.now() - t0) * 1000) / 1000;
  for (const ep of eps) ep.inFlight = 1_000_000;
  const pending: Promise<Routing>[] = [];
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const t1 = performance.now();
  for (let i = 0; i < 1000; i++) pending.push(s.director.handleRequest(incoming(i)) as Promise<Routing>);
  const enqueuedAt = performance.now();
  gc?.();
  // What 1,000 waiting requests hold besides their bodies (which the test's Buffers keep anyway).
  heapPerQueued.push(gc ? (process.memoryUsage().heapUsed - heapBefore) / 1000 : NaN);
  const gcMs = performance.now() - enqueuedAt;
  for (const ep of eps) ep.inFlight = 0;
  flow.wake();
  const routed = await Promise.all(pending);
  const queued = ((performance.now() - t1 - gcMs) * 1000) / 1000;
  for (const r of routed) s.director.responseComplete(r);
  if (flow.stats().queued !== 0) throw new Error('the queue did not drain');
  return { straight, queued };
}

const off = setup(false);
const on = setup(true);
// Warm both (JIT, prefix indexes).
round(off, 0);
round(on, 0);
const offUs: number[] = [];
const onUs: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? [off, on] : [on, off];
  for (const s of order) (s === off ? offUs : onUs).push(round(s, r * PER_ROUND));
}
const median = (xs: readonly number[]) => percentile([...xs].sort((a, b) => a - b), 50);
const mOff = median(offUs);
const mOn = median(onUs);
const straight: number[] = [];
const queued: number[] = [];
for (let r = 0; r < 3; r++) {
  const q = await queuedRound(on);
  straight.push(q.straight);
  queued.push(q.queued);
}
const mStraight = median(straight);
const mQueued = median(queued);
// Each pair ran on the same state (the prefix index grows from pair to pair): the ratio is taken per pair.
const mRatio = median(queued.map((q, i) => q / straight[i]));

// Flow control's own work alone on the same setup: enqueue (gate read over the 64 endpoints, the
// decision, its metrics) and completed(), for a request that goes straight through.
const alone: number[] = [];
{
  const flow = on.flow!;
  freshen(on.pool);
  const req = { id: 'x', fairnessId: 'tenant-a', priority: 0, byteSize: 32_000, receivedAt: 0, model: 'meta-llama/Llama-3.1-8B-Instruct', targetModel: 'meta-llama/Llama-3.1-8B-Instruct' };
  for (let r = 0; r < ROUNDS; r++) {
    const n = 100_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      if (flow.enqueue(req) instanceof Promise) throw new Error('a request waited: the gate was meant to stay open');
      flow.completed(req.fairnessId, req.priority, 0, 0);
    }
    alone.push(((performance.now() - t0) * 1000) / n);
  }
}
const mAlone = median(alone);

const meta = runMeta();
const lines = [
  `## Flow control on the request path — ${meta.date} (\`npm run bench:flow-control-path\`)`,
  '',
  `Machine: ${meta.cpu} × ${meta.cores}, Node ${meta.node}. One process, request control only (director.handleRequest + responseComplete, bench:epp's headline chat bodies, GAIE's default scorers over ${PODS} endpoints); ${ROUNDS} interleaved rounds of ${PER_ROUND} requests per setting, medians.`,
  '',
  '| setting | µs per request | ratio to gate off |',
  '|---|---:|---:|',
  `| flowControl gate off (floor) | ${mOff.toFixed(1)} | 1.00 |`,
  `| gate on, nothing queued (gate open) | ${mOn.toFixed(1)} | ${(mOn / mOff).toFixed(3)} |`,
  '',
  `Flow control's own work for such a request, measured alone (enqueue: the gate read over the ${PODS} endpoints, the decision and its metrics; then completed()), ${ROUNDS} × 100,000: ${mAlone.toFixed(2)} µs, ${((mAlone / mOff) * 100).toFixed(1)} % of the gate-off request.`,
  '',
  'The same 1,000 requests (10 fairness ids), gate on: straight through while it is open, then arriving while it is shut (each endpoint at its concurrency limit), queued, and drained when it opens (one dispatch decision per arrival and per event-loop turn):',
  '',
  '| setting | µs per request | ratio to straight through |',
  '|---|---:|---:|',
  `| straight through | ${mStraight.toFixed(1)} | 1.00 |`,
  `| queued, then drained | ${mQueued.toFixed(1)} | ${mRatio.toFixed(3)} (median of the pairs' ratios) |`,
  '',
  `Heap held per queued request beyond its body (parsed request, policy, queue entry, promise): ${Number.isNaN(median(heapPerQueued)) ? 'not measured (run with --expose-gc)' : `${(median(heapPerQueued) / 1024).toFixed(1)} KiB`} — a queued request's body counts against --max-buffered-request-bytes and its band's maxBytes; the rest is bounded by maxRequests.`,
  '',
  `Rounds (µs/request), off: ${offUs.map((x) => x.toFixed(1)).join(', ')}; on: ${onUs.map((x) => x.toFixed(1)).join(', ')}; 1,000 straight: ${straight.map((x) => x.toFixed(1)).join(', ')}; 1,000 queued: ${queued.map((x) => x.toFixed(1)).join(', ')}.`,
  '',
];
process.stdout.write(lines.join('\n') + '\n');
if (values.append) appendFileSync(new URL('./RESULTS.md', import.meta.url), '\n' + lines.join('\n'));
