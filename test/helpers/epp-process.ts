// llm-epp as users run it: its own process (src/main.ts with the flags
// `npm start` uses), its JSON log lines read from stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface EppProcess {
  proc: ChildProcess;
  grpcPort: number;
  healthPort: number;
  metricsPort: number;
  logs: { msg?: string }[];
  exit: Promise<number | null>;
}

export function startEppProcess(args: string[]): Promise<EppProcess> {
  const proc = spawn(process.execPath, ['--max-semi-space-size=4', 'src/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const logs: { msg?: string }[] = [];
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let j: { msg?: string; grpcPort?: number; healthPort?: number; metricsPort?: number };
      try {
        j = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(j);
      if (j.msg === 'llm-epp serving') resolve({ proc, grpcPort: j.grpcPort!, healthPort: j.healthPort!, metricsPort: j.metricsPort!, logs, exit });
    });
    void exit.then((code) => reject(new Error(`llm-epp exited with ${code} before serving`)));
  });
}

/** Resident memory of a process, in MiB. */
export function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}
