// CPU per request of the benchmark gateway (bench/gateway/gateway.ts), the
// part of the llm-epp path that stands in for Envoy. Each target runs in its
// own process in front of the same instant upstream (bench/gateway/fake-upstream.ts):
//
//   epp          the gateway with an ext_proc EPP that decides nothing
//                (bench/epp/echo-server.ts: headers reply + body echo), so
//                what is measured is the gateway's ext_proc and proxy work;
//   round-robin  the gateway's baseline path (no ext_proc);
//   floor        a plain node:http proxy (bench/gateway/plain-proxy.ts).
//
// For each scenario and run, the targets take turns; each gets `--requests`
// requests at `--concurrency` over keep-alive connections, and its CPU time
// (utime + stime from /proc) is divided by the requests. Reported: min /
// median / max CPU ms per request over the runs, and the ratio to the floor.
//
//   npx node bench/gateway.bench.ts
//   npx node bench/gateway.bench.ts --scenario short --runs 3 --requests 500
//   npx node bench/gateway.bench.ts --gateway /tmp/old/gateway.ts   (another gateway build, same flags)
import { cpus } from 'node:os';
import { Pool } from 'undici';
import { buildAnswers } from './gateway/fake-upstream.ts';
import { boolFlag, numFlag } from './lib/args.ts';
import { parseFlags, runMain, UsageError } from './lib/cli-flags.ts';
import { cpuSeconds, json, start, stop, type Child } from './lib/processes.ts';
import { round } from './lib/stats.ts';

interface Scenario {
  description: string;
  path: string;
  bodyBytes: number;
  /** Share of --requests this scenario sends (a streamed answer takes longer). */
  share: number;
}

// Events apart in time, as tokens are: each is its own read and write on
// every hop, so a slower gateway cannot look cheaper by batching them.
const SSE_CHUNKS = 16;
const SSE_GAP_MS = 1;

const SCENARIOS: Record<string, Scenario> = {
  short: { description: '≈1 KB completions request, ≈300 B JSON answer', path: '/v1/completions', bodyBytes: 1_000, share: 1 },
  sse: { description: `≈1 KB chat request, ${SSE_CHUNKS}-event SSE answer, events ${SSE_GAP_MS} ms apart`, path: '/v1/chat/completions', bodyBytes: 1_000, share: 0.25 },
  large: { description: '≈200 KB completions request, ≈300 B JSON answer', path: '/v1/completions', bodyBytes: 200_000, share: 1 },
};

const USAGE = `Usage: npx node bench/gateway.bench.ts [options]

CPU ms per request of the benchmark gateway (--strategy epp with an echo EPP,
and round-robin) against a plain node:http proxy (the floor), all in front of
the same fake upstream (bench/gateway/fake-upstream.ts), which answers at once.

Options:
  --scenario NAME     ${Object.keys(SCENARIOS).join(' | ')} (repeatable; default: all)
  --requests N        requests per target per run (default 1000)
  --runs N            runs; targets take turns in each (default 5)
  --concurrency N     requests in flight (default 1)
  --gateway FILE      the gateway script to measure (default bench/gateway/gateway.ts);
                      repeat to compare builds side by side (e.g. a copy of an older one)
  --node-args ARGS    extra node flags for the gateway processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  --markdown BOOL     print a Markdown table too (default true)
  -h, --help          this text
`;

function body(bytes: number): Buffer {
  const words: string[] = [];
  let len = 0;
  for (let i = 0; len < bytes; i++) {
    const w = `w${(i * 7919) % 50021}`;
    words.push(w);
    len += w.length + 1;
  }
  return Buffer.from(JSON.stringify({ model: 'sim-model', prompt: words.join(' ').slice(0, bytes), max_tokens: 3, stream: false }));
}

const portLine = (l: string) => {
  const j = json(l) as { port?: number } | undefined;
  return j?.port ? { port: j.port } : undefined;
};

