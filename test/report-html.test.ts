// The HTML page and CSV export of a load report, from recorded runs built
// here (the browser check of a real run is report-html-browser.test.ts).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assessHealth } from '../bench/load/health.ts';
import { cdfPoints, overTime, toCsv, toHtml } from '../bench/load/report-html.ts';
import { buildReport, toMarkdown, writeReports, type Report } from '../bench/load/report.ts';
import type { RequestRecord, RunResult, StageResult } from '../bench/load/runner.ts';

/** A deterministic run: `n` requests per stage at `rate`, TTFT around `ttft` ms, the first quarter of each stage warm-up. */
function recordedRun(strategy: string, stages: Array<{ rate: number; n: number; ttft: number }>, pods = ['sim-0', 'sim-1', 'sim-2']): RunResult {
  let t = 0;
  const out: StageResult[] = stages.map((spec, index) => {
    const start = t;
    const gap = 1000 / spec.rate;
    const warm = start + Math.floor(spec.n / 4) * gap;
    const records: RequestRecord[] = [];
    for (let i = 0; i < spec.n; i++) {
      const at = start + i * gap;
      const ttft = spec.ttft * (1 + ((i * 37) % 11) / 10) * (at < warm ? 3 : 1);
      records.push({
        id: `${strategy}-${index}-${i}`,
        stage: index,
        warmup: at < warm,
        intendedMs: at,
        startMs: at + 0.5,
        scheduleDelayMs: 0.5,
        ok: i % 50 !== 49,
        status: i % 50 !== 49 ? 200 : 503,
        error: i % 50 !== 49 ? undefined : 'HTTP 503: busy',
        ttftMs: ttft,
        itlMs: [5, 5, 5],
        e2eMs: ttft + 15,
        outputTokens: 4,
        promptTokens: 1000,
        cachedTokens: 500 + (i % 5) * 100,
        pod: pods[i % pods.length],
      });
    }
    t = start + spec.n * gap + 100;
    // The pods' prefix-cache counters before and after: pod i hits (60 + 10 i) % of its queries.
    const cacheBefore = Object.fromEntries(pods.map((p) => [p, { hits: 1000, queries: 2000 }]));
    const cacheAfter = Object.fromEntries(pods.map((p, i) => [p, { hits: 1000 + (60 + 10 * i) * spec.n, queries: 2000 + 100 * spec.n }]));
    return { index, name: `qps=${spec.rate}`, spec: { rate: spec.rate }, rate: spec.rate, arrival: 'constant', startMs: start, measuredStartMs: warm, arrivalsEndMs: t - 100, endMs: t, records, cacheBefore, cacheAfter };
  });
  return { strategy, url: 'http://127.0.0.1:1', workload: 'shared-prefix', startedAt: '2026-01-01T00:00:00.000Z', stages: out };
}

const svgs = (html: string) => html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
const section = (html: string, id: string) => {
  const i = html.indexOf(`<section aria-labelledby="${id}">`);
  return html.slice(i, html.indexOf('</section>', i));
};

