// `npm run bench:epp`: llm-epp's hot path measured the way Envoy drives it.
// For each scenario it starts a fake vLLM fleet (real metric pages, scraped
// for real), llm-epp, and a bare ext_proc echo server on the same gRPC stack;
// the load generator (this process) sends the same streams to both, so every
// latency is also given as a ratio to that floor. Results: a JSON file in
// bench/results/ and a Markdown section appended to bench/RESULTS.md.
//
//   npm run bench:epp                          all scenarios (≈ 3–4 min)
//   npm run bench:epp -- --scenario headline   one scenario
//   npm run bench:epp -- --duration 2s --no-append
//   npm run bench:epp -- --help
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { parseDuration } from '../../src/units.ts';
import { parseFlags, runMain, UsageError } from '../lib/cli-flags.ts';
import { defaultConfigWithDetector } from '../lib/flow-config.ts';
import { runMeta } from '../lib/run-meta.ts';
import { ROOT, cpuSeconds, eppMetric, json, rssMB, start, startEpp as startEppProcess, stop, waitReady, type Child } from '../lib/processes.ts';
import { round, summarize, type Summary } from '../lib/stats.ts';
import { gatewayTable, runGatewayScenario, type GatewayPhase } from './gateway-scenario.ts';
import { ExtProcLoad, requestShape, sseResponse, type LoadResult, type RequestShape } from './load.ts';

// ---------- processes ----------

function startFleet(pods: number) {
  return start(['bench/epp/fleet.ts', `--pods=${pods}`], (l) => {
    const j = json(l) as { ports?: number[] } | undefined;
    return j?.ports ? Object.fromEntries(j.ports.map((p, i) => [String(i), p])) : undefined;
  });
}

function startEcho(destination?: string) {
  return start(['bench/epp/echo-server.ts', '--port=0', ...(destination ? [`--destination=${destination}`] : [])], (l) => {
    const j = json(l) as { port?: number } | undefined;
    return j?.port ? { port: j.port } : undefined;
  });
}

/** Extra node flags for the llm-epp process, e.g. --cpu-prof (set by --epp-node-args). */
let eppNodeArgs: string[] = [];

function startEpp(ports: number[], extra: string[]) {
  return startEppProcess(ports.map((p) => `127.0.0.1:${p}`).join(','), extra, eppNodeArgs);
}

// ---------- workloads ----------

function words(seed: number, chars: number): string {
  let s = '';
  for (let i = 0; s.length < chars; i++) s += `w${(seed * 7919 + i * 104729) % 50021} `;
  return s.slice(0, chars);
}

/** 8k-token chat request bodies: one of `groups` shared ~6k-token system prompts + a unique ~2k-token question. */
export function chatBodies(count: number, groups: number, systemChars = 24_000, questionChars = 8_000): Buffer[] {
  const systems = Array.from({ length: groups }, (_, g) => `System prompt ${g}. ` + words(g + 1, systemChars));
  return Array.from({ length: count }, (_, i) =>
    Buffer.from(
      JSON.stringify({
        model: 'meta-llama/Llama-3.1-8B-Instruct',
        stream: true,
        stream_options: { include_usage: true },
        messages: [
          { role: 'system', content: systems[i % groups] },
          { role: 'user', content: `Question ${i}: ` + words(100_000 + i, questionChars) },
        ],
      }),
    ),
  );
}

function chatWorkload(count: number, groups: number): RequestShape[] {
  return chatBodies(count, groups).map((b) => requestShape('/v1/chat/completions', b));
}

/** ≈100k-token completions prompts (≈ 400 KB bodies), each distinct. */
function longWorkload(count: number, chars = 400_000): RequestShape[] {
  return Array.from({ length: count }, (_, i) =>
    requestShape('/v1/completions', Buffer.from(JSON.stringify({ model: 'meta-llama/Llama-3.1-8B-Instruct', prompt: `Doc ${i}. ` + words(i + 7, chars) }))),
  );
}

// ---------- measuring ----------

interface Phase {
  name: string;
  target: 'epp' | 'echo';
  mode: string;
  requests: number;
  errors: number;
  errorKinds?: Record<string, number>;
  throughput: number;
  decisionMs: Summary;
  addedMs: Summary;
  responseMs?: Summary;
  scheduleDelayP99Ms?: number;
  cpuMsPerRequest?: number;
  cpuCorePercent?: number;
  eventLoopLagP99Ms?: number;
  eventLoopLagMaxMs?: number;
  rssMB?: number;
}

