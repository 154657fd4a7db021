// Child processes of the benchmarks (fleets, llm-epp, gateways): start a Node script of
// this repository, wait for the JSON line that says it is ready, stop it, read its CPU time,
// memory and Prometheus metrics.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLK_TCK = 100;

export interface Child {
  proc: ChildProcess;
  info: Record<string, number>;
}

/** Start `node args…` in the repository root; resolves once `ready` maps a stdout line to info. */
export function start(args: string[], ready: (line: string) => Record<string, number> | undefined, stderr: 'inherit' | 'ignore' = 'inherit'): Promise<Child> {
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', stderr] });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${args.find((a) => a.endsWith('.ts')) ?? args[0]} did not start within 20 s`));
    }, 20_000);
    rl.on('line', (line) => {
      const info = ready(line);
      if (info) {
        clearTimeout(timer);
        resolve({ proc, info });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.find((a) => a.endsWith('.ts')) ?? args[0]} exited with ${code}`));
    });
  });
}

/** A stdout line as JSON, or undefined. */
export const json = (line: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
};

/** llm-epp's three ports, when a benchmark must know them before it starts (a replica restarted on the same ports). */
export interface EppPorts {
  grpc: number;
  health: number;
  metrics: number;
}

/**
 * llm-epp's command line in a benchmark: src/main.ts on free ports (those of `ports` when given),
 * plaintext, stopped at once by SIGTERM.
 */
export function eppBenchArgs(endpoints: string, extra: readonly string[] = [], ports?: EppPorts): string[] {
  return [
    'src/main.ts',
    `--endpoints=${endpoints}`,
    `--grpc-port=${ports?.grpc ?? 0}`,
    `--grpc-health-port=${ports?.health ?? 0}`,
    `--metrics-port=${ports?.metrics ?? 0}`,
    '--secure-serving=false',
    '--log-level=info',
    // Benchmarks stop llm-epp with SIGTERM and want it gone at once.
    '--shutdown-delay=0s',
    // One request thread unless a run asks for more (bench:epp --workers): figures stay
    // comparable across machines, and the EPPs a demo starts side by side do not each take every core.
    '--workers=1',
    ...extra,
  ];
}

/** Start llm-epp (plaintext, ports chosen by the OS) on a static pool; info {port, metricsPort}. */
export function startEpp(endpoints: string, extra: string[] = [], nodeArgs: string[] = [], stderr: 'inherit' | 'ignore' = 'inherit'): Promise<Child> {
  // As `npm start` and the container run it.
  const args = ['--max-semi-space-size=4', ...nodeArgs, ...eppBenchArgs(endpoints, extra)];
  return start(
    args,
    (l) => {
      const j = json(l) as { msg?: string; grpcPort?: number; metricsPort?: number } | undefined;
      return j?.msg === 'llm-epp serving' ? { port: j.grpcPort!, metricsPort: j.metricsPort! } : undefined;
    },
    stderr,
  );
}

export async function stop(c: Child | undefined): Promise<void> {
  if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  // SIGTERM first so a --cpu-prof profile gets written; SIGKILL if it lingers.
  const exited = new Promise<void>((r) => c.proc.once('exit', () => r()));
  c.proc.kill('SIGTERM');
  const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}

/** A process's resident memory now (VmRSS) or at its peak (VmHWM), MB. */
export function rssMB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A TCP port free on `host` a moment ago (for a child that must be told its port before it binds). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** One sample of llm-epp's /metrics (the first series of `name`). */
export async function eppMetric(metricsPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Wait until llm-epp has scraped `pods` pods and reports them ready. */
export async function waitReady(metricsPort: number, pods: number): Promise<void> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    if ((await eppMetric(metricsPort, 'inference_pool_ready_pods')) >= pods) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('pods never became ready in llm-epp');
}

/** A throwaway redis-server (no persistence) on 127.0.0.1:`port`, resolved once it accepts connections. */
export function startRedisServer(port: number): Promise<ChildProcess> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.once('error', (e) => reject(new Error(`redis-server: ${e.message} (install the Debian package redis-server)`)));
    proc.stdout!.on('data', (d: Buffer) => {
      if (/Ready to accept connections/.test(d.toString())) resolve(proc);
    });
  });
}
