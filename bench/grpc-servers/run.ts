// Is grpc-js the limit of llm-epp's CPU per request? The echo floor (a bare
// ext_proc server, no routing) on three gRPC stacks, driven by bench:epp's own
// load generator (bench/epp/load.ts: grpc-js client, Envoy-like
// FULL_DUPLEX_STREAMED streams) with bench:epp's headline bodies (8k-token chat
// prompts). Interleaved rounds, each server started fresh for its slot and the
// order rotated each round (A B C, B C A, C A B, …), so slow drifts of a shared
// machine fall on every server alike. Per server and round:
//   saturation: closed loop, 64 streams — req/s, server CPU ms per request,
//               load generator CPU ms per request (the client shares the cores);
//   fixed rate: open loop at --rate req/s — added p50/p99 (last body byte sent →
//               last echoed byte received), server CPU ms per request.
//
//   cd bench/grpc-servers && npm install && node run.ts
//   node run.ts --rounds 5 --duration 5s --rate 500 --servers grpc-js,node:http2,connect
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseDuration } from '../../src/units.ts';
import { parseFlags, runMain, UsageError } from '../lib/cli-flags.ts';
import { ROOT, rssMB, stop } from '../lib/processes.ts';
import { round, summarize } from '../lib/stats.ts';
import { ExtProcLoad, requestShape, type RequestShape } from '../epp/load.ts';
import { chatBodies } from '../epp/run.ts';
import { SERVERS, startServer, type ServerKind } from './servers.ts';

interface Round {
  round: number;
  /** Position of this server in the round's order (0 = first). */
  slot: number;
  satReqPerSec: number;
  satCpuMsPerReq: number;
  satClientCpuMsPerReq: number;
  satErrors: number;
  rateAchieved: number;
  rateCpuMsPerReq: number;
  addedP50Ms: number;
  addedP99Ms: number;
  decisionP50Ms: number;
  rateErrors: number;
  /** Share of the server's CPU spent in the kernel (socket I/O) during the fixed-rate phase. */
  rateKernelShare: number;
  scheduleDelayP99Ms: number;
  rssMB: number;
}

const log = (s: string) => process.stderr.write(s + '\n');

/** A process's user and kernel CPU seconds (/proc/PID/stat utime, stime; USER_HZ = 100). */
function cpuTimes(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
}

function cpuSince(pid: number, t0: { user: number; sys: number }): { total: number; kernelShare: number } {
  const t = cpuTimes(pid);
  const user = t.user - t0.user;
  const sys = t.sys - t0.sys;
  return { total: user + sys, kernelShare: user + sys > 0 ? sys / (user + sys) : NaN };
}

// ---------- workload: bench:epp's headline bodies (bench/epp/run.ts chatBodies) ----------

/** 8k-token chat requests: one of `groups` shared ~6k-token system prompts + a unique ~2k-token question, in 16 KB chunks. */
function chatWorkload(count: number, groups: number): RequestShape[] {
  return chatBodies(count, groups).map((b) => requestShape('/v1/chat/completions', b));
}

// ---------- one server, one round ----------

interface Options {
  rounds: number;
  durationMs: number;
  rate: number;
  rateDurationMs: number;
  streams: number;
  connections: number;
  servers: ServerKind[];
}

async function measureOne(s: ServerKind, o: Options, reqs: RequestShape[], roundNo: number, slot: number): Promise<Round> {
  const pick = (i: number) => reqs[i % reqs.length];
  const child = await startServer(s);
  const pid = child.proc.pid!;
  const load = new ExtProcLoad(`127.0.0.1:${child.info.port}`, o.connections);
  try {
    // Warm-up: connections, JIT on both sides.
    await load.closedLoop(16, 1000, pick);

    let cpu0 = cpuTimes(pid);
    const client0 = process.cpuUsage();
    const sat = await load.closedLoop(o.streams, o.durationMs, pick);
    const satCpu = cpuSince(pid, cpu0).total;
    const client = process.cpuUsage(client0);
    const n = sat.samples.length;

    await new Promise((r) => setTimeout(r, 200));
    cpu0 = cpuTimes(pid);
    const open = await load.openLoop(o.rate, o.rateDurationMs, pick);
    const openCpu = cpuSince(pid, cpu0);
    const m = open.samples.length;
    const added = summarize(open.samples.map((x) => x.addedMs));
    const r: Round = {
      round: roundNo,
      slot,
      satReqPerSec: round(n / (sat.elapsedMs / 1000), 1),
      satCpuMsPerReq: round((satCpu * 1000) / n, 4),
      satClientCpuMsPerReq: round((client.user + client.system) / 1000 / n, 4),
      satErrors: sat.errors,
      rateAchieved: round(m / (open.elapsedMs / 1000), 1),
      rateCpuMsPerReq: round((openCpu.total * 1000) / m, 4),
      rateKernelShare: round(openCpu.kernelShare, 2),
      addedP50Ms: round(added.p50),
      addedP99Ms: round(added.p99),
      decisionP50Ms: round(summarize(open.samples.map((x) => x.decisionMs)).p50),
      rateErrors: open.errors,
      scheduleDelayP99Ms: round(summarize(open.scheduleDelayMs).p99),
      rssMB: round(rssMB(pid), 1),
    };
    if (sat.errors || open.errors) log(`    errors: ${JSON.stringify({ ...sat.errorKinds, ...open.errorKinds })}`);
    return r;
  } finally {
    load.close();
    await stop(child);
  }
}

