// `npm run soak -- --minutes 30`: llm-epp under steady load for a long time, to catch what a
// 5-second benchmark cannot: memory that keeps growing (leaks, unbounded maps or indexes),
// event-loop lag or decision latency that drifts upwards, errors that appear after a while.
// It starts a fake vLLM fleet and llm-epp as child processes (bench/lib/processes.ts), drives
// ext_proc streams the way Envoy does (bench/epp/load.ts), first finds the saturation
// throughput with a closed loop of 64 streams (as `bench:epp` does), then holds an open-loop
// arrival rate of --load-fraction of it for --minutes. Every request is a chat prompt with one
// of 32 shared ~6k-token system prompts and its own ~2k-token question (so the prefix indexes
// fill up and must evict), followed by a streamed SSE response through the response path.
// Every --sample seconds: llm-epp's RSS, JS heap, event-loop lag (prom-client's histogram,
// reset by each scrape, so it covers the window), prefix-index size, throughput, errors and
// the window's decision latency.
// Verdict: PASS when RSS growth after warm-up < 5 % and no errors; exit code 1 on FAIL.
//
//   node bench/soak.ts --minutes 30 [--pods 16] [--rate R | --load-fraction 0.8] [--sample 10]
//        [--warmup 2] [--capacity-seconds 20] [--sse-chunks 200]
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { numFlag } from './lib/args.ts';
import { ROOT, json, rssMB, start, startEpp, stop, waitReady, type Child } from './lib/processes.ts';
import { round, summarize } from './lib/stats.ts';
import { ExtProcLoad, requestShape, sseResponse } from './epp/load.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' }, pods: { type: 'string' }, rate: { type: 'string' }, 'load-fraction': { type: 'string' },
    sample: { type: 'string' }, warmup: { type: 'string' }, 'capacity-seconds': { type: 'string' }, 'sse-chunks': { type: 'string' },
  },
});
const minutes = numFlag('minutes', values.minutes, false, 0.05) ?? 30;
const pods = numFlag('pods', values.pods, true, 1) ?? 16;
const fixedRate = numFlag('rate', values.rate, false, 0.1);
const fraction = numFlag('load-fraction', values['load-fraction'], false, 0.01) ?? 0.8;
const sampleS = numFlag('sample', values.sample, false, 1) ?? 10;
const warmupMin = numFlag('warmup', values.warmup, false, 0) ?? Math.min(2, minutes * 0.2);
const capacityS = numFlag('capacity-seconds', values['capacity-seconds'], false, 1) ?? 20;
const sseChunks = numFlag('sse-chunks', values['sse-chunks'], true, 0) ?? 200;
if (warmupMin >= minutes) throw new Error('--warmup must be shorter than --minutes');
const log = (s: string) => process.stderr.write(s + '\n');

// ---------- workload: the headline chat shape of bench/epp/run.ts, with a unique question per request ----------
function words(seed: number, chars: number): string {
  let s = '';
  for (let i = 0; s.length < chars; i++) s += `w${(seed * 7919 + i * 104729) % 50021} `;
  return s.slice(0, chars);
}
const SYSTEMS = Array.from({ length: 32 }, (_, g) => `System prompt ${g}. ` + words(g + 1, 24_000));
const QUESTIONS = Array.from({ length: 64 }, (_, q) => words(100_000 + q, 8_000));
const chatRequest = (i: number) =>
  requestShape('/v1/chat/completions', Buffer.from(JSON.stringify({
    model: 'meta-llama/Llama-3.1-8B-Instruct', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'system', content: SYSTEMS[i % 32] }, { role: 'user', content: `Question ${i}: ${QUESTIONS[i % 64]}` }],
  })));
let nextId = 0; // every request of the run (capacity phase included) gets its own question
const nextRequest = () => chatRequest(nextId++);
const sse = sseChunks > 0 ? sseResponse(sseChunks) : undefined;

// ---------- stopping: Ctrl-C, or llm-epp dying ----------
let haltReason: string | undefined;
let halt: (reason: string) => void = () => {};
const halted = new Promise<void>((resolve) => (halt = (reason) => { haltReason ??= reason; resolve(); }));
let finishing = false; // set once the soak is over: errors from then on are ours, not llm-epp's
let fleet: Child | undefined;
let epp: Child | undefined;
let sigints = 0;
process.on('SIGINT', () => {
  if (++sigints > 1) {
    for (const c of [epp, fleet]) c?.proc.kill('SIGKILL');
    process.exit(130);
  }
  log('\ninterrupted: stopping (Ctrl-C again to quit at once)');
  finishing = true; // a terminal's Ctrl-C reaches the children too
  halt('interrupted');
});

