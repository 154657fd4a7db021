// What a benchmark's JSON result records about the run: when, on which Node and machine.
import { cpus, totalmem } from 'node:os';

export function runMeta(): { date: string; node: string; cpu: string; cores: number; memGB: number } {
  return {
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGB: Math.round(totalmem() / 2 ** 30),
  };
}
