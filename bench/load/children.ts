// The processes the demo starts (the simulated fleet, llm-epp, the gateways):
// started with the lag probe preloaded (lag-probe.ts) so their event-loop lag
// can be measured, in their own process group so a Ctrl-C reaches only the
// demo (which then stops them after writing its partial report), and with
// their first error lines kept, so a child that fails to start says why in
// its own words ("--config-file x.yaml: ENOENT …") instead of "exited with 1".
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { probeLagSource, type LagSource } from './probes.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROBE = new URL('./lag-probe.ts', import.meta.url).href;
/** Lines of a child's error output kept, and their length. */
const MAX_LINES = 12;
const MAX_LINE = 400;
const PINO_ERROR = 50;
export const START_TIMEOUT_MS = 30_000;

export interface StartedChild {
  /** For stop() in bench/lib/processes.ts. */
  proc: ChildProcess;
  info: Record<string, number>;
  label: string;
  pid: number;
  /** The child's event-loop lag (its lag probe), once the probe announced its port. */
  lag: LagSource;
  /** The first error lines it printed. */
  errors(): string[];
}

/**
 * The error text of one output line: a pino line at level ≥ error as "msg: err" (its newlines
 * kept, so a YAML caret lines up), other JSON lines nothing, any other text as is.
 */
export function errorLines(line: string): string[] {
  const t = line.trimEnd();
  // Blank lines and stack frames say nothing a user can act on.
  if (t === '' || /^\s+at /.test(t)) return [];
  if (t.startsWith('{')) {
    try {
      const j = JSON.parse(t) as { level?: unknown; msg?: unknown; err?: unknown };
      if (typeof j.level !== 'number' || j.level < PINO_ERROR) return [];
      const err = typeof j.err === 'string' ? j.err : j.err && typeof j.err === 'object' ? String((j.err as { message?: unknown }).message ?? JSON.stringify(j.err)) : '';
      return `${typeof j.msg === 'string' ? j.msg : 'error'}${err ? ': ' + err : ''}`.split('\n');
    } catch {
      // Not JSON after all: the text.
    }
  }
  return [t];
}

export interface StartOptions {
  /** Name in messages ("llm-epp", "fleet", "gateway round-robin"). */
  label: string;
  /** Node flags before the script. */
  nodeArgs?: string[];
  /** Script (relative to the repository root) and its flags. */
  args: string[];
  /** Maps a stdout line to the child's info once it is ready. */
  ready: (line: string) => Record<string, number> | undefined;
  /** Measure the event-loop lag with the preloaded probe. Default true. */
  probe?: boolean;
}

/** Start a Node child of this repository and wait until `ready` accepts a stdout line. */
export function startChild(o: StartOptions): Promise<StartedChild> {
  const probe = o.probe ?? true;
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), ...(probe ? ['--import', PROBE] : []), ...o.args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a terminal's Ctrl-C goes to the demo only, which stops its children itself.
    detached: true,
  });
  const kept: string[] = [];
  const keep = (lines: string[]) => {
    for (const l of lines) if (kept.length < MAX_LINES) kept.push(l.length > MAX_LINE ? l.slice(0, MAX_LINE) + '…' : l);
  };
  let lagPort: number | undefined;
  const lagOfPort = (): LagSource | undefined => (lagPort === undefined ? undefined : probeLagSource(lagPort));
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const text = kept.length ? `:\n${kept.map((l) => '  ' + l).join('\n')}` : '';
      reject(new Error(`${o.label} ${why}${text}`));
    };
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      fail(`did not start within ${START_TIMEOUT_MS / 1000} s`);
    }, START_TIMEOUT_MS);
    createInterface({ input: proc.stderr! }).on('line', (l) => keep(errorLines(l)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.startsWith('{"lagProbePort":')) {
        lagPort = Number((JSON.parse(line) as { lagProbePort: number }).lagProbePort);
        return;
      }
      keep(errorLines(line));
      if (settled) return;
      const info = o.ready(line);
      if (!info) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        proc,
        info,
        label: o.label,
        pid: proc.pid!,
        lag: async () => (await lagOfPort()?.()) ?? undefined,
        errors: () => [...kept],
      });
    });
    proc.once('error', (e) => fail(`could not be started: ${e.message}`));
    // 'close' (not 'exit'): every output line has been read, so the error lines are complete.
    proc.once('close', (code, signal) => fail(`exited with ${signal ?? `code ${code}`} before it was ready`));
  });
}

/** Stop children that are still running (SIGTERM, SIGKILL after 5 s); safe to call on exit paths. */
export async function stopChildren(children: readonly StartedChild[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.proc.once('exit', () => r()));
      c.proc.kill('SIGTERM');
      const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }),
  );
}

/** Last resort when the demo itself exits: kill what is left, synchronously. */
export function killChildrenSync(children: readonly StartedChild[]): void {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
}