function roundSummary(s: Summary): Summary {
  return { count: s.count, mean: round(s.mean), p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), p999: round(s.p999), max: round(s.max) };
}

async function measure(
  name: string,
  target: 'epp' | 'echo',
  child: Child,
  run: (load: ExtProcLoad) => Promise<LoadResult>,
  mode: string,
  connections = 2,
): Promise<Phase> {
  const load = new ExtProcLoad(`127.0.0.1:${child.info.port}`, connections);
  // Warm-up: connections, JIT, first scrapes.
  await load.closedLoop(4, 300, (i) => warm[i % warm.length]);
  if (target === 'epp') await eppMetric(child.info.metricsPort, 'nodejs_eventloop_lag_p99_seconds'); // resets the lag window
  const cpu0 = cpuSeconds(child.proc.pid!);
  const r = await run(load);
  const cpu = cpuSeconds(child.proc.pid!) - cpu0;
  load.close();
  const n = r.samples.length;
  const phase: Phase = {
    name,
    target,
    mode,
    requests: n,
    errors: r.errors,
    throughput: round(n / (r.elapsedMs / 1000), 1),
    decisionMs: roundSummary(summarize(r.samples.map((s) => s.decisionMs))),
    addedMs: roundSummary(summarize(r.samples.map((s) => s.addedMs))),
    cpuMsPerRequest: n ? round((cpu * 1000) / n, 4) : undefined,
    cpuCorePercent: round((cpu / (r.elapsedMs / 1000)) * 100, 1),
    rssMB: round(rssMB(child.proc.pid!), 1),
  };
  if (r.errors) phase.errorKinds = r.errorKinds;
  if (r.samples.some((s) => s.responseMs > 0)) phase.responseMs = roundSummary(summarize(r.samples.map((s) => s.responseMs)));
  if (r.scheduleDelayMs.length) phase.scheduleDelayP99Ms = round(summarize(r.scheduleDelayMs).p99);
  if (target === 'epp') {
    phase.eventLoopLagP99Ms = round((await eppMetric(child.info.metricsPort, 'nodejs_eventloop_lag_p99_seconds')) * 1000);
    phase.eventLoopLagMaxMs = round((await eppMetric(child.info.metricsPort, 'nodejs_eventloop_lag_max_seconds')) * 1000);
  }
  log(`  ${name} [${target}] ${mode}: ${phase.throughput} req/s, added p50 ${phase.addedMs.p50} ms p99 ${phase.addedMs.p99} ms, decision p50 ${phase.decisionMs.p50} ms p99 ${phase.decisionMs.p99} ms${r.errors ? `, ${r.errors} errors ${JSON.stringify(r.errorKinds)}` : ''}`);
  return phase;
}

let warm: RequestShape[] = [];
const log = (s: string) => process.stderr.write(s + '\n');

// ---------- scenarios ----------

interface ScenarioResult {
  scenario: string;
  /** The scaling scenario: llm-epp's --workers in each phase. */
  workers?: number[];
  description: string;
  pods: number;
  phases: Phase[];
  /** Phases with the benchmark gateway in the path (the gateway scenario). */
  gateway?: GatewayPhase[];
  extra?: Record<string, number>;
}

interface Ctx {
  durationMs: number;
  rates: number[];
  quick: boolean;
  /** --workers: the worker counts of the scaling scenario. */
  workers: number[];
}

async function withProcesses<T>(pods: number, eppFlags: string[], fn: (fleet: Child, epp: Child, echo: Child) => Promise<T>): Promise<T> {
  let fleet: Child | undefined;
  let epp: Child | undefined;
  let echo: Child | undefined;
  try {
    fleet = await startFleet(pods);
    const ports = Object.values(fleet.info);
    [epp, echo] = await Promise.all([startEpp(ports, eppFlags), startEcho()]);
    await waitReady(epp.info.metricsPort, pods);
    return await fn(fleet, epp, echo);
  } finally {
    await Promise.all([stop(epp), stop(echo), stop(fleet)]);
  }
}