// ---------- sampling ----------
interface Row {
  t: number; windowS: number; rps: number; requests: number; errors: number; decisionP50Ms: number; decisionP99Ms: number;
  lateP99Ms: number; rssMB: number; prefixIndexBlocks: number; heapUsedMB: number; lagP50Ms: number; lagP99Ms: number; lagMaxMs: number;
}
const rows: Row[] = [];
const errorKinds: Record<string, number> = {};
let totalOk = 0;
let totalErrors = 0;

/** Every wanted series from one scrape: prom-client resets the lag histogram on each collect. */
async function scrape(port: number): Promise<Record<string, number>> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text()).catch(() => '');
  const get = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { heap: get('nodejs_heap_size_used_bytes'), p50: get('nodejs_eventloop_lag_p50_seconds'), p99: get('nodejs_eventloop_lag_p99_seconds'), max: get('nodejs_eventloop_lag_max_seconds'), blocks: get('inference_extension_prefix_indexer_size') };
}

async function soak(child: Child, load: ExtProcLoad, rate: number, durationMs: number): Promise<number> {
  // A continuous open loop on ExtProcLoad.one(): ExtProcLoad.openLoop keeps every sample and
  // promise until its end, which a 30-minute run can neither afford nor report per window.
  const interval = 1000 / rate;
  const t0 = performance.now();
  let win = { start: t0, dec: [] as number[], late: [] as number[], errors: 0 };
  let seq = 0;
  let inflight = 0;
  const launch = () => {
    inflight++;
    load.one(nextRequest(), sse).then(
      (s) => void (win.dec.push(s.decisionMs), totalOk++),
      (err: Error) => {
        if (finishing) return;
        win.errors++;
        totalErrors++;
        const kind = err.message.slice(0, 60);
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      },
    ).finally(() => inflight--);
  };
  const arrivalsDone = new Promise<void>((done) => {
    const tick = () => {
      if (haltReason) return done();
      const now = performance.now();
      for (; seq * interval < durationMs && t0 + seq * interval <= now; seq++) {
        win.late.push(now - (t0 + seq * interval));
        launch();
      }
      if (seq * interval >= durationMs) return done();
      setTimeout(tick, Math.max(0, t0 + seq * interval - performance.now()));
    };
    tick();
  });
  let chain = Promise.resolve();
  const sample = () => {
    const w = win;
    const now = performance.now();
    win = { start: now, dec: [], late: [], errors: 0 };
    const rss = rssMB(child.proc.pid!);
    const [ok, errors] = [totalOk, totalErrors];
    chain = chain.then(async () => {
      const m = await scrape(child.info.metricsPort);
      const d = summarize(w.dec);
      const r: Row = {
        t: round((now - t0) / 1000, 1), windowS: round((now - w.start) / 1000, 1), rps: round(w.dec.length / ((now - w.start) / 1000), 1),
        requests: ok + errors, errors, decisionP50Ms: round(d.p50), decisionP99Ms: round(d.p99), lateP99Ms: round(summarize(w.late).p99, 1),
        rssMB: round(rss, 1), prefixIndexBlocks: m.blocks, heapUsedMB: round(m.heap / 2 ** 20, 1), lagP50Ms: round(m.p50 * 1000, 2), lagP99Ms: round(m.p99 * 1000, 2), lagMaxMs: round(m.max * 1000, 2),
      };
      rows.push(r);
      log(`[${String(r.t).padStart(6)} s] ${r.rps} req/s · ${r.requests} reqs · ${r.errors} errors · decision p50 ${r.decisionP50Ms} p99 ${r.decisionP99Ms} ms · RSS ${r.rssMB} MB · heap ${r.heapUsedMB} MB · loop lag p50 ${r.lagP50Ms} p99 ${r.lagP99Ms} max ${r.lagMaxMs} ms · late p99 ${r.lateP99Ms} ms · prefix index ${r.prefixIndexBlocks} blocks`);
    });
  };
  const sampler = setInterval(sample, sampleS * 1000);
  await Promise.race([arrivalsDone, halted]);
  clearInterval(sampler);
  if (!haltReason) {
    const deadline = performance.now() + 15_000; // let the last requests finish, then a last (partial) window
    while (inflight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (performance.now() - win.start > 1000) sample();
  }
  await chain;
  return round((performance.now() - t0) / 1000, 1);
}

// ---------- run ----------
const meta = {
  date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC', node: process.version, cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length, memGB: Math.round(totalmem() / 2 ** 30), args: process.argv.slice(2).join(' '),
};
let capacity: number | undefined;
let capacityErrors = 0;
let rate = fixedRate ?? NaN;
let soakS = 0;
try {
  fleet = await start(['bench/epp/fleet.ts', `--pods=${pods}`], (l) => {
    const j = json(l) as { ports?: number[] } | undefined;
    return j?.ports ? Object.fromEntries(j.ports.map((p, i) => [String(i), p])) : undefined;
  });
  epp = await startEpp(Object.values(fleet.info).map((p) => `127.0.0.1:${p}`).join(','));
  await waitReady(epp.info.metricsPort, pods);
  // Deferred: a terminal's Ctrl-C reaches llm-epp too, and our SIGINT handler should win that race.
  epp.proc.once('exit', (code, signal) => setTimeout(() => !finishing && halt(`llm-epp exited (${code ?? signal})`), 500));
  log(`llm-epp pid ${epp.proc.pid}, ${pods} pods ready`);
  const load = new ExtProcLoad(`127.0.0.1:${epp.info.port}`);
  await load.closedLoop(4, 300, nextRequest, sse); // warm-up: connections, JIT, first scrapes
  if (fixedRate === undefined) {
    log(`measuring capacity: closed loop, 64 streams, ${capacityS} s…`);
    const r = await Promise.race([load.closedLoop(64, capacityS * 1000, nextRequest, sse), halted]);
    if (!r) throw new Error(haltReason);
    capacity = round(r.samples.length / (r.elapsedMs / 1000), 1);
    capacityErrors = r.errors;
    rate = round(capacity * fraction, 1);
    log(`capacity: ${capacity} req/s (${r.errors} errors); soaking at ${fraction} × = ${rate} req/s`);
  }
  await new Promise((r) => setTimeout(r, 3000)); // let the saturation phase's garbage settle
  await scrape(epp.info.metricsPort); // start the first lag window now
  log(`soak: ${rate} req/s open loop for ${minutes} min, a sample every ${sampleS} s, warm-up ${round(warmupMin, 2)} min`);
  soakS = await soak(epp, load, rate, minutes * 60_000);
  finishing = true;
  load.close();
} catch (err) {
  haltReason ??= (err as Error).message;
} finally {
  finishing = true;
  await Promise.all([stop(epp), stop(fleet)]);
}

// ---------- report ----------
const warmupS = warmupMin * 60;
const base = rows.find((r) => r.t >= warmupS);
const tail = rows.slice(-Math.max(1, Math.ceil(rows.length * 0.1)));
const tailMax = Math.max(...tail.map((r) => r.rssMB));
const usable = base !== undefined && tail[0].t > base.t;
const growth = usable ? round(((tailMax - base.rssMB) / base.rssMB) * 100, 2) : NaN;
const aborted = haltReason !== undefined && haltReason !== 'interrupted'; // llm-epp died, or a start failed
const pass = usable && growth < 5 && totalErrors === 0 && !aborted;
const why = !usable ? 'not enough samples after warm-up' : aborted ? haltReason : `RSS growth ${growth} % ${growth < 5 ? '<' : '≥'} 5 %, ${totalErrors} errors`;
const mid = (xs: number[]) => summarize(xs).p50;
const post = rows.filter((r) => r.t >= warmupS);
// Least-squares RSS trend after warm-up: tells a steady leak from a one-off step (which the growth figure also catches).
const mean = (f: (r: Row) => number) => post.reduce((a, r) => a + f(r), 0) / post.length;
const [mt, mr] = [mean((r) => r.t), mean((r) => r.rssMB)];
const slope = post.length > 2 ? round((mean((r) => (r.t - mt) * (r.rssMB - mr)) / mean((r) => (r.t - mt) ** 2)) * 3600, 1) : NaN;
const summary = {
  capacityReqPerS: capacity, capacityErrors, rateReqPerS: rate, soakSeconds: soakS, warmupSeconds: round(warmupS, 1), interrupted: haltReason === 'interrupted',
  stopReason: haltReason, behindSchedule: false, requests: totalOk + totalErrors, errors: totalErrors, errorKinds, achievedReqPerS: soakS ? round((totalOk + totalErrors) / soakS, 1) : 0,
  rssWarmupEndMB: base?.rssMB, rssTailMaxMB: tail.length ? tailMax : undefined, rssGrowthPercent: growth, rssTrendMBPerHour: slope,
  heapUsedMB: post.length ? { warmupEnd: post[0].heapUsedMB, end: post[post.length - 1].heapUsedMB } : undefined,
  decisionP99Ms: post.length ? { medianWindow: mid(post.map((r) => r.decisionP99Ms)), worstWindow: Math.max(...post.map((r) => r.decisionP99Ms)) } : undefined,
  loopLagP99Ms: post.length ? { medianWindow: mid(post.map((r) => r.lagP99Ms)), worstWindow: Math.max(...post.map((r) => r.lagP99Ms)) } : undefined,
  verdict: pass ? 'PASS' : 'FAIL', reason: why,
};
// Below the target rate, requests queued up (in llm-epp or in the load generator): the backlog inflates RSS and latency.
const behind = soakS > 0 && haltReason === undefined && summary.achievedReqPerS < 0.95 * rate;
summary.behindSchedule = behind;
mkdirSync(`${ROOT}bench/results`, { recursive: true });
const file = `${ROOT}bench/results/soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify({ meta, options: { minutes, pods, fixedRate, fraction, sampleS, warmupMin, capacityS, sseChunks }, summary, samples: rows }, null, 2));

// At most ~12 rows in the table (the JSON has every sample): evenly spaced, plus the warm-up end and the last.
const pickIdx = new Set<number>(rows.length ? [rows.length - 1] : []);
for (let k = 0; k < Math.min(10, rows.length); k++) pickIdx.add(Math.floor((k * rows.length) / Math.min(10, rows.length)));
if (base) pickIdx.add(rows.indexOf(base));
const md = [
  `## Soak — ${meta.date} (\`npm run soak${meta.args ? ' -- ' + meta.args : ''}\`)`, '',
  `Machine: ${meta.cpu} × ${meta.cores}, ${meta.memGB} GB, Node ${meta.node}; load generator, llm-epp and the fake fleet share the machine.`,
  `Workload: ${pods} pods, default scorers; chat prompts with one of 32 shared ~6k-token system prompts and a unique ~2k-token question (≈32 KB bodies in 16 KB chunks)${sse ? `, then a ${sseChunks}-chunk SSE response through the response path` : ''}. ` +
    (capacity !== undefined ? `Capacity (closed loop, 64 streams, ${capacityS} s): **${capacity} req/s**${capacityErrors ? ` (${capacityErrors} errors)` : ''}. ` : '') +
    (soakS ? `Soak: ${capacity !== undefined ? `${fraction} × capacity = ` : ''}**${rate} req/s** open loop for ${round(soakS / 60, 2)} min${haltReason ? ` (stopped early: ${haltReason})` : ''}; achieved ${summary.achievedReqPerS} req/s, ${summary.requests} requests. ` : `No soak: stopped before it began (${haltReason}). `) +
    `Latencies in ms; "late" = open-loop arrivals started behind schedule (load generator saturated); loop lag = prom-client's event-loop delay histogram over the window (10 ms resolution, so ≈10 ms when idle).`, '',
  '| t (s) | req/s | requests | errors | decision p50 | p99 | RSS MB | heap MB | loop lag p50 | p99 | max | late p99 |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...[...pickIdx].sort((a, b) => a - b).map((i) => rows[i]).map((r) =>
    `| ${r.t}${r === base ? ' (warm-up end)' : ''} | ${r.rps} | ${r.requests} | ${r.errors} | ${r.decisionP50Ms} | ${r.decisionP99Ms} | ${r.rssMB} | ${r.heapUsedMB} | ${r.lagP50Ms} | ${r.lagP99Ms} | ${r.lagMaxMs} | ${r.lateP99Ms} |`),
  '',
  `RSS growth after warm-up (first ${round(warmupMin, 2)} min) = (max RSS over the last 10 % of samples − RSS at end of warm-up) / RSS at end of warm-up` +
    (usable ? ` = (${tailMax} − ${base.rssMB}) / ${base.rssMB} = **${growth} %**.` : ': n/a.') +
    `${usable ? ` RSS trend after warm-up (least squares): ${slope} MB/h. Prefix index meanwhile: ${base.prefixIndexBlocks} → ${rows[rows.length - 1].prefixIndexBlocks} blocks.` : ''} Errors: **${totalErrors}**${totalErrors ? ` ${JSON.stringify(errorKinds)}` : ''}. Decision p99 per window after warm-up: median ${summary.decisionP99Ms?.medianWindow ?? 'n/a'}, worst ${summary.decisionP99Ms?.worstWindow ?? 'n/a'}; loop lag p99: median ${summary.loopLagP99Ms?.medianWindow ?? 'n/a'}, worst ${summary.loopLagP99Ms?.worstWindow ?? 'n/a'}.`,
  '',
  ...(behind ? [`**Warning**: achieved ${summary.achievedReqPerS} of ${rate} req/s, so requests queued up and RSS and latency include the backlog; rerun with a lower --load-fraction or --rate.`, ''] : []),
  `Verdict: **${summary.verdict}** (${why}; PASS = growth < 5 % and 0 errors)${haltReason === 'interrupted' ? ', on a run interrupted early' : ''}.`, '',
].join('\n');
process.stdout.write('\n' + md + `\nJSON: ${file}\n`);
process.exit(pass ? (haltReason === 'interrupted' ? 130 : 0) : 1);
