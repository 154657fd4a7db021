// The EPP benchmark end to end in miniature: it must start its processes,
// drive real ext_proc streams and report sane figures. Timings are not
// asserted (the machine is shared); only that the numbers exist and make sense.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBench } from '../bench/epp/run.ts';

describe('bench:epp smoke', () => {
  it('runs the headline and long scenarios briefly and reports sane numbers', async () => {
    // Its JSON goes to a temp dir: npm test leaves nothing in bench/results/.
    const dir = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
    const { results, file } = await runBench({ scenarios: ['headline', 'long', 'flow-control'], durationMs: 400, rates: [50], quick: true, append: false, resultsDir: dir });
    expect(file.startsWith(dir)).toBe(true);
    expect(readdirSync(dir)).toHaveLength(1);
    rmSync(dir, { recursive: true, force: true });
    expect(results.map((r) => r.scenario)).toEqual(['headline', 'long', 'flow-control']);
    // The flowControl gate off, on, on, off, all measured.
    expect(results[2].phases.filter((p) => p.target === 'epp').map((p) => p.name)).toEqual(['gate off', 'gate on', 'gate on, 2nd', 'gate off, 2nd'].flatMap((g) => [`saturation, ${g}`, `50 req/s, ${g}`]));
    for (const r of results) {
      expect(r.phases.length).toBeGreaterThan(0);
      for (const p of r.phases) {
        expect(p.errors, `${r.scenario} ${p.name} ${p.target}: ${JSON.stringify(p.errorKinds)}`).toBe(0);
        expect(p.requests).toBeGreaterThan(0);
        expect(p.throughput).toBeGreaterThan(0);
        expect(p.addedMs.p50).toBeGreaterThan(0);
        expect(p.addedMs.p99).toBeGreaterThanOrEqual(p.addedMs.p50);
        expect(p.decisionMs.p50).toBeLessThanOrEqual(p.addedMs.p50);
        expect(p.rssMB).toBeGreaterThan(10);
      }
      // Both the EPP and the floor were measured.
      expect(new Set(r.phases.map((p) => p.target))).toEqual(new Set(['echo', 'epp']));
    }
  }, 120_000);

  it('bench:flow-control-path routes every request straight through with the gate open, and drains a queue of 1,000', () => {
    const out = execFileSync(process.execPath, ['--expose-gc', 'bench/flow-control-path.bench.ts', '--rounds', '1', '--requests', '20'], { cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 120_000 });
    expect(out).toMatch(/\| flowControl gate off \(floor\) \| [\d.]+ \| 1\.00 \|/);
    expect(out).toMatch(/\| gate on, nothing queued \(gate open\) \| [\d.]+ \| [\d.]+ \|/);
    expect(out).toMatch(/\| queued, then drained \| [\d.]+ \| [\d.]+ \(median of the pairs' ratios\) \|/);
    expect(out).toMatch(/Heap held per queued request beyond its body .*: [\d.]+ KiB/);
  }, 120_000);
});
