import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoPlanFromArgs, runDemo, type DemoPlan } from '../bench/demo.ts';

describe('npm run demo (short end-to-end run)', () => {
  it('starts a simulated fleet, llm-epp and the gateways, drives the same workload through llm-epp and round-robin, and reports both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-demo-'));
    const plan = demoPlanFromArgs([
      '--pods', '3',
      '--strategies', 'llm-epp,round-robin',
      '--rates', '6',
      '--duration', '3s',
      '--warmup', '1s',
      '--groups', '4',
      '--prompts-per-group', '4',
      '--system-tokens', '800',
      '--question-tokens', '50',
      '--output-tokens', '8',
      '--progress', 'false',
      '--out', join(dir, 'demo'),
    ]) as DemoPlan;
    const lines: string[] = [];
    const r = await runDemo(plan, (s) => lines.push(s));
    expect(r.report.strategies).toEqual(['llm-epp', 'round-robin']);
    for (const s of r.report.stages) {
      expect(s.failed, JSON.stringify(s.errors)).toBe(0);
      expect(s.completed).toBeGreaterThan(8);
      expect(s.ttftMs.p50).toBeGreaterThan(0);
      expect(s.outputTokenThroughput).toBeGreaterThan(0);
      expect(Object.keys(s.pods.counts).sort()).toEqual(['sim-0', 'sim-1', 'sim-2']);
      expect(s.prefixCacheHitRate?.queries).toBeGreaterThan(0);
    }
    const [epp, rr] = r.report.stages;
    // Round-robin spreads evenly; llm-epp keeps each group's system prompt on a pod, so more of each prompt is cached.
    expect(rr.pods.cv).toBeLessThan(0.2);
    expect(epp.cachedTokenRate!).toBeGreaterThan(rr.cachedTokenRate!);
    expect(r.markdown).toMatch(/\| qps=6 \| llm-epp \|/);
    expect(r.markdown).toMatch(/\| qps=6 \| round-robin \|/);
    expect(readFileSync(r.files.html, 'utf8')).toMatch(/<svg/);
    expect(lines.some((l) => l.startsWith('llm-epp: ext_proc on'))).toBe(true);
  }, 60_000);
});