/** The headline workload (also the scaling scenario's): its pod count and request picker; sets the warm-up requests. */
function headlineWorkload(c: Ctx): { pods: number; pick: (i: number) => RequestShape } {
  const reqs = chatWorkload(c.quick ? 64 : 1024, 32);
  warm = reqs.slice(0, 16);
  return { pods: c.quick ? 4 : 64, pick: (i) => reqs[i % reqs.length] };
}

const SCENARIOS: Record<string, { description: string; run: (c: Ctx) => Promise<ScenarioResult> }> = {
  headline: {
    description: '8k-token chat prompts (32 shared ~6k-token system prompts + unique ~2k-token questions), 64 pods, default scorers, request path only',
    async run(c) {
      const { pods, pick } = headlineWorkload(c);
      const phases: Phase[] = [];
      await withProcesses(pods, [], async (_f, epp, echo) => {
        for (const [t, child] of [['echo', echo], ['epp', epp]] as const) {
          phases.push(await measure('saturation', t, child, (l) => l.closedLoop(64, c.durationMs, pick), 'closed loop, 64 streams'));
        }
        for (const rate of c.rates) {
          for (const [t, child] of [['echo', echo], ['epp', epp]] as const) {
            phases.push(await measure(`${rate} req/s`, t, child, (l) => l.openLoop(rate, c.durationMs, pick), `open loop ${rate}/s`));
          }
        }
      });
      return { scenario: 'headline', description: this.description, pods, phases };
    },
  },
  'flow-control': {
    description:
      'headline workload with the flowControl feature gate off, on, on, off (GAIE\'s default scorers; a saturation detector the pool never reaches, so nothing waits): what the gate costs a request that goes straight through',
    async run(c) {
      const { pods, pick } = headlineWorkload(c);
      const phases: Phase[] = [];
      // The fake pods' queues drift up to 20 whatever the load, which GAIE's detector would read as
      // saturation: thresholds no pod reaches keep the gate open, so this measures the gate's cost
      // to a request that goes straight through (the staleness window is the --metrics-staleness-threshold default).
      const detector = '{name: never-saturated, type: utilization-detector, parameters: {queueDepthThreshold: 1000, kvCacheUtilThreshold: 100, metricsStalenessThreshold: 2s}}';
      const withGate = `--config-text=${defaultConfigWithDetector(detector, 'never-saturated', true)}`;
      const withoutGate = `--config-text=${defaultConfigWithDetector(detector, 'never-saturated', false)}`;
      // Off, on, on, off (the second pair in reverse order), so a drift over the run weighs on both alike.
      const runs = [
        ['gate off', withoutGate],
        ['gate on', withGate],
        ['gate on, 2nd', withGate],
        ['gate off, 2nd', withoutGate],
      ] as const;
      for (const [label, arg] of runs) {
        await withProcesses(pods, [arg], async (_f, epp, echo) => {
          const targets = label === 'gate off' ? ([['echo', echo], ['epp', epp]] as const) : ([['epp', epp]] as const);
          for (const [t, child] of targets) {
            const tag = (p: Phase) => (t === 'epp' ? { ...p, name: `${p.name}, ${label}` } : p);
            phases.push(tag(await measure('saturation', t, child, (l) => l.closedLoop(64, c.durationMs, pick), 'closed loop, 64 streams')));
            for (const rate of c.rates) phases.push(tag(await measure(`${rate} req/s`, t, child, (l) => l.openLoop(rate, c.durationMs, pick), `open loop ${rate}/s`)));
          }
          if (label.startsWith('gate on')) {
            const [queued, outcomes] = await Promise.all([eppMetric(epp.info.metricsPort, 'llm_d_epp_flow_control_queue_size'), eppMetric(epp.info.metricsPort, 'llm_d_epp_flow_control_requests_total')]);
            log(`  flow control: ${outcomes} requests decided (first outcome series), queue size ${Number.isNaN(queued) ? 'never set: nothing ever waited' : queued}`);
          }
        });
      }
      return { scenario: 'flow-control', description: this.description, pods, phases };
    },
  },
  scaling: {
    description: 'headline workload over 16 gateway connections (Envoy opens one per worker thread) with llm-epp at each --workers count: saturation, then the open-loop rates',
    async run(c) {
      const { pods, pick } = headlineWorkload(c);
      const phases: Phase[] = [];
      const CONNECTIONS = 16;
      let fleet: Child | undefined;
      let echo: Child | undefined;
      try {
        fleet = await startFleet(pods);
        echo = await startEcho();
        const ports = Object.values(fleet.info);
        phases.push(await measure('saturation', 'echo', echo, (l) => l.closedLoop(64, c.durationMs, pick), 'closed loop, 64 streams', CONNECTIONS));
        for (const rate of c.rates) phases.push(await measure(`${rate} req/s`, 'echo', echo, (l) => l.openLoop(rate, c.durationMs, pick), `open loop ${rate}/s`, CONNECTIONS));
        for (const n of c.workers) {
          const epp = await startEpp(ports, [`--workers=${n}`]);
          try {
            await waitReady(epp.info.metricsPort, pods);
            const tag = (p: Phase) => ({ ...p, name: `${p.name}, ${n} worker${n > 1 ? 's' : ''}` });
            phases.push(tag(await measure('saturation', 'epp', epp, (l) => l.closedLoop(64, c.durationMs, pick), 'closed loop, 64 streams', CONNECTIONS)));
            for (const rate of c.rates) phases.push(tag(await measure(`${rate} req/s`, 'epp', epp, (l) => l.openLoop(rate, c.durationMs, pick), `open loop ${rate}/s`, CONNECTIONS)));
          } finally {
            await stop(epp);
          }
        }
      } finally {
        await Promise.all([stop(echo), stop(fleet)]);
      }
      return { scenario: 'scaling', description: this.description, pods, phases, workers: c.workers };
    },
  },
  long: {
    description: '≈100k-token prompts (≈400 KB bodies in 16 KB chunks), 64 pods, default scorers: 1 stream, then 100 concurrent streams',
    async run(c) {
      const pods = c.quick ? 4 : 64;
      const reqs = longWorkload(c.quick ? 8 : 200);
      warm = reqs.slice(0, 2);
      const pick = (i: number) => reqs[i % reqs.length];
      const phases: Phase[] = [];
      await withProcesses(pods, [], async (_f, epp, echo) => {
        for (const [t, child] of [['echo', echo], ['epp', epp]] as const) {
          phases.push(await measure('1 stream', t, child, (l) => l.closedLoop(1, c.durationMs, pick), 'closed loop, 1 stream'));
        }
        for (const [t, child] of [['echo', echo], ['epp', epp]] as const) {
          phases.push(await measure('100 streams', t, child, (l) => l.closedLoop(c.quick ? 8 : 100, c.durationMs, pick), `closed loop, ${c.quick ? 8 : 100} streams`));
        }
      });
      return { scenario: 'long', description: this.description, pods, phases };
    },
  },
  'prompt-size': {
    description: 'EPP-added latency against prompt size: completions prompts of 1 KB … 1 MB (16 KB chunks, distinct prompts), 64 pods, default scorers, 1 stream then 100 concurrent streams at each size, echo floor alongside',
    async run(c) {
      const pods = c.quick ? 4 : 64;
      const sizes = c.quick ? [1 << 10, 64 << 10] : [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];
      const streams = c.quick ? [1, 8] : [1, 100];
      const phases: Phase[] = [];
      await withProcesses(pods, [], async (_f, epp, echo) => {
        for (const size of sizes) {
          const reqs = longWorkload(c.quick ? 4 : 32, size);
          warm = reqs.slice(0, 2);
          const pick = (i: number) => reqs[i % reqs.length];
          const label = size >= 1 << 20 ? `${size >> 20} MB` : `${size >> 10} KB`;
          for (const n of streams) {
            for (const [t, child] of [['echo', echo], ['epp', epp]] as const) {
              phases.push(await measure(`${label}, ${n} stream${n > 1 ? 's' : ''}`, t, child, (l) => l.closedLoop(n, c.durationMs, pick), `closed loop, ${n} streams`));
            }
          }
        }
      });
      return { scenario: 'prompt-size', description: this.description, pods, phases };
    },
  },
  scrape: {
    description: '128 pods with realistic vLLM pages (histograms, ~25 KB) scraped every 50 ms: idle scrape cost, and decision latency at 1,000 req/s against scraping every 2 s',
    async run(c) {
      const pods = c.quick ? 8 : 128;
      const reqs = chatWorkload(c.quick ? 64 : 1024, 32);
      warm = reqs.slice(0, 16);
      const pick = (i: number) => reqs[i % reqs.length];
      const rate = c.quick ? 100 : 1000;
      const phases: Phase[] = [];
      const extra: Record<string, number> = {};
      await withProcesses(pods, [], async (_f, epp) => {
        const cpu0 = cpuSeconds(epp.proc.pid!);
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, c.durationMs));
        extra.idleScrapeCorePercent = round(((cpuSeconds(epp.proc.pid!) - cpu0) / ((performance.now() - t0) / 1000)) * 100, 1);
        log(`  idle, ${pods} pods scraped every 50 ms: ${extra.idleScrapeCorePercent} % of a core`);
        phases.push(await measure(`${rate} req/s, scrape 50ms`, 'epp', epp, (l) => l.openLoop(rate, c.durationMs, pick), `open loop ${rate}/s`));
      });
      await withProcesses(pods, ['--refresh-metrics-interval=2s', '--metrics-staleness-threshold=10s'], async (_f, epp) => {
        phases.push(await measure(`${rate} req/s, scrape 2s`, 'epp', epp, (l) => l.openLoop(rate, c.durationMs, pick), `open loop ${rate}/s`));
      });
      extra.decisionP99DeltaMs = round(phases[0].decisionMs.p99 - phases[1].decisionMs.p99);
      return { scenario: 'scrape', description: this.description, pods, phases, extra };
    },
  },
  response: {
    description: 'headline workload with the response path: 200-chunk SSE responses (usage at the end) passing through',
    async run(c) {
      const pods = c.quick ? 4 : 64;
      const reqs = chatWorkload(c.quick ? 64 : 1024, 32);
      warm = reqs.slice(0, 16);
      const pick = (i: number) => reqs[i % reqs.length];
      const sse = sseResponse(200);
      const rate = c.quick ? 50 : 150;
      const phases: Phase[] = [];
      await withProcesses(pods, [], async (_f, epp, echo) => {
        for (const [t, child] of [['echo', echo], ['epp', epp]] as const) {
          phases.push(await measure('saturation + SSE', t, child, (l) => l.closedLoop(64, c.durationMs, pick, sse), 'closed loop, 64 streams'));
        }
        for (const [t, child] of [['echo', echo], ['epp', epp]] as const) {
          phases.push(await measure(`${rate} req/s + SSE`, t, child, (l) => l.openLoop(rate, c.durationMs, pick, sse), `open loop ${rate}/s`));
        }
      });
      return { scenario: 'response', description: this.description, pods, phases };
    },
  },
  gateway: {
    description:
      'headline chat prompts over HTTP through the benchmark gateway (Envoy\'s stand-in, ext_proc FULL_DUPLEX_STREAMED) to 16 pods answering 16-event SSE streams; one gateway in front of llm-epp, one in front of the echo server; CPU per request of the EPP and of the gateway apart',
    async run(c) {
      const pods = c.quick ? 4 : 16;
      const bodies = chatBodies(c.quick ? 64 : 512, 32);
      let gateway: GatewayPhase[] = [];
      await withProcesses(pods, [], async (fleet, epp) => {
        gateway = await runGatewayScenario({ durationMs: c.durationMs, quick: c.quick, bodies, fleet, llmEpp: epp, startEcho, log });
      });
      return { scenario: 'gateway', description: this.description, pods, phases: [], gateway };
    },
  },
  memory: {
    description: '128 pods, prefix indexes filled to capacity (31,250 blocks each) by distinct ≈100k-token prompts; resident memory',
    async run(c) {
      const pods = c.quick ? 4 : 128;
      // Enough distinct 6,250-block prompts to fill 128 × 31,250 blocks with random placement.
      const count = c.quick ? 8 : Math.ceil(((pods * 31_250) / 6_250) * 1.3);
      const extra: Record<string, number> = {};
      const phases: Phase[] = [];
      // Random picks spread the prompts over every pod, so every index fills
      // (the default scorers would send them to the few least loaded pods).
      const config = [
        'apiVersion: inference.networking.x-k8s.io/v1alpha1',
        'kind: EndpointPickerConfig',
        'plugins: [{type: prefix-cache-scorer}, {type: random-picker}]',
        'schedulingProfiles: [{name: default, plugins: [{pluginRef: prefix-cache-scorer}, {pluginRef: random-picker}]}]',
      ].join('\n');
      await withProcesses(pods, [`--config-text=${config}`], async (_f, epp) => {
        const load = new ExtProcLoad(`127.0.0.1:${epp.info.port}`);
        let made = 0;
        let failed = 0;
        const t0 = performance.now();
        const worker = async () => {
          while (made < count) {
            const body = JSON.stringify({ model: 'meta-llama/Llama-3.1-8B-Instruct', prompt: `Doc ${made} ` + words(made * 13 + 5, 400_000) });
            made++;
            await load.one(requestShape('/v1/completions', Buffer.from(body))).catch(() => void failed++);
          }
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
        load.close();
        await new Promise((r) => setTimeout(r, 500));
        extra.fillSeconds = round((performance.now() - t0) / 1000, 1);
        extra.requests = made;
        extra.errors = failed;
        extra.prefixIndexerBlocks = await eppMetric(epp.info.metricsPort, 'inference_extension_prefix_indexer_size');
        extra.rssMB = round(rssMB(epp.proc.pid!), 1);
        extra.heapUsedMB = round((await eppMetric(epp.info.metricsPort, 'nodejs_heap_size_used_bytes')) / 1024 / 1024, 1);
        log(`  ${count} distinct 100k-token prompts: index ${extra.prefixIndexerBlocks} blocks, RSS ${extra.rssMB} MB`);
      });
      return { scenario: 'memory', description: this.description, pods, phases, extra };
    },
  },
};

