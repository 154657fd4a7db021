// The HTML report of a real short run (simulated fleet, benchmark gateways,
// the load generator) opened in headless Chromium (Debian package
// chromium-headless-shell): it renders, every chart is there with its title and
// marks inside its frame, and the page logs nothing to the console. Screenshots
// go to REPORT_SCREENSHOT_DIR (default: a new temp dir) and their paths are
// printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../bench/gateway/gateway.ts';
import { cacheScraper } from '../bench/load/metrics.ts';
import { describeEnvironment } from '../bench/load/environment.ts';
import { assessHealth } from '../bench/load/health.ts';
import { buildReport, writeReports, type Report } from '../bench/load/report.ts';
import { runStages, type RunResult } from '../bench/load/runner.ts';
import { makeWorkload } from '../bench/load/workloads.ts';
import { startFleet, type Fleet } from '../bench/sim/fleet.ts';
import { chromiumBinary, renderPage, CHROMIUM_PACKAGE } from './helpers/chromium.ts';

const STRATEGIES = ['round-robin', 'least-request'] as const;

describe('HTML report in headless Chromium', () => {
  let fleet: Fleet;
  const gateways: Gateway[] = [];
  const runs: RunResult[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'llm-epp-report-html-'));
  const shots = process.env.REPORT_SCREENSHOT_DIR || join(dir, 'screenshots');

  beforeAll(async () => {
    fleet = await startFleet({ pods: 3, basePort: 0, pod: { model: 'sim-model', timeScale: 0.05, enablePromptTokensDetails: true } });
    const endpoints = fleet.endpoints.split(',');
    const metrics = Object.fromEntries(fleet.pods.map((p) => [p.name, `http://${p.host}:${p.port}/metrics`]));
    for (const strategy of STRATEGIES) {
      const g = await startGateway({ strategy, endpoints });
      gateways.push(g);
      // Each strategy from empty caches and zeroed counters, as the demo does.
      fleet.reset();
      runs.push(
        await runStages({
          url: `http://127.0.0.1:${g.port}`,
          strategy,
          workload: makeWorkload('shared-prefix', { groups: 4, promptsPerGroup: 4, systemTokens: 400, questionTokens: 30, outputTokens: 6 }),
          stages: [
            { rate: 15, durationMs: 1200, warmupMs: 400 },
            { rate: 30, durationMs: 1200, warmupMs: 400 },
          ],
          seed: 5,
          progress: false,
          cacheCounters: cacheScraper(metrics),
        }),
      );
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await fleet?.close();
  });

  const check = async (name: string, report: Report, stageCount: number) => {
    const files = writeReports(report, join(dir, name), runs);
    mkdirSync(shots, { recursive: true });
    const shot = join(shots, `${name}.png`);
    const r = await renderPage(files.html, { screenshot: shot });
    process.stderr.write(`report-html: screenshot ${shot} (page ${files.html})\n`);
    expect(r.console, 'console messages of the page').toEqual([]);
    expect(r.probeConsole, 'console messages while probing').toEqual([]);
    const f = r.facts;
    expect(f.title).toBe(report.title);
    // Overview: 2 cache-hit charts + (single stage: 5 bar charts | sweep: 7 line charts); per stage: 2 CDFs, TTFT over time, requests and cache hit per pod.
    const overview = 2 + (stageCount === 1 ? 5 : 7);
    expect(f.svgs).toHaveLength(overview + 5 * stageCount);
    for (const s of f.svgs) {
      expect(s.title, 'every chart has a title').not.toBe('');
      expect(s.width).toBeGreaterThan(200);
      expect(s.height).toBeGreaterThan(200);
      expect(s.marks, `${s.title}: something drawn`).toBeGreaterThan(0);
      expect(s.outside, `${s.title}: marks outside the chart`).toBe(0);
    }
    const titles = f.svgs.map((s) => s.title);
    for (const t of ["Prefix-cache hit rate (pods' counters)", 'Prompt tokens served from cache', 'TTFT CDF — qps=15', 'E2E latency CDF — qps=15', 'TTFT over time — qps=15', 'Requests per pod — qps=15', 'Cache hit per pod — qps=15']) {
      expect(titles).toContain(t);
    }
    expect(statSync(shot).size).toBeGreaterThan(20_000);
    return { f, html: readFileSync(files.html, 'utf8'), csv: readFileSync(files.csv, 'utf8') };
  };

  it(`needs ${CHROMIUM_PACKAGE}, and says so when it is missing`, () => {
    expect(chromiumBinary()).toMatch(/chromium/);
    const saved = process.env.CHROMIUM_BIN;
    process.env.CHROMIUM_BIN = join(dir, 'no-such-browser');
    try {
      expect(() => chromiumBinary()).toThrow(`install the Debian package ${CHROMIUM_PACKAGE}`);
    } finally {
      if (saved === undefined) delete process.env.CHROMIUM_BIN;
      else process.env.CHROMIUM_BIN = saved;
    }
  });

  it('the check sees console errors and marks drawn outside a chart', async () => {
    const file = join(dir, 'broken.html');
    writeFileSync(
      file,
      '<!DOCTYPE html><html><head><title>broken</title></head><body><script>console.error("boom")</script>' +
        '<svg viewBox="0 0 100 100" width="100" height="100" role="img"><title>t</title><rect x="90" y="0" width="30" height="10"/></svg></body></html>',
    );
    const r = await renderPage(file);
    expect(r.console.join('\n')).toContain('boom');
    expect(r.facts.svgs).toEqual([{ title: 't', width: 100, height: 100, marks: 1, outside: 1 }]);
  }, 60_000);

  it('a single-rate run: bars, the verdict on top, an unreliable banner with reasons, the environment; no console errors', async () => {
    const one = runs.map((r) => ({ ...r, stages: r.stages.slice(0, 1) }));
    const report = buildReport(one, {
      pods: fleet.pods.map((p) => p.name),
      title: 'Single-rate report',
      environment: describeEnvironment({ strategies: STRATEGIES, rate: 15 }, ['node', 'bench/demo.ts', '--rates', '15']),
    });
    for (const s of report.stages) {
      expect(s.failed, JSON.stringify(s.errors)).toBe(0);
      expect(s.completed).toBeGreaterThan(5);
    }
    // Health as the probes would judge an overloaded machine (round-robin) and a quiet one; the verdict line the CLI sets.
    const fleetLag = { loopLag: { p50Ms: 20, p99Ms: 180, maxMs: 300 }, cpuCores: 1.4 };
    report.stages.find((s) => s.strategy === 'round-robin')!.health = assessHealth({ processes: { fleet: fleetLag }, cpus: 2, loadAverage: { start: 11, end: 11.4 } }, 1324);
    report.stages.find((s) => s.strategy === 'least-request')!.health = assessHealth({ processes: { fleet: { cpuCores: 0.3 } }, cpus: 2, loadAverage: { start: 0.4, end: 0.6 } }, 2);
    report.verdict = ['least-request: p90 TTFT 12 ms vs 15 ms round-robin, +0 % req/s, 60 % vs 40 % prompt tokens from cache'];
    const { f, html, csv } = await check('single-rate', report, 1);
    expect(f.banners).toBe(1);
    expect(f.headings).toContain('Machine, versions, command and configuration');
    expect(f.verdict).toEqual(report.verdict);
    expect(html).toContain('fleet&#39;s event loop lagged');
    expect(html).toContain('node bench/demo.ts --rates 15');
    // Bars, not lonely dots: the overview draws no circles.
    const overview = html.slice(html.indexOf('id="overview"'), html.indexOf('<section aria-labelledby="stage-0"'));
    expect(overview).not.toContain('<circle');
    expect(overview.match(/<rect [^>]*fill="#/g)!.length).toBeGreaterThanOrEqual(12);
    expect(csv.split('\n')[0]).toMatch(/^strategy,stage,stage index,x,health,/);
    expect(csv).toMatch(/\nround-robin,qps=15,0,15,UNRELIABLE,/);
  }, 60_000);

  it('a multi-tenant run: TTFT and outcome by tenant for each strategy, TTFT over time by tenant, the tenant table; no console errors', async () => {
    const tenantRuns: RunResult[] = [];
    for (const [i, strategy] of STRATEGIES.entries()) {
      fleet.reset();
      tenantRuns.push(
        await runStages({
          url: `http://127.0.0.1:${gateways[i].port}`,
          strategy,
          workload: makeWorkload('tenants', {
            tenants: [
              { name: 'quiet', objective: 'critical', rate: 8 },
              { name: 'noisy', objective: 'standard', rate: 4, burst: { rate: 30, fromS: 0.5, toS: 1.5 } },
            ],
            promptTokens: 100,
            outputTokens: 6,
          }),
          stages: [{ name: 'tenants', durationMs: 1600, warmupMs: 300 }],
          progress: false,
        }),
      );
    }
    const report = buildReport(tenantRuns, { pods: fleet.pods.map((p) => p.name), title: 'Tenant report' });
    const files = writeReports(report, join(dir, 'tenants'), tenantRuns);
    mkdirSync(shots, { recursive: true });
    const shot = join(shots, 'tenants.png');
    const r = await renderPage(files.html, { screenshot: shot });
    process.stderr.write(`report-html: screenshot ${shot} (page ${files.html})\n`);
    expect(r.console, 'console messages of the page').toEqual([]);
    expect(r.probeConsole, 'console messages while probing').toEqual([]);
    const titles = r.facts.svgs.map((x) => x.title);
    const tenantCharts = ['TTFT by tenant — tenants', 'Outcome by tenant — tenants', ...STRATEGIES.map((s) => `TTFT over time by tenant — ${s} · tenants`)];
    for (const t of tenantCharts) expect(titles).toContain(t);
    for (const x of r.facts.svgs) {
      expect(x.marks, `${x.title}: something drawn`).toBeGreaterThan(0);
      expect(x.outside, `${x.title}: marks outside the chart`).toBe(0);
    }
    // The tenant table under the stage's charts, beside the full table.
    expect(r.facts.tables).toBeGreaterThanOrEqual(2);
    for (const s of report.stages) expect(s.tenants?.map((t) => t.tenant).sort()).toEqual(['noisy', 'quiet']);
    const html = readFileSync(files.html, 'utf8');
    expect(html).toContain('<caption>Per tenant, tenants');
    expect(readFileSync(files.csv, 'utf8').split('\n')[0]).toContain(',quiet requests,quiet ok,quiet 429,');
  }, 60_000);

  it('a two-rate sweep: lines against the offered rate, per-stage sections, no banner when every stage is reliable', async () => {
    // Thresholds no busy test machine reaches: every stage reliable, so no banner.
    const thresholds = { scheduleDelayP99Ms: 1e9, loopLagP99Ms: 1e9, loadPerCore: 1e9, stealFraction: 1 };
    const report = buildReport(runs, { pods: fleet.pods.map((p) => p.name), title: 'Sweep report', thresholds });
    const { f } = await check('sweep', report, 2);
    expect(f.banners).toBe(0);
    expect(f.verdict).toEqual([]);
    expect(f.headings).toEqual(expect.arrayContaining(['Stage qps=15', 'Stage qps=30', 'Full table']));
    expect(f.svgs.map((s) => s.title)).toContain('TTFT p90 vs offered QPS');
  }, 60_000);
});