describe('HTML report', () => {
  const single = [recordedRun('llm-epp', [{ rate: 10, n: 80, ttft: 40 }]), recordedRun('round-robin', [{ rate: 10, n: 80, ttft: 900 }])];
  const sweep = [recordedRun('llm-epp', [{ rate: 5, n: 40, ttft: 40 }, { rate: 10, n: 80, ttft: 60 }]), recordedRun('round-robin', [{ rate: 5, n: 40, ttft: 5000 }, { rate: 10, n: 80, ttft: 900 }])];

  it('a single-rate run draws bars, not lonely dots; a sweep draws lines against the rate', () => {
    const one = toHtml(buildReport(single, { pods: ['sim-0', 'sim-1', 'sim-2'] }), { runs: single });
    const ov = section(one, 'overview');
    expect(ov).not.toContain('<circle');
    expect(ov).not.toContain('<polyline');
    expect(svgs(ov)).toHaveLength(7);
    expect(ov).toContain('aria-label="Time to first token (qps=10)"');
    const many = section(toHtml(buildReport(sweep), { runs: sweep }), 'overview');
    expect(svgs(many)).toHaveLength(9);
    expect(many).toContain('aria-label="TTFT p90 vs offered QPS"');
    expect(many.match(/<polyline/g)!.length).toBeGreaterThanOrEqual(14);
  });

  it('every stage has CDFs, TTFT over time with the warm-up shaded, requests and cache hit per pod; every chart is titled', () => {
    const html = toHtml(buildReport(sweep), { runs: sweep });
    for (const id of ['stage-0', 'stage-1']) {
      const titles = svgs(section(html, id)).map((s) => /<title>([^<]*)<\/title>/.exec(s)![1]);
      const stage = id === 'stage-0' ? 'qps=5' : 'qps=10';
      expect(titles).toEqual([`TTFT CDF — ${stage}`, `E2E latency CDF — ${stage}`, `TTFT over time — ${stage}`, `Requests per pod — ${stage}`, `Cache hit per pod — ${stage}`]);
    }
    for (const s of svgs(html)) {
      expect(s).toMatch(/^<svg [^>]*role="img" aria-label="[^"]+"><title>[^<]+<\/title>/);
      expect(s).toMatch(/<desc>[^<]+<\/desc>|no data/);
    }
    // Warm-up: the shaded band; its slow requests are in the time series but not in the CDF.
    expect(section(html, 'stage-0')).toMatch(/<rect class="band"[^>]*><title>warm-up<\/title>/);
    // TTFT 40–80 vs 5,000–10,000 ms: more than two decades apart, so the CDF's x axis is logarithmic.
    expect(section(html, 'stage-0')).toContain('TTFT (ms) (log)');
    // Without the records, the page says why the request-level charts are missing.
    const bare = toHtml(buildReport(sweep));
    expect(bare).toContain('No request records were given');
    expect(bare).not.toContain('TTFT CDF');
  });

  it('puts the verdict first and a banner with reasons and advice on every unreliable stage, and says when a run was interrupted', () => {
    const report = buildReport(single, { partial: true });
    report.verdict = ['llm-epp: p90 TTFT 80 ms vs 1,800 ms round-robin, +0 % req/s, 70 % vs 70 % prompt tokens from cache'];
    report.stages[1].health = assessHealth({ processes: { fleet: { loopLag: { p50Ms: 9, p99Ms: 240, maxMs: 400 } } }, cpus: 2 }, 1324);
    const html = toHtml(report, { runs: single });
    const body = html.slice(html.indexOf('<body>'));
    expect(body.indexOf('class="verdict"')).toBeLessThan(body.indexOf('<svg'));
    expect(body).toContain(`<p>${report.verdict[0]}</p>`);
    const banners = body.match(/<div class="banner" role="alert">[\s\S]*?<\/div>/g)!;
    expect(banners).toHaveLength(2);
    expect(banners[0]).toContain('Interrupted run');
    expect(banners[1]).toContain('Unreliable result: round-robin, stage qps=10');
    expect(banners[1]).toContain('the load generator sent late: schedule delay p99 1,324 ms');
    expect(banners[1]).toContain('fleet&#39;s event loop lagged: p99 240 ms');
    expect(banners[1]).toMatch(/What to do: lower the rate \(--rates\) or use fewer pods \(--pods\)/);
    expect(body).toMatch(/<tr class="bad"><th scope="row">qps=10<\/th><td>round-robin<\/td><td>UNRELIABLE<\/td>/);
    // Both stages reliable and nothing interrupted: no banner.
    const calm = buildReport(single, { thresholds: { scheduleDelayP99Ms: 1e9, loopLagP99Ms: 1e9, loadPerCore: 1e9, stealFraction: 1 } });
    expect(toHtml(calm)).not.toContain('class="banner"');
  });

  it('shows the machine, versions, command and configuration', () => {
    const report = buildReport(single, {
      environment: { command: 'npm run demo -- --rates 10', machine: { cpus: 2, model: 'Test CPU', memoryGiB: 8, loadAverageAtStart: [0.5, 0.4, 0.3], os: 'linux' }, versions: { node: 'v24.0.0', llmEpp: '0.1.0', commit: 'abc123' }, config: { pods: 3, strategies: ['llm-epp', 'round-robin'] } },
    });
    const env = section(toHtml(report), 'env');
    for (const s of ['<code>npm run demo -- --rates 10</code>', '<th>memory (GiB)</th><td>8</td>', '<th>llm-epp</th><td><code>0.1.0</code></td>', '<code>llm-epp round-robin</code>', '<code>abc123</code>']) expect(env).toContain(s);
  });

  it('is self-contained, escapes every name, and stays small for many requests', () => {
    const evil = [recordedRun('<img src=x onerror=alert(1)>', [{ rate: 10, n: 20, ttft: 40 }], ['"pod"&<b>'])];
    const html = toHtml(buildReport(evil, { title: '</title><script>alert(1)</script>' }), { runs: evil, csvHref: 'r.csv' });
    expect(html).not.toMatch(/<script|<img|<b>|<link|\ssrc=["']|@import|url\(/);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect([...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1])).toEqual(['r.csv']);
    expect([...html.matchAll(/https?:\/\/[^"\s]*/g)].map((m) => m[0]).every((u) => u === 'http://www.w3.org/2000/svg')).toBe(true);
    const big = [recordedRun('llm-epp', [{ rate: 200, n: 20_000, ttft: 40 }]), recordedRun('round-robin', [{ rate: 200, n: 20_000, ttft: 900 }])];
    const page = toHtml(buildReport(big), { runs: big });
    expect(page.length).toBeLessThan(200_000);
  });
});

/**
 * A two-tenant run from `recordedRun`: every third request the quiet tenant's, the others the noisy
 * one's; with `shed`, every other noisy request answered 429 with a dropped reason (one a reason
 * no report should keep), the rest served slower.
 */
function tenantRun(strategy: string, shed: boolean): RunResult {
  const run = recordedRun(strategy, [{ rate: 10, n: 90, ttft: 40 }]);
  run.workload = 'tenants';
  run.stages[0].name = 'tenants';
  run.stages[0].records.forEach((r, i) => {
    r.tenant = i % 3 === 0 ? 'quiet' : 'noisy';
    if (r.tenant === 'noisy' && shed && i % 2 === 0) {
      Object.assign(r, { ok: false, status: 429, error: 'HTTP 429: shed', droppedReason: i === 32 ? 'other' : 'rejected-saturated', ttftMs: undefined });
    } else if (!shed && r.ok && r.ttftMs !== undefined) r.ttftMs *= 10;
  });
  return run;
}

describe('per-tenant report', () => {
  const runs = [tenantRun('flow control off', false), tenantRun('flow control on', true)];
  const report = buildReport(runs);

  it("counts each tenant's requests, 429s with their dropped reasons, other errors, TTFT and goodput; the tenants add up to the stage", () => {
    for (const s of report.stages) {
      const ts = s.tenants!;
      // In the order of their first measured arrival (the first quarter is warm-up: request 23, noisy's, comes first).
      expect(ts.map((t) => t.tenant)).toEqual(['noisy', 'quiet']);
      expect(ts.reduce((a, t) => a + t.requests, 0)).toBe(s.requests);
      expect(ts.reduce((a, t) => a + t.completed, 0)).toBe(s.completed);
      expect(ts.reduce((a, t) => a + t.goodput.met, 0)).toBe(s.goodput.met);
      for (const t of ts) expect(t.rejected429 + t.otherErrors).toBe(t.failed);
    }
    const [off, on] = report.stages.map((s) => Object.fromEntries(s.tenants!.map((t) => [t.tenant, t])));
    expect(off.noisy.rejected429).toBe(0);
    expect(on.noisy.rejected429).toBeGreaterThan(10);
    expect(on.noisy.droppedReasons).toEqual({ 'rejected-saturated': on.noisy.rejected429 - 1, other: 1 });
    expect(on.quiet.ttftMs.p90).toBeLessThan(off.quiet.ttftMs.p90);
    const md = toMarkdown(report);
    expect(md).toContain('| stage | strategy | tenant | requests | ok | 429 | dropped reason | other errors | TTFT p50 | TTFT p90 | goodput req/s |');
    expect(md).toMatch(new RegExp(`\\| tenants \\| flow control on \\| noisy \\| ${on.noisy.requests} \\| ${on.noisy.completed} \\| ${on.noisy.rejected429} \\| rejected-saturated × ${on.noisy.rejected429 - 1}, other × 1 \\|`));
  });

  it('draws TTFT and outcome by tenant per strategy, each strategy\'s TTFT over time by tenant, and a tenant table', () => {
    const html = toHtml(report, { runs });
    const stage = section(html, 'stage-0');
    const titles = svgs(stage).map((s) => /<title>([^<]*)<\/title>/.exec(s)![1]);
    expect(titles).toEqual(
      expect.arrayContaining(['TTFT by tenant — tenants', 'Outcome by tenant — tenants', 'TTFT over time by tenant — flow control off · tenants', 'TTFT over time by tenant — flow control on · tenants']),
    );
    const outcome = svgs(stage).find((s) => s.includes('aria-label="Outcome by tenant — tenants"'))!;
    for (const g of ['quiet ok', 'quiet 429', 'quiet other errors', 'noisy ok', 'noisy 429', 'noisy other errors']) expect(outcome).toContain(`>${g}</text>`);
    const on = report.stages[1].tenants!.find((t) => t.tenant === 'noisy')!;
    expect(outcome).toContain(`<title>flow control on · noisy 429: ${on.rejected429}</title>`);
    const ttft = svgs(stage).find((s) => s.includes('aria-label="TTFT by tenant — tenants"'))!;
    for (const g of ['quiet p50', 'quiet p90', 'noisy p50', 'noisy p90']) expect(ttft).toContain(`>${g}</text>`);
    expect(stage).toContain('<caption>Per tenant, tenants');
    expect(stage).toContain('<td>rejected-saturated × ' + (on.rejected429 - 1) + ', other × 1</td>');
    // A run without tenants has none of this.
    const plain = toHtml(buildReport([recordedRun('llm-epp', [{ rate: 10, n: 40, ttft: 40 }])]));
    expect(plain).not.toContain('by tenant');
    expect(toCsv(buildReport([recordedRun('llm-epp', [{ rate: 10, n: 40, ttft: 40 }])]))).not.toContain('quiet');
  });

  it("adds each tenant's columns to the CSV", () => {
    const lines = toCsv(report).trimEnd().split('\n');
    const head = lines[0].split(',');
    for (const t of ['quiet', 'noisy']) for (const h of ['requests', 'ok', '429', 'other errors', 'TTFT p50 ms', 'TTFT p90 ms', 'goodput req/s']) expect(head).toContain(`${t} ${h}`);
    const row = lines[2].split(',');
    const noisy = report.stages[1].tenants!.find((t) => t.tenant === 'noisy')!;
    expect(Number(row[head.indexOf('noisy 429')])).toBe(noisy.rejected429);
    expect(Number(row[head.indexOf('noisy TTFT p90 ms')])).toBe(noisy.ttftMs.p90);
  });

  it('keeps a bounded number of tenants and dropped reasons apart', () => {
    const run = recordedRun('x', [{ rate: 10, n: 60, ttft: 40 }]);
    run.stages[0].records.forEach((r, i) => Object.assign(r, { tenant: `t${i % 20}`, ok: false, status: 429, droppedReason: `reason-${i}` }));
    const ts = buildReport([run]).stages[0].tenants!;
    expect(ts).toHaveLength(17);
    expect(ts.map((t) => t.tenant)).toContain('other tenants');
    for (const t of ts) expect(Object.keys(t.droppedReasons).length).toBeLessThanOrEqual(9);
    const all = ts.find((t) => t.tenant === 'other tenants')!;
    expect(all.requests).toBe(45 - ts.filter((t) => t !== all).reduce((a, t) => a + t.requests, 0));
    expect(all.requests).toBeGreaterThan(0);
  });
});

describe('CSV export', () => {
  it('one row per strategy and stage with raw numbers, empty cells for missing values, quoted and formula-safe strings', () => {
    const runs = [recordedRun('llm-epp', [{ rate: 5, n: 40, ttft: 40 }, { rate: 10, n: 80, ttft: 60 }]), recordedRun('=HYPERLINK("x"),rr', [{ rate: 5, n: 40, ttft: 500 }])];
    const report: Report = buildReport(runs);
    report.stages[2].health = assessHealth(undefined, 1324);
    delete report.stages[0].prefixCacheHitRate; // pods not scraped: an empty cell
    const lines = toCsv(report).trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    const head = lines[0].split(',');
    expect(head.slice(0, 5)).toEqual(['strategy', 'stage', 'stage index', 'x', 'health']);
    for (const h of ['TTFT p50 ms', 'TTFT p99 ms', 'E2E p90 ms', 'goodput req/s', 'prefix-cache hit', 'prompt tokens from cache', 'errors', 'aborted', 'health reasons']) expect(head).toContain(h);
    const row = lines[1].split(',');
    const col = (h: string) => row[head.indexOf(h)];
    expect(row.slice(0, 5)).toEqual(['llm-epp', 'qps=5', '0', '5', 'ok']);
    expect(Number(col('TTFT p50 ms'))).toBe(report.stages[0].ttftMs.p50);
    expect(Number(col('prompt tokens from cache'))).toBe(report.stages[0].cachedTokenRate);
    expect(col('prefix-cache hit')).toBe('');
    expect(Number(col('errors'))).toBe(report.stages[0].failed);
    expect(lines[3].startsWith(`"'=HYPERLINK(""x""),rr",qps=5,0,5,UNRELIABLE,`)).toBe(true);
    expect(lines[3]).toContain('the load generator sent late: schedule delay p99 1,324 ms');
  });

  it('is written next to the JSON and the HTML, which links to it', () => {
    const runs = [recordedRun('llm-epp', [{ rate: 10, n: 40, ttft: 40 }])];
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-report-csv-'));
    const files = writeReports(buildReport(runs), join(dir, 'run'), runs);
    expect(files.csv).toBe(join(dir, 'run.csv'));
    expect(readFileSync(files.csv, 'utf8').split('\n')[1]).toMatch(/^llm-epp,qps=10,0,10,/);
    expect(readFileSync(files.html, 'utf8')).toContain('<a href="run.csv">table as CSV</a>');
  });
});

describe('request-level series', () => {
  it('a CDF keeps at most 200 points, rises to 1 and never falls', () => {
    const v = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000);
    const p = cdfPoints(v);
    expect(p).toHaveLength(200);
    expect(p[0]).toEqual([0, 0.001]);
    expect(p[199]).toEqual([999, 1]);
    for (let i = 1; i < p.length; i++) {
      expect(p[i][0]).toBeGreaterThanOrEqual(p[i - 1][0]);
      expect(p[i][1]).toBeGreaterThan(p[i - 1][1]);
    }
    expect(cdfPoints([3, 1, 2])).toEqual([[1, 1 / 3], [2, 2 / 3], [3, 1]]);
    expect(cdfPoints([])).toEqual([]);
  });

  it('TTFT over time is the median per bin from the stage start, warm-up included, failures left out', () => {
    const st = recordedRun('x', [{ rate: 10, n: 40, ttft: 100 }]).stages[0];
    const pts = overTime(st, (r) => (r.ok ? r.ttftMs : undefined), 1);
    expect(pts.map((p) => p[0])).toEqual([0.5, 1.5, 2.5, 3.5]);
    const inBin = (b: number) => st.records.filter((r) => r.ok && Math.floor((r.startMs - st.startMs) / 1000) === b).map((r) => r.ttftMs!).sort((a, b) => a - b);
    for (const [i, [, y]] of pts.entries()) {
      const v = inBin(i);
      expect(y).toBe(v[Math.ceil(v.length / 2) - 1]);
    }
    // The warm-up's slow start shows: the first bin is slower than the last.
    expect(pts[0][1]).toBeGreaterThan(pts[3][1]);
  });
});