// ---------- report ----------

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
};

const COLUMNS: [keyof Round, string, number][] = [
  ['satReqPerSec', 'sat. req/s', 0],
  ['satCpuMsPerReq', 'server CPU ms/req @sat', 3],
  ['satClientCpuMsPerReq', 'client CPU ms/req @sat', 3],
  ['rateCpuMsPerReq', 'server CPU ms/req @rate', 3],
  ['addedP50Ms', 'added p50 ms', 2],
  ['addedP99Ms', 'added p99 ms', 2],
  ['rateKernelShare', 'kernel share of server CPU @rate', 2],
];

function table(o: Options, results: Map<string, Round[]>): string {
  const out: string[] = [];
  const head = ['server', ...COLUMNS.map(([, h]) => h.replace('@rate', `@${o.rate}/s`).replace('@sat', `@${o.streams} streams`)), 'errors'];
  out.push(`Medians of ${o.rounds} rounds; below each median, min–max over the rounds.`, '');
  out.push(`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`);
  for (const [name, rs] of results) {
    const cells = COLUMNS.map(([k, , d]) => {
      const v = rs.map((r) => r[k]);
      return `${median(v).toFixed(d)}<br>${Math.min(...v).toFixed(d)}–${Math.max(...v).toFixed(d)}`;
    });
    const errors = rs.reduce((a, r) => a + r.satErrors + r.rateErrors, 0);
    out.push(`| ${name} | ${cells.join(' | ')} | ${errors} |`);
  }
  const ref = results.get(o.servers[0].name);
  if (ref && results.size > 1) {
    out.push('', `Relative to ${o.servers[0].name} (median of per-round ratios, same round):`, '');
    out.push(`| server | sat. req/s | server CPU ms/req @sat | server CPU ms/req @${o.rate}/s | added p50 |`, '|---|---:|---:|---:|---:|');
    for (const [name, rs] of results) {
      if (name === o.servers[0].name) continue;
      const ratio = (k: keyof Round) => median(rs.map((r, i) => r[k] / ref[i][k])).toFixed(2);
      out.push(`| ${name} | ×${ratio('satReqPerSec')} | ×${ratio('satCpuMsPerReq')} | ×${ratio('rateCpuMsPerReq')} | ×${ratio('addedP50Ms')} |`);
    }
  }
  return out.join('\n');
}