// ---------- report ----------

function markdown(results: ScenarioResult[], meta: Record<string, unknown>): string {
  const out: string[] = [`## EPP hot path — ${meta.date} (\`npm run bench:epp${meta.args ? ' -- ' + meta.args : ''}\`)`, ''];
  out.push(`Machine: ${meta.cpu} × ${meta.cores}, ${meta.memGB} GB, Node ${meta.node}; load generator, llm-epp, echo server and fake fleet share the machine. Latencies in ms; "added" = last request-body byte sent → last echoed body byte received; "decision" = last body byte sent → destination received; ×floor = llm-epp ÷ echo server at the same load.`, '');
  for (const r of results) {
    out.push(`### ${r.scenario}: ${r.description}`, '');
    if (r.phases.length) {
      out.push('| phase | target | req/s | added p50 | p99 | p999 | decision p50 | p99 | ×floor p50 | CPU ms/req | loop lag p99 | RSS MB | errors |');
      out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      for (const p of r.phases) {
        const floor = r.phases.find((q) => q.target === 'echo' && (q.name === p.name || p.name.startsWith(q.name + ', ')));
        const ratio = p.target === 'epp' && floor ? round(p.addedMs.p50 / floor.addedMs.p50, 2) : '';
        out.push(
          `| ${p.name} | ${p.target} | ${p.throughput} | ${p.addedMs.p50} | ${p.addedMs.p99} | ${p.addedMs.p999} | ${p.decisionMs.p50} | ${p.decisionMs.p99} | ${ratio} | ${p.cpuMsPerRequest ?? ''} | ${p.eventLoopLagP99Ms ?? ''} | ${p.rssMB ?? ''} | ${p.errors} |`,
        );
      }
      out.push('');
    }
    if (r.gateway?.length) out.push(...gatewayTable(r.gateway), '');
    if (r.extra) out.push(Object.entries(r.extra).map(([k, v]) => `${k}: **${v}**`).join(' · '), '');
  }
  return out.join('\n');
}

