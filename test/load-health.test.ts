// Trustworthy results: the load generator's health figures and the "unreliable" verdict,
// the terminal summary, the verdict line, and what every report records.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { errorLines } from '../bench/load/children.ts';
import { commandLine, describeEnvironment } from '../bench/load/environment.ts';
import { assessHealth, DEFAULT_THRESHOLDS, thresholdsFromFlags, type HealthFigures } from '../bench/load/health.ts';
import { sumCounter } from '../bench/load/metrics.ts';
import { HealthMonitor, probeLagSource, promLagSource, readCpuTimes } from '../bench/load/probes.ts';
import { buildReport, errorKind, toMarkdown } from '../bench/load/report.ts';
import { progressLine, type RequestRecord, type RunResult, type StageResult } from '../bench/load/runner.ts';
import { summaryBlock, terminalReport } from '../bench/load/terminal.ts';
import { verdictLine, verdicts } from '../bench/load/verdict.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function blockLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

function rec(i: number, o: Partial<RequestRecord> = {}): RequestRecord {
  return { id: `r${i}`, stage: 0, warmup: false, intendedMs: i * 10, startMs: i * 10, scheduleDelayMs: 0.5, ok: true, status: 200, ttftMs: 100 + i, itlMs: [5, 6], e2eMs: 300 + i, outputTokens: 3, promptTokens: 100, cachedTokens: 50, pod: 'p0', ...o };
}

function stage(records: RequestRecord[], health?: HealthFigures): StageResult {
  const st: StageResult = { index: 0, name: 'qps=10', spec: { rate: 10 }, rate: 10, arrival: 'poisson', startMs: 0, measuredStartMs: 0, arrivalsEndMs: 1000, endMs: 1400, records };
  if (health) st.health = health;
  return st;
}

const run = (strategy: string, st: StageResult): RunResult => ({ strategy, url: 'http://x', workload: 'shared-prefix', startedAt: '', stages: [st] });

