// bench:epp's `gateway` scenario: HTTP requests through the benchmark gateway
// (bench/gateway/gateway.ts, standing in for Envoy) to llm-epp and on to the
// fake fleet's pods, and the same through a second gateway whose EPP is the
// bare echo server (the floor). Each process's CPU is measured on its own, so
// the table tells the EPP's cost from the gateway's; the gateway's event-loop
// lag comes from its GET /gateway/stats.
import { Pool } from 'undici';
import type { GatewayStats } from '../gateway/stats.ts';
import { cpuSeconds, eppMetric, json, start, stop, type Child } from '../lib/processes.ts';
import { round, summarize, type Summary } from '../lib/stats.ts';

export interface GatewayPhase {
  name: string;
  /** The EPP behind the gateway: llm-epp, or the echo server (floor). */
  epp: 'llm-epp' | 'echo';
  mode: string;
  requests: number;
  errors: number;
  errorKinds?: Record<string, number>;
  throughput: number;
  /** Client-side: request sent → last response byte. */
  latencyMs: Summary;
  eppCpuMsPerRequest: number;
  gatewayCpuMsPerRequest: number;
  eppLoopLagP99Ms?: number;
  gatewayLoopLagP99Ms: number;
  gatewayLoopLagMaxMs: number;
}

export interface GatewayScenarioContext {
  durationMs: number;
  quick: boolean;
  /** Request bodies for /v1/chat/completions (streamed answers). */
  bodies: Buffer[];
  fleet: Child;
  llmEpp: Child;
  /** Start the echo server routing to this endpoint. */
  startEcho: (destination: string) => Promise<Child>;
  log: (s: string) => void;
}

const portLine = (l: string) => {
  const j = json(l) as { port?: number } | undefined;
  return j?.port ? { port: j.port } : undefined;
};

function startGatewayProcess(eppPort: number): Promise<Child> {
  return start(['bench/gateway/gateway.ts', '--port=0', '--strategy=epp', `--epp=127.0.0.1:${eppPort}`], portLine);
}

async function gatewayStats(port: number): Promise<GatewayStats> {
  return (await (await fetch(`http://127.0.0.1:${port}/gateway/stats`)).json()) as GatewayStats;
}

interface HttpLoad {
  latencies: number[];
  errors: number;
  errorKinds: Record<string, number>;
  elapsedMs: number;
}

