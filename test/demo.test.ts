import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { demoPlanFromArgs, runDemo, type DemoPlan } from '../bench/demo.ts';
import type { Report } from '../bench/load/report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'llm-epp-demo-'));

const SMALL = ['--pods', '3', '--groups', '4', '--prompts-per-group', '4', '--system-tokens', '800', '--question-tokens', '50', '--output-tokens', '8', '--progress', 'false'];

describe('npm run demo (short end-to-end run)', () => {
  it('starts a simulated fleet, llm-epp and the gateways, drives the same workload through llm-epp and round-robin, and reports both with their health', async () => {
    const plan = demoPlanFromArgs([
      ...SMALL,
      '--strategies', 'llm-epp,round-robin',
      '--rates', '6',
      '--duration', '3s',
      '--warmup', '1s',
      // Every stage's schedule delay p99 exceeds 0 ms: the warning path, deterministically.
      '--unreliable-delay', '0',
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
      // The event-loop lag of every process the demo started, and of the load generator.
      const procs = s.health.figures.processes;
      expect(Object.keys(procs).sort()).toEqual(['gateway llm-epp', 'gateway round-robin', 'llm-epp', 'simulated fleet']);
      for (const [name, p] of Object.entries(procs)) expect(p.loopLag, name).toMatchObject({ p99Ms: expect.any(Number), maxMs: expect.any(Number) });
      expect(s.health.figures.loopLag).toBeDefined();
      expect(s.health).toMatchObject({ reliable: false, reasons: [expect.stringMatching(/schedule delay p99 .* > 0\.0 ms/)] });
    }
    const [epp, rr] = r.report.stages;
    // Round-robin spreads evenly; llm-epp keeps each group's system prompt on a pod, so more of each prompt is cached.
    expect(rr.pods.cv).toBeLessThan(0.2);
    expect(epp.cachedTokenRate!).toBeGreaterThan(rr.cachedTokenRate!);
    expect(r.markdown).toMatch(/\| qps=6 \| llm-epp \|/);
    expect(r.markdown).toMatch(/\| qps=6 \| round-robin \|/);
    // The terminal: summary blocks, the warning with advice, the verdict line.
    expect(r.terminal).toMatch(/^=+ llm-epp · qps=6 =+$/m);
    expect(r.terminal).toMatch(/⚠ UNRELIABLE: round-robin · qps=6/);
    expect(r.terminal).toMatch(/^llm-epp: p90 TTFT [\d.,]+ ms vs [\d.,]+ ms round-robin, [+−±]\d+ % req\/s, \d+ % vs \d+ % prompt tokens from cache \(UNRELIABLE/m);
    const json = JSON.parse(readFileSync(r.files!.json, 'utf8')) as Report;
    expect(json.verdict).toHaveLength(1);
    expect(json.machine!.cpus).toBeGreaterThan(0);
    expect(json.versions!.node).toBe(process.version);
    expect(json.command).toMatch(/^node bench\/demo\.ts --pods 3 /);
    expect(json.config).toMatchObject({ plan: { pods: 3 }, llmEppConfig: 'the GAIE default config' });
    expect(readFileSync(r.files!.html, 'utf8')).toMatch(/<svg/);
    expect(lines.some((l) => l.startsWith('llm-epp: ext_proc on'))).toBe(true);
  }, 90_000);

  it("passes llm-epp's own start-up error through (it said only \"src/main.ts exited with 1\")", async () => {
    const plan = demoPlanFromArgs([...SMALL, '--config-file', 'no/such/config.yaml', '--out', join(dir, 'bad-config')]) as DemoPlan;
    const err = await runDemo(plan, () => {}).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^llm-epp \(src\/main\.ts\) exited with code 1 before it was ready:\n {2}llm-epp failed to start: --config-file no\/such\/config\.yaml: ENOENT/);
    expect(err?.message).not.toMatch(/^\s+at /m);
  }, 60_000);

  it('Ctrl-C writes a partial report and exits 130', async () => {
    const out = join(dir, 'interrupted');
    const child = spawn(process.execPath, ['bench/demo.ts', ...SMALL, '--rates', '6', '--duration', '60s', '--warmup', '0s', '--progress', 'true', '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let stdout = '';
    child.stdout!.on('data', (b: Buffer) => void (stdout += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (b: Buffer) => {
        err += b.toString();
        if (/\[llm-epp\].*done [1-9]/.test(err)) resolve();
      });
      void exited.then(() => reject(new Error(`demo exited early:\n${err}`)));
    });
    child.kill('SIGINT');
    expect(await exited, err).toBe(130);
    expect(err).not.toMatch(/TypeError/);
    const r = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as Report;
    expect(r.partial).toBe(true);
    expect(r.stages.map((s) => s.strategy)).toEqual(['llm-epp']);
    expect(r.stages[0].completed).toBeGreaterThan(0);
    expect(r.stages[0].failed).toBe(0);
    expect(stdout).toMatch(/Interrupted: partial results/);
  }, 90_000);
});
