// Summarise a V8 .cpuprofile (node --cpu-prof): self time by function and by
// package/file, so RESULTS.md can say where the time goes.
//   node bench/lib/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [top]
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export function summariseProfile(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const where = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const url = cf.url.replace(/^file:\/\/\/work\/main\//, '');
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url.startsWith('node:') ? url : url === '' ? '(native/gc/idle)' : url.split('/').slice(0, 2).join('/'));
    const name = `${cf.functionName || '(anonymous)'} ${url ? url.split('/').slice(-2).join('/') + ':' + (cf.lineNumber + 1) : ''}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    where.set(pkg, (where.get(pkg) ?? 0) + us);
  }
  const pct = (us: number) => ((us / total) * 100).toFixed(1).padStart(5) + ' %';
  const lines = [`profile ${file}: ${(total / 1e6).toFixed(2)} s sampled`, '', 'by package / file:'];
  for (const [k, v] of [...where].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', 'by function (self time):');
  for (const [k, v] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}

if (import.meta.main) process.stdout.write(summariseProfile(process.argv[2], Number(process.argv[3] ?? 25)) + '\n');
