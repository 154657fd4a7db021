// bench:epp with the benchmark gateway in the path: the gateway's own CPU and
// event-loop lag are reported apart from the EPP's. And `node bench/epp/run.ts
// --help` prints its usage instead of throwing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runBench } from '../bench/epp/run.ts';
import { markdownTable, runGatewayBench } from '../bench/gateway.bench.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

describe('bench:epp gateway scenario', () => {
  it('reports the EPP\'s and the gateway\'s CPU per request side by side, for llm-epp and the echo floor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-epp-'));
    const { results, markdown, file } = await runBench({ scenarios: ['gateway'], durationMs: 400, rates: [50], quick: true, append: false, resultsDir: dir });
    expect(file.startsWith(dir)).toBe(true);
    expect(readdirSync(dir)).toHaveLength(1);
    rmSync(dir, { recursive: true });
    const phases = results[0].gateway!;
    expect(new Set(phases.map((p) => p.epp))).toEqual(new Set(['echo', 'llm-epp']));
    for (const p of phases) {
      expect(p.errors, JSON.stringify(p.errorKinds)).toBe(0);
      expect(p.requests).toBeGreaterThan(0);
      expect(p.eppCpuMsPerRequest).toBeGreaterThanOrEqual(0);
      expect(p.gatewayCpuMsPerRequest).toBeGreaterThan(0);
      expect(p.gatewayLoopLagMaxMs).toBeGreaterThanOrEqual(p.gatewayLoopLagP99Ms);
      expect(p.latencyMs.p99).toBeGreaterThanOrEqual(p.latencyMs.p50);
    }
    expect(phases.find((p) => p.epp === 'llm-epp')!.eppLoopLagP99Ms).toBeGreaterThanOrEqual(0);
    expect(markdown).toContain('| phase | EPP | req/s | latency p50 | p99 | EPP CPU ms/req | gateway CPU ms/req | EPP loop lag p99 | gateway loop lag p99 | errors |');
  }, 120_000);

  it('--help prints the usage; a wrong flag is one line and exit 2', () => {
    const help = spawnSync(process.execPath, ['bench/epp/run.ts', '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: npm run bench:epp/);
    expect(help.stdout).toContain('--scenario NAME');
    expect(help.stdout).toContain('gateway ');
    const bad = spawnSync(process.execPath, ['bench/epp/run.ts', '--scenario', 'nope'], { cwd: ROOT, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual(['bench:epp: unknown --scenario "nope" (known: headline, flow-control, scaling, long, prompt-size, scrape, response, gateway, memory) (see --help)']);
  });
});

describe('bench/gateway.bench.ts', () => {
  it('measures the gateway (epp and round-robin) and the plain-proxy floor on every scenario', async () => {
    const rows = await runGatewayBench({ scenarios: ['short', 'sse', 'large'], requests: 20, runs: 2, concurrency: 2, gatewayScripts: ['bench/gateway/gateway.ts'], log: () => {} });
    expect(rows.map((r) => `${r.scenario} ${r.target}`)).toEqual(['short', 'sse', 'large'].flatMap((s) => [`${s} epp`, `${s} round-robin`, `${s} floor`]));
    for (const r of rows) {
      expect(r.cpuMsPerRequest).toHaveLength(2);
      for (const v of r.cpuMsPerRequest) expect(v).toBeGreaterThanOrEqual(0);
    }
    expect(markdownTable(rows).split('\n')).toHaveLength(2 + rows.length);
  }, 120_000);
});
