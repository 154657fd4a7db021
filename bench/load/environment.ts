// What every load report records so a reader can judge and rerun it: the
// command line, the machine (CPUs, model, memory, load average at the start),
// the versions (Node, llm-epp and its git commit) and the run's configuration.
import { readFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, arch, totalmem } from 'node:os';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Machine {
  cpus: number;
  model: string;
  memoryGiB: number;
  /** 1, 5 and 15-minute load averages when the run started. */
  loadAverageAtStart: [number, number, number];
  os: string;
}

export interface Versions {
  node: string;
  llmEpp: string;
  /** git commit of the checkout, when it is one. */
  commit?: string;
}

export interface Environment {
  command: string;
  machine: Machine;
  versions: Versions;
  config: unknown;
}

/** Quote an argument for a POSIX shell when it needs it. */
export function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command as the user can rerun it: `npm run load -- …` when started by that npm script
 * (npm sets npm_lifecycle_event), else `node <script> …`.
 */
export function commandLine(argv: readonly string[] = process.argv, env: NodeJS.ProcessEnv = process.env): string {
  const args = argv.slice(2).map(shellQuote).join(' ');
  const script = env.npm_lifecycle_event;
  if (script && env.npm_lifecycle_script?.includes(relative(ROOT, argv[1] ?? '') || '\0')) return `npm run ${script}${args ? ' -- ' + args : ''}`;
  const file = argv[1] ? relative(process.cwd(), argv[1]) || argv[1] : '';
  return ['node', shellQuote(file), args].filter(Boolean).join(' ');
}

function gitCommit(): string | undefined {
  try {
    const head = readFileSync(`${ROOT}.git/HEAD`, 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    try {
      return readFileSync(`${ROOT}.git/${ref}`, 'utf8').trim();
    } catch {
      const packed = readFileSync(`${ROOT}.git/packed-refs`, 'utf8');
      return packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0];
    }
  } catch {
    return undefined;
  }
}

export function versions(): Versions {
  let llmEpp = 'unknown';
  try {
    llmEpp = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    // Not in a checkout.
  }
  const v: Versions = { node: process.version, llmEpp };
  const commit = gitCommit();
  if (commit) v.commit = commit;
  return v;
}

export function machine(): Machine {
  const c = cpus();
  const l = loadavg();
  return {
    cpus: c.length,
    model: c[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadAverageAtStart: [l[0], l[1], l[2]],
    os: `${platform()} ${release()} ${arch()}`,
  };
}

/** Call at start-up (the load average is the one before the run). */
export function describeEnvironment(config: unknown, argv: readonly string[] = process.argv): Environment {
  return { command: commandLine(argv), machine: machine(), versions: versions(), config };
}