describe('the unreliable verdict', () => {
  const quiet: HealthFigures = { processes: { 'llm-epp': { loopLag: { p50Ms: 0.1, p99Ms: 2, maxMs: 5 }, cpuCores: 0.3 } }, cpus: 2, loopLag: { p50Ms: 0.1, p99Ms: 1, maxMs: 3 }, loadAverage: { start: 0.5, end: 1.1 }, stealFraction: 0 };

  it('is reliable on a quiet machine, and names every exceeded threshold with advice', () => {
    expect(assessHealth(quiet, 3)).toMatchObject({ reliable: true, reasons: [], advice: [] });
    const busy: HealthFigures = {
      processes: { 'simulated fleet': { loopLag: { p50Ms: 20, p99Ms: 180, maxMs: 900 } }, 'llm-epp': { loopLag: { p50Ms: 0, p99Ms: 1, maxMs: 2 } } },
      cpus: 2,
      loopLag: { p50Ms: 1, p99Ms: 60, maxMs: 300 },
      loadAverage: { start: 11, end: 9 },
      stealFraction: 0.2,
    };
    const h = assessHealth(busy, 1324);
    expect(h.reliable).toBe(false);
    expect(h.reasons).toHaveLength(5);
    expect(h.reasons.join('\n')).toMatch(/schedule delay p99 1,324 ms > 50\.0 ms/);
    expect(h.reasons.join('\n')).toMatch(/simulated fleet's event loop lagged: p99 180 ms/);
    expect(h.reasons.join('\n')).toMatch(/load generator's event loop lagged/);
    expect(h.reasons.join('\n')).toMatch(/load average 11\.0 on 2 CPUs \(5\.5 per core > 1\.5\)/);
    expect(h.reasons.join('\n')).toMatch(/20 % of the CPU \(steal > 10 %\)/);
    expect(h.reasons.join('\n')).not.toMatch(/llm-epp/);
    expect(h.advice.join(' ')).toMatch(/fewer pods/);
    expect(h.advice.join(' ')).toMatch(/close other work/);
    expect(h.figures.scheduleDelayP99Ms).toBe(1324);
  });

  it('thresholds are flags, with the named constants as defaults', () => {
    expect(thresholdsFromFlags({})).toEqual(DEFAULT_THRESHOLDS);
    expect(thresholdsFromFlags({ 'unreliable-delay': '5', 'unreliable-lag': '7', 'unreliable-load': '3', 'unreliable-steal': '25' })).toEqual({ scheduleDelayP99Ms: 5, loopLagP99Ms: 7, loadPerCore: 3, stealFraction: 0.25 });
    expect(() => thresholdsFromFlags({ 'unreliable-lag': 'x' })).toThrow(/--unreliable-lag must be a number/);
    expect(assessHealth(quiet, 3, thresholdsFromFlags({ 'unreliable-lag': '1.5' })).reasons[0]).toMatch(/llm-epp's event loop lagged/);
  });

  it('reaches the JSON report (health per stage), the Markdown and the terminal', () => {
    const slow = stage(Array.from({ length: 20 }, (_, i) => rec(i, { scheduleDelayMs: i === 19 ? 900 : 1 })), quiet);
    const r = buildReport([run('llm-epp', slow)], { thresholds: { ...DEFAULT_THRESHOLDS, scheduleDelayP99Ms: 100 } });
    const s = r.stages[0];
    expect(s.health.reliable).toBe(false);
    expect(s.health.reasons[0]).toMatch(/schedule delay p99 900 ms > 100 ms/);
    expect(JSON.parse(JSON.stringify(r)).stages[0].health).toMatchObject({ reliable: false, figures: { cpus: 2, processes: { 'llm-epp': { cpuCores: 0.3 } } } });
    expect(toMarkdown(r)).toMatch(/Unreliable \(the machine could not keep up/);
    const t = terminalReport(r);
    expect(t).toMatch(/Health: +UNRELIABLE/);
    expect(t).toMatch(/⚠ UNRELIABLE: llm-epp · qps=10/);
    expect(t).toMatch(/What to do: lower the rate/);
  });
});

describe('terminal summary and verdict', () => {
  it('a compact block per strategy, not a 20-column table', () => {
    const r = buildReport([run('llm-epp', stage(Array.from({ length: 10 }, (_, i) => rec(i))))]);
    const block = summaryBlock(r.stages[0]);
    const lines = block.split('\n');
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(60);
    expect(block).toMatch(/^=+ llm-epp · qps=10 =+$/m);
    expect(block).toMatch(/^Requests ok \/ failed: +10 \/ 0$/m);
    expect(block).toMatch(/^TTFT p50 \/ p90 \/ p99 \(ms\): +104 \/ 108 \/ 109$/m);
    expect(block).toMatch(/^Prompt tokens from cache: +50\.0 %$/m);
    expect(terminalReport(r)).not.toMatch(/\|/);
  });

  it('one line per comparison, exported for the HTML page', () => {
    const mk = (strategy: string, p90: number, rps: number, cache: number, reliable = true) =>
      ({ strategy, name: 'qps=28', completed: 100, failed: 0, errors: {}, ttftMs: { p90 }, requestThroughput: rps, prefixCacheHitRate: { rate: cache }, health: { reliable } }) as unknown as Parameters<typeof verdictLine>[0];
    expect(verdictLine(mk('llm-epp', 327, 25, 0.68), mk('round-robin', 7178, 20, 0.12))).toBe('llm-epp: p90 TTFT 327 ms vs 7,178 ms round-robin, +25 % req/s, 68 % vs 12 % prompt tokens from cache');
    expect(verdictLine(mk('llm-epp', 6246, 19, 0.71, false), mk('round-robin', 4897, 20, 0.12))).toMatch(/−5 % req\/s.*UNRELIABLE/);
    const r = buildReport([run('round-robin', stage([rec(1)])), run('llm-epp', stage([rec(2, { ok: false, error: 'HTTP 503: x' })]))]);
    expect(verdicts(r)).toEqual(['llm-epp: no request succeeded (HTTP 503 × 1)']);
    expect(verdicts(buildReport([run('a', stage([rec(1)]))]))).toEqual([]);
  });

  it('the progress line says "draining" instead of counting past the duration', () => {
    const c = { sent: 40, done: 28, inflight: 12, errors: 0 };
    const cur = { index: 0, name: 'qps=28', total: 40_000, draining: false };
    expect(progressLine('llm-epp', cur, 1, 20, c)).toMatch(/ 20\.0\/40s · sent 40/);
    const late = progressLine('llm-epp', cur, 1, 47.9, c);
    expect(late).toMatch(/draining 12 in flight/);
    expect(late).not.toMatch(/47\.9/);
    expect(progressLine('llm-epp', { ...cur, draining: true }, 1, 39, c)).toMatch(/draining 12 in flight/);
  });

  it('error kinds never throw on a non-string error (the Ctrl-C TypeError)', () => {
    expect(errorKind(20)).toBe('20');
    expect(errorKind('HTTP 500: long body')).toBe('HTTP 500');
    expect(() => buildReport([run('a', stage([rec(1, { ok: false, error: 20 as unknown as string })]))])).not.toThrow();
  });
});

describe('health probes', () => {
  const servers: Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  it("measure the load generator's own event-loop lag, the machine's CPU and load", async () => {
    const m = new HealthMonitor();
    await m.begin();
    // The histogram drops the first sample after a reset: let it take one.
    await new Promise((r) => setTimeout(r, 30));
    blockLoop(120);
    await new Promise((r) => setTimeout(r, 30));
    const f = await m.end();
    m.close();
    expect(f.loopLag!.maxMs).toBeGreaterThanOrEqual(100);
    expect(f.cpus).toBeGreaterThan(0);
    if (readCpuTimes()) expect(f.cpuBusyFraction).toBeGreaterThan(0);
    if (process.platform === 'linux') expect(f.loadAverage!.start).toBeGreaterThanOrEqual(0);
    expect(readCpuTimes('cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3 4\n')).toEqual({ total: 1000, idle: 810, steal: 35 });
  });

  it("read a Node process's lag from its prom-client metrics (llm-epp's /metrics), one window per stage", async () => {
    const reg = new Registry();
    collectDefaultMetrics({ register: reg });
    const server = createServer((_, res) => void reg.metrics().then((t) => res.end(t)));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const lag = promLagSource(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
    await lag();
    await new Promise((r) => setTimeout(r, 50));
    blockLoop(150);
    await new Promise((r) => setTimeout(r, 50));
    const l = await lag();
    expect(l!.maxMs).toBeGreaterThanOrEqual(100);
    expect(sumCounter('nodejs_eventloop_lag_p99_seconds 0.25\n', ['nodejs_eventloop_lag_p99_seconds'])).toBe(0.25);
  });

  it("read a child's lag through the preloaded lag probe, without changing the child", async () => {
    // A child that blocks its loop for 150 ms every 200 ms, and says so after each block.
    const child = spawn(process.execPath, ['--import', './bench/load/lag-probe.ts', '-e', 'setInterval(() => { const e = Date.now() + 150; while (Date.now() < e); console.log("blocked"); }, 200)'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const lines: string[] = [];
      const waiters: Array<() => void> = [];
      createInterface({ input: child.stdout! }).on('line', (l) => {
        lines.push(l);
        waiters.splice(0).forEach((w) => w());
      });
      const nextLine = () => new Promise<void>((r) => waiters.push(r));
      while (!lines.some((l) => l.startsWith('{"lagProbePort":'))) await nextLine();
      const lag = probeLagSource((JSON.parse(lines.find((l) => l.startsWith('{"lagProbePort":'))!) as { lagProbePort: number }).lagProbePort);
      await lag(); // opens a window
      const seen = lines.length;
      // Two whole blocks inside the window.
      while (lines.length < seen + 3) await nextLine();
      const l = await lag();
      expect(l!.maxMs).toBeGreaterThanOrEqual(100);
      expect(l!.p50Ms).toBeLessThan(l!.maxMs);
    } finally {
      child.kill();
    }
  });
});

describe('what every report records', () => {
  it('machine, versions, the full command and the config', () => {
    const e = describeEnvironment({ rates: [2] }, ['/usr/bin/node', `${ROOT}bench/load/cli.ts`, '--url', 'http://a:1', '--title', 'two words']);
    expect(e.machine.cpus).toBeGreaterThan(0);
    expect(e.machine.memoryGiB).toBeGreaterThan(0);
    expect(e.machine.loadAverageAtStart).toHaveLength(3);
    expect(e.versions.node).toBe(process.version);
    expect(e.versions.llmEpp).toMatch(/^\d+\.\d+\.\d+/);
    expect(e.config).toEqual({ rates: [2] });
    const r = buildReport([run('a', stage([rec(1)]))], { environment: e });
    expect(r).toMatchObject({ machine: e.machine, versions: e.versions, config: { rates: [2] } });
    expect(toMarkdown(r)).toMatch(/Machine: \d+ × .*Node v/);
    const argv = ['/usr/bin/node', `${ROOT}bench/load/cli.ts`, '--url', 'http://a:1', '--title', 'two words'];
    expect(commandLine(argv, { npm_lifecycle_event: 'load', npm_lifecycle_script: 'node bench/load/cli.ts' })).toBe("npm run load -- --url http://a:1 --title 'two words'");
    expect(commandLine(argv, {})).toMatch(/^node \S*bench\/load\/cli\.ts --url http:\/\/a:1 --title 'two words'$/);
  });

  it("a child's start-up error keeps its words, not its JSON or stack frames", () => {
    expect(errorLines('{"level":60,"msg":"llm-epp failed to start","err":"--config-file x.yaml: ENOENT: no such file"}')).toEqual(['llm-epp failed to start: --config-file x.yaml: ENOENT: no such file']);
    expect(errorLines('{"level":30,"msg":"llm-epp serving"}')).toEqual([]);
    expect(errorLines('{"level":50,"msg":"bad config","err":"line 3:\\n  foo: [\\n       ^"}')).toEqual(['bad config: line 3:', '  foo: [', '       ^']);
    expect(errorLines('    at ModuleLoader.resolveSync (node:internal/modules/esm/loader:763:56)')).toEqual([]);
    expect(errorLines("Error [ERR_MODULE_NOT_FOUND]: Cannot find module 'x'")).toEqual(["Error [ERR_MODULE_NOT_FOUND]: Cannot find module 'x'"]);
  });
});