function perRound(results: Map<string, Round[]>): string {
  const out = ['| round | server | slot | sat. req/s | server CPU ms/req @sat | client CPU ms/req @sat | server CPU ms/req @rate | kernel share @rate | rate achieved | added p50 | added p99 | RSS MB |', '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  const all = [...results].flatMap(([name, rs]) => rs.map((r) => ({ name, ...r })));
  all.sort((a, b) => a.round - b.round || a.slot - b.slot);
  for (const r of all) {
    out.push(`| ${r.round} | ${r.name} | ${r.slot + 1} | ${r.satReqPerSec} | ${r.satCpuMsPerReq} | ${r.satClientCpuMsPerReq} | ${r.rateCpuMsPerReq} | ${r.rateKernelShare} | ${r.rateAchieved} | ${r.addedP50Ms} | ${r.addedP99Ms} | ${r.rssMB} |`);
  }
  return out.join('\n');
}

// ---------- main ----------

const USAGE = `Usage: node run.ts [flags]     (in bench/grpc-servers, after npm install there)

The ext_proc echo floor on grpc-js, on node:http2 directly and on Connect's Node
server, measured interleaved with bench:epp's load generator and headline bodies.

Flags:
  --rounds N          interleaved rounds (default 5; at least 3 advised)
  --duration D        saturation phase per server and round (default 5s)
  --rate R            open-loop rate of the latency phase, req/s (default 500)
  --rate-duration D   length of the latency phase (default 5s)
  --streams N         closed-loop streams (default 64)
  --connections N     HTTP/2 connections of the load generator (default 2)
  --servers A,B,…     ${SERVERS.map((s) => s.name).join(',')} (default all, first is the reference)
  -h, --help          this text
`;

function options(argv: string[]): Options | undefined {
  const v = parseFlags(argv, {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5s' },
    rate: { type: 'string', default: '500' },
    'rate-duration': { type: 'string', default: '5s' },
    streams: { type: 'string', default: '64' },
    connections: { type: 'string', default: '2' },
    servers: { type: 'string', default: SERVERS.map((s) => s.name).join(',') },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (v.help) return undefined;
  const int = (name: string, s: string, min: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${s}"`);
    return n;
  };
  const dur = (name: string, s: string) => {
    try {
      const ms = parseDuration(s);
      if (ms > 0) return ms;
    } catch {
      // reported below
    }
    throw new UsageError(`--${name} must be a duration like 5s or 500ms, got "${s}"`);
  };
  const servers = v.servers.split(',').map((name) => {
    const s = SERVERS.find((k) => k.name === name);
    if (!s) throw new UsageError(`unknown server "${name}" (known: ${SERVERS.map((k) => k.name).join(', ')})`);
    return s;
  });
  const rate = Number(v.rate);
  if (!(rate > 0)) throw new UsageError(`--rate must be a positive number, got "${v.rate}"`);
  return {
    rounds: int('rounds', v.rounds, 1),
    durationMs: dur('duration', v.duration),
    rate,
    rateDurationMs: dur('rate-duration', v['rate-duration']),
    streams: int('streams', v.streams, 1),
    connections: int('connections', v.connections, 1),
    servers,
  };
}

if (import.meta.main) {
  await runMain('grpc-servers', async () => {
    const o = options(process.argv.slice(2));
    if (!o) {
      process.stdout.write(USAGE);
      return;
    }
    const reqs = chatWorkload(1024, 32);
    const meta = {
      date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      loadavgBefore: loadavg().map((x) => round(x, 2)),
      bodyBytes: round(reqs.reduce((a, r) => a + r.bodyBytes, 0) / reqs.length, 0),
      args: process.argv.slice(2).join(' '),
    };
    log(`${o.servers.length} servers × ${o.rounds} rounds; ${meta.cores} × ${meta.cpu}, Node ${meta.node}, load average ${meta.loadavgBefore.join(' ')}; bodies ≈ ${meta.bodyBytes} bytes`);
    const results = new Map<string, Round[]>(o.servers.map((s) => [s.name, []]));
    const t0 = performance.now();
    for (let r = 0; r < o.rounds; r++) {
      const k = r % o.servers.length;
      const order = [...o.servers.slice(k), ...o.servers.slice(0, k)];
      for (const [slot, s] of order.entries()) {
        const m = await measureOne(s, o, reqs, r + 1, slot);
        results.get(s.name)!.push(m);
        log(
          `  round ${r + 1} ${s.name.padEnd(10)} sat ${m.satReqPerSec} req/s, CPU ${m.satCpuMsPerReq} ms/req (client ${m.satClientCpuMsPerReq}) | ${o.rate}/s: CPU ${m.rateCpuMsPerReq} ms/req, added p50 ${m.addedP50Ms} p99 ${m.addedP99Ms} ms${m.satErrors + m.rateErrors ? `, ${m.satErrors + m.rateErrors} errors` : ''}`,
        );
      }
    }
    const loadavgAfter = loadavg().map((x) => round(x, 2));
    const elapsedS = round((performance.now() - t0) / 1000, 0);
    // Each round's rows in round order; medians and ratios need them aligned by round.
    for (const rs of results.values()) rs.sort((a, b) => a.round - b.round);
    const md = [
      `## ext_proc echo floor by gRPC stack — ${meta.date}`,
      '',
      `Machine: ${meta.cores} × ${meta.cpu}, Node ${meta.node}; load average ${meta.loadavgBefore.join(' ')} before, ${loadavgAfter.join(' ')} after; ${elapsedS} s. Load generator (grpc-js client, ${o.connections} connections) and server share the machine. Bodies: bench:epp headline chat prompts, ≈ ${meta.bodyBytes} bytes in 16 KB chunks. Saturation: closed loop, ${o.streams} streams, ${o.durationMs / 1000} s; latency: open loop ${o.rate} req/s, ${o.rateDurationMs / 1000} s.`,
      '',
      ...o.servers.map((s) => `- **${s.name}**: ${s.stack}`),
      '',
      table(o, results),
      '',
      '<details><summary>Every round</summary>',
      '',
      perRound(results),
      '',
      '</details>',
    ].join('\n');
    const dir = `${ROOT}bench/results`;
    mkdirSync(dir, { recursive: true });
    const file = `${dir}/grpc-servers-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
    writeFileSync(file, JSON.stringify({ meta: { ...meta, loadavgAfter, elapsedS }, options: { ...o, servers: o.servers.map((s) => s.name) }, results: Object.fromEntries(results) }, null, 2));
    process.stdout.write(md + `\n\nJSON: ${file}\n`);
  });
  process.exit(0);
}