/** Send `n` requests at `concurrency`; throws on any non-200 or short answer. */
async function drive(pool: Pool, path: string, payload: Buffer, n: number, concurrency: number, expectBytes: number): Promise<void> {
  let sent = 0;
  const worker = async () => {
    while (sent < n) {
      sent++;
      const res = await pool.request({ path, method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
      let got = 0;
      for await (const c of res.body) got += (c as Buffer).length;
      if (res.statusCode !== 200 || got !== expectBytes) throw new Error(`${path}: status ${res.statusCode}, ${got} of ${expectBytes} bytes`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

interface Row {
  scenario: string;
  /** epp, round-robin (suffixed with the script when several are compared), or floor. */
  target: string;
  cpuMsPerRequest: number[];
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export interface GatewayBenchOptions {
  scenarios: string[];
  requests: number;
  runs: number;
  concurrency: number;
  /** Gateway scripts to measure side by side (same flags), e.g. this one and an older copy. */
  gatewayScripts: string[];
  /** Extra node flags for the gateway processes. */
  nodeArgs?: string[];
  log?: (s: string) => void;
}

export async function runGatewayBench(o: GatewayBenchOptions): Promise<Row[]> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const answers = buildAnswers({ sseChunks: SSE_CHUNKS, sseGapMs: SSE_GAP_MS });
  const children: Child[] = [];
  const rows: Row[] = [];
  try {
    const upstream = await start(['bench/gateway/fake-upstream.ts', '--port=0', `--sse-chunks=${SSE_CHUNKS}`, `--sse-gap-ms=${SSE_GAP_MS}`], portLine);
    children.push(upstream);
    const up = `127.0.0.1:${upstream.info.port}`;
    const echo = await start(['bench/epp/echo-server.ts', '--port=0', `--destination=${up}`], portLine);
    children.push(echo);
    const targets: { name: string; child: Child; pool?: Pool }[] = [];
    for (const script of o.gatewayScripts) {
      const gw = [...(o.nodeArgs ?? []), script];
      const suffix = o.gatewayScripts.length > 1 ? ` (${script})` : '';
      targets.push({ name: `epp${suffix}`, child: await start([...gw, '--port=0', '--strategy=epp', `--epp=127.0.0.1:${echo.info.port}`], portLine) });
      targets.push({ name: `round-robin${suffix}`, child: await start([...gw, '--port=0', '--strategy=round-robin', `--endpoints=${up}`], portLine) });
    }
    targets.push({ name: 'floor', child: await start(['bench/gateway/plain-proxy.ts', '--port=0', `--upstream=${up}`], portLine) });
    for (const t of targets) {
      children.push(t.child);
      t.pool = new Pool(`http://127.0.0.1:${t.child.info.port}`, { connections: o.concurrency, pipelining: 1 });
    }
    log(`pids: ${targets.map((t) => `${t.name} ${t.child.proc.pid}`).join(', ')}`);
    try {
      for (const name of o.scenarios) {
        const sc = SCENARIOS[name];
        const payload = body(sc.bodyBytes);
        const expectBytes = sc.path.startsWith('/v1/chat/') ? answers.sseBytes : answers.json.length;
        const n = Math.max(1, Math.round(o.requests * sc.share));
        log(`${name}: ${sc.description}; ${n} requests × ${o.runs} runs at concurrency ${o.concurrency}`);
        const byTarget = new Map<string, number[]>(targets.map((t) => [t.name, []]));
        // Warm-up: connections, JIT.
        for (const t of targets) await drive(t.pool!, sc.path, payload, Math.min(200, n), o.concurrency, expectBytes);
        for (let r = 0; r < o.runs; r++) {
          for (const t of targets) {
            const pid = t.child.proc.pid!;
            const cpu0 = cpuSeconds(pid);
            await drive(t.pool!, sc.path, payload, n, o.concurrency, expectBytes);
            byTarget.get(t.name)!.push(((cpuSeconds(pid) - cpu0) * 1000) / n);
          }
          log(`  run ${r + 1}: ${targets.map((t) => `${t.name} ${round(byTarget.get(t.name)!.at(-1)!, 3)}`).join(', ')} CPU ms/req`);
        }
        for (const t of targets) rows.push({ scenario: name, target: t.name, cpuMsPerRequest: byTarget.get(t.name)! });
      }
    } finally {
      await Promise.all(targets.map((t) => t.pool?.close()));
    }
  } finally {
    await Promise.all(children.map((c) => stop(c)));
  }
  return rows;
}

export function markdownTable(rows: Row[]): string {
  const out = ['| scenario | target | CPU ms/req min | median | max | × floor (median) |', '|---|---|---:|---:|---:|---:|'];
  for (const r of rows) {
    const floor = rows.find((q) => q.scenario === r.scenario && q.target === 'floor');
    const m = median(r.cpuMsPerRequest);
    const ratio = floor && r.target !== 'floor' ? round(m / median(floor.cpuMsPerRequest), 2) : '';
    out.push(`| ${r.scenario} | ${r.target} | ${round(Math.min(...r.cpuMsPerRequest), 3)} | ${round(m, 3)} | ${round(Math.max(...r.cpuMsPerRequest), 3)} | ${ratio} |`);
  }
  return out.join('\n');
}

if (import.meta.main) {
  await runMain('gateway.bench', async () => {
    const values = parseFlags(process.argv.slice(2), {
      scenario: { type: 'string', multiple: true },
      requests: { type: 'string', default: '1000' },
      runs: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1' },
      gateway: { type: 'string', multiple: true },
      'node-args': { type: 'string', default: '' },
      markdown: { type: 'string', default: 'true' },
      help: { type: 'boolean', short: 'h', default: false },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return;
    }
    const usage = <T>(f: () => T): T => {
      try {
        return f();
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    };
    const scenarios = values.scenario ?? Object.keys(SCENARIOS);
    for (const s of scenarios) if (!SCENARIOS[s]) throw new UsageError(`unknown --scenario "${s}" (known: ${Object.keys(SCENARIOS).join(', ')})`);
    const o: GatewayBenchOptions = {
      scenarios,
      requests: usage(() => numFlag('requests', values.requests, true, 1)!),
      runs: usage(() => numFlag('runs', values.runs, true, 1)!),
      concurrency: usage(() => numFlag('concurrency', values.concurrency, true, 1)!),
      gatewayScripts: values.gateway ?? ['bench/gateway/gateway.ts'],
      nodeArgs: values['node-args'].split(' ').filter(Boolean),
    };
    const md = usage(() => boolFlag('markdown', values.markdown)!);
    const rows = await runGatewayBench(o);
    const result = { machine: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`, node: process.version, options: o, rows };
    process.stdout.write(JSON.stringify(result) + '\n');
    if (md) process.stdout.write('\n' + markdownTable(rows) + '\n');
  });
  process.exit(0);
}