/** `concurrency` requests back to back for `durationMs` (or `count` requests when given). */
async function closedLoop(pool: Pool, bodies: Buffer[], concurrency: number, durationMs: number, count = Infinity): Promise<HttpLoad> {
  const r: HttpLoad = { latencies: [], errors: 0, errorKinds: {}, elapsedMs: 0 };
  const t0 = performance.now();
  const end = t0 + durationMs;
  let i = 0;
  const worker = async () => {
    while (performance.now() < end && i < count) {
      const body = bodies[i++ % bodies.length];
      const s = performance.now();
      try {
        const res = await pool.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.body.dump({ limit: Infinity });
        if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
        r.latencies.push(performance.now() - s);
      } catch (err) {
        r.errors++;
        const kind = (err as Error).message.slice(0, 60);
        r.errorKinds[kind] = (r.errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  r.elapsedMs = performance.now() - t0;
  return r;
}

async function measure(name: string, epp: GatewayPhase['epp'], gateway: Child, eppChild: Child, c: GatewayScenarioContext, concurrency: number): Promise<GatewayPhase> {
  const pool = new Pool(`http://127.0.0.1:${gateway.info.port}`, { connections: concurrency, pipelining: 1 });
  try {
    await closedLoop(pool, c.bodies, concurrency, 10_000, 50); // warm-up
    await gatewayStats(gateway.info.port); // starts the lag window
    if (epp === 'llm-epp') await eppMetric(c.llmEpp.info.metricsPort, 'nodejs_eventloop_lag_p99_seconds');
    const g0 = cpuSeconds(gateway.proc.pid!);
    const e0 = cpuSeconds(eppChild.proc.pid!);
    const r = await closedLoop(pool, c.bodies, concurrency, c.durationMs);
    const g = cpuSeconds(gateway.proc.pid!) - g0;
    const e = cpuSeconds(eppChild.proc.pid!) - e0;
    const lag = (await gatewayStats(gateway.info.port)).loopLag;
    const n = r.latencies.length;
    const s = summarize(r.latencies);
    const phase: GatewayPhase = {
      name,
      epp,
      mode: `closed loop, ${concurrency} stream${concurrency > 1 ? 's' : ''}`,
      requests: n,
      errors: r.errors,
      throughput: round(n / (r.elapsedMs / 1000), 1),
      latencyMs: { count: s.count, mean: round(s.mean), p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), p999: round(s.p999), max: round(s.max) },
      eppCpuMsPerRequest: n ? round((e * 1000) / n, 4) : NaN,
      gatewayCpuMsPerRequest: n ? round((g * 1000) / n, 4) : NaN,
      gatewayLoopLagP99Ms: lag.p99Ms,
      gatewayLoopLagMaxMs: lag.maxMs,
    };
    if (r.errors) phase.errorKinds = r.errorKinds;
    if (epp === 'llm-epp') phase.eppLoopLagP99Ms = round((await eppMetric(c.llmEpp.info.metricsPort, 'nodejs_eventloop_lag_p99_seconds')) * 1000);
    c.log(
      `  ${name} [${epp}]: ${phase.throughput} req/s, latency p50 ${phase.latencyMs.p50} ms, CPU ms/req: EPP ${phase.eppCpuMsPerRequest}, gateway ${phase.gatewayCpuMsPerRequest}${r.errors ? `, ${r.errors} errors ${JSON.stringify(r.errorKinds)}` : ''}`,
    );
    return phase;
  } finally {
    await pool.close();
  }
}

export async function runGatewayScenario(c: GatewayScenarioContext): Promise<GatewayPhase[]> {
  const pod = `127.0.0.1:${Object.values(c.fleet.info)[0]}`;
  let echo: Child | undefined;
  let viaEpp: Child | undefined;
  let viaEcho: Child | undefined;
  const phases: GatewayPhase[] = [];
  try {
    echo = await c.startEcho(pod);
    [viaEpp, viaEcho] = await Promise.all([startGatewayProcess(c.llmEpp.info.port), startGatewayProcess(echo.info.port)]);
    for (const concurrency of c.quick ? [1, 4] : [1, 16]) {
      const name = `${concurrency} stream${concurrency > 1 ? 's' : ''}`;
      phases.push(await measure(name, 'echo', viaEcho, echo, c, concurrency));
      phases.push(await measure(name, 'llm-epp', viaEpp, c.llmEpp, c, concurrency));
    }
  } finally {
    await Promise.all([stop(viaEpp), stop(viaEcho), stop(echo)]);
  }
  return phases;
}

/** The scenario's Markdown table: the EPP's and the gateway's CPU side by side. */
export function gatewayTable(phases: GatewayPhase[]): string[] {
  const out = [
    'Each process measured on its own: "EPP" is llm-epp or the echo server behind the gateway; latency = request sent → last response byte, at the client.',
    '',
    '| phase | EPP | req/s | latency p50 | p99 | EPP CPU ms/req | gateway CPU ms/req | EPP loop lag p99 | gateway loop lag p99 | errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of phases) {
    out.push(
      `| ${p.name} | ${p.epp} | ${p.throughput} | ${p.latencyMs.p50} | ${p.latencyMs.p99} | ${p.eppCpuMsPerRequest} | ${p.gatewayCpuMsPerRequest} | ${p.eppLoopLagP99Ms ?? ''} | ${p.gatewayLoopLagP99Ms} | ${p.errors} |`,
    );
  }
  return out;
}