export interface BenchOptions {
  scenarios: string[];
  durationMs: number;
  rates: number[];
  quick: boolean;
  append: boolean;
  args?: string;
  /** Worker counts of the scaling scenario (--workers 1,2,4); default 1,2. */
  workers?: number[];
  /** Where the JSON goes (default bench/results/). */
  resultsDir?: string;
}

export async function runBench(o: BenchOptions): Promise<{ results: ScenarioResult[]; file: string; markdown: string }> {
  const results: ScenarioResult[] = [];
  for (const name of o.scenarios) {
    const s = SCENARIOS[name];
    if (!s) throw new Error(`unknown scenario "${name}" (known: ${Object.keys(SCENARIOS).join(', ')})`);
    log(`scenario ${name}: ${s.description}`);
    results.push(await s.run({ durationMs: o.durationMs, rates: o.rates, quick: o.quick, workers: o.workers ?? [1, 2] }));
  }
  const meta = {
    ...runMeta(),
    args: o.args,
  };
  const dir = o.resultsDir ?? `${ROOT}bench/results`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/epp-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify({ meta, results }, null, 2));
  const md = markdown(results, meta);
  if (o.append) appendFileSync(`${ROOT}bench/RESULTS.md`, '\n' + md);
  return { results, file, markdown: md };
}

const DEFAULT_SCENARIOS = ['headline', 'long', 'prompt-size', 'scrape', 'response', 'gateway', 'memory'];

const USAGE = `Usage: npm run bench:epp -- [flags]
       npx node bench/epp/run.ts [flags]

llm-epp's hot path measured the way Envoy drives it, against a bare ext_proc
echo server (the floor), with a fake vLLM fleet. Writes a JSON file to
bench/results/ and appends a Markdown section to bench/RESULTS.md.

Flags:
  --scenario NAME      ${Object.keys(SCENARIOS).join(' | ')} (repeatable; default: all, ≈ 4 min)
  --duration D         length of each measured phase (default 5s)
  --rates R,R,…        open-loop rates of the headline scenario, req/s (default 1000,2000)
  --workers N,N,…      llm-epp --workers counts of the scaling scenario (default 1,2); given alone,
                       runs the scaling scenario only
  --quick              small fleets and workloads (a smoke run)
  --no-append          do not append to bench/RESULTS.md
  --epp-node-args A    extra node flags for llm-epp, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  -h, --help           this text

Scenarios:
${Object.entries(SCENARIOS)
  .map(([k, v]) => `  ${k.padEnd(10)} ${v.description}`)
  .join('\n')}
`;

/** The command line as bench options; a UsageError naming the flag on any mistake, undefined for --help. */
export function benchOptions(argv: string[]): (BenchOptions & { eppNodeArgs: string[] }) | undefined {
  const values = parseFlags(argv, {
    scenario: { type: 'string', multiple: true },
    duration: { type: 'string', default: '5s' },
    rates: { type: 'string', default: '1000,2000' },
    quick: { type: 'boolean', default: false },
    'no-append': { type: 'boolean', default: false },
    'epp-node-args': { type: 'string', default: '' },
    workers: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return undefined;
  const scenarios = values.scenario ?? (values.workers ? ['scaling'] : DEFAULT_SCENARIOS);
  const workers = (values.workers ?? '1,2').split(',').map(Number);
  if (workers.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) throw new UsageError(`--workers must be worker counts (1-256) separated by commas, got "${values.workers}"`);
  for (const name of scenarios) if (!SCENARIOS[name]) throw new UsageError(`unknown --scenario "${name}" (known: ${Object.keys(SCENARIOS).join(', ')})`);
  let durationMs: number;
  try {
    durationMs = parseDuration(values.duration);
  } catch {
    throw new UsageError(`--duration must be a duration like 5s or 500ms, got "${values.duration}"`);
  }
  if (!(durationMs > 0)) throw new UsageError(`--duration must be above zero, got "${values.duration}"`);
  const rates = values.rates.split(',').map(Number);
  if (rates.length === 0 || rates.some((r) => !(r > 0))) throw new UsageError(`--rates must be positive numbers separated by commas, got "${values.rates}"`);
  return {
    scenarios,
    durationMs,
    rates,
    quick: values.quick,
    workers,
    append: !values['no-append'],
    args: argv.join(' '),
    eppNodeArgs: values['epp-node-args'].split(' ').filter(Boolean),
  };
}

if (import.meta.main) {
  await runMain('bench:epp', async () => {
    const o = benchOptions(process.argv.slice(2));
    if (!o) {
      process.stdout.write(USAGE);
      return;
    }
    eppNodeArgs = o.eppNodeArgs;
    const { markdown: md, file } = await runBench(o);
    process.stdout.write(md + `\nJSON: ${file}\n`);
  });
  process.exit(0);
}
