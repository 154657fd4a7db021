import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, summarize } from '../bench/lib/stats.ts';
import { goodput, podSpread, prefixCacheHitRate, tpotOf, buildReport, toMarkdown, writeReports } from '../bench/load/report.ts';
import { FAIRNESS_HEADER, OBJECTIVE_HEADER, makeWorkload, nextArrival, parseTenant, parseTrace, type ChatRequest, type TenantSpec, type WorkItem } from '../bench/load/workloads.ts';
import { parseDuration, planFromArgs } from '../bench/load/cli.ts';
import { parseCacheCounters, cacheScraper } from '../bench/load/metrics.ts';
import { runStages } from '../bench/load/runner.ts';
import { startSimPod, type SimPod } from '../bench/sim/server.ts';
import { demoPlanFromArgs } from '../bench/demo.ts';

describe('load generator statistics', () => {
  it('nearest-rank percentiles on known data', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 1..100, unsorted
    const s = summarize(xs);
    expect(s).toMatchObject({ count: 100, mean: 50.5, p50: 50, p90: 90, p99: 99, p999: 100, max: 100 });
    expect(percentile(Float64Array.from([1, 2, 3, 4]), 50)).toBe(2);
    expect(percentile(Float64Array.from([7]), 99)).toBe(7);
    expect(summarize([]).p50).toBeNaN();
  });

  it('TPOT, goodput against an SLO, pod spread and the prefix-cache hit rate', () => {
    expect(tpotOf({ ttftMs: 100, e2eMs: 1090, outputTokens: 100 })).toBe(10);
    expect(tpotOf({ ttftMs: 100, e2eMs: 1090, outputTokens: 1 })).toBeUndefined();
    const recs = [
      { ok: true, ttftMs: 100, e2eMs: 600, outputTokens: 51 }, // tpot 10: meets
      { ok: true, ttftMs: 3000, e2eMs: 3500, outputTokens: 51 }, // TTFT too long
      { ok: true, ttftMs: 100, e2eMs: 10_100, outputTokens: 51 }, // tpot 200: too slow
      { ok: false, ttftMs: 100, e2eMs: 600, outputTokens: 51 },
    ];
    expect(goodput(recs, { ttftMs: 2000, tpotMs: 100 }, 2)).toEqual({ met: 1, requestsPerS: 0.5, fraction: 0.25 });
    const even = podSpread(['a', 'b', 'a', 'b'], ['a', 'b']);
    expect(even.cv).toBe(0);
    const skew = podSpread(['a', 'a', 'a', 'a'], ['a', 'b']);
    expect(skew).toMatchObject({ cv: 1, min: 0, max: 4, counts: { a: 4, b: 0 } });
    const h = prefixCacheHitRate({ a: { hits: 10, queries: 100 }, b: { hits: 500, queries: 1000 } }, { a: { hits: 60, queries: 200 }, b: { hits: 20, queries: 50 } });
    // a: 50/100; b restarted (counters went down): 20/50.
    expect(h).toMatchObject({ hits: 70, queries: 150, perPod: { a: 0.5, b: 0.4 } });
    expect(h.rate).toBeCloseTo(70 / 150);
    expect(parseCacheCounters('vllm:prefix_cache_hits_total{engine="0",model_name="m"} 12.0\nvllm:prefix_cache_queries_total{engine="0",model_name="m"} 40.0\n')).toEqual({ hits: 12, queries: 40 });
  });
});

describe('workloads', () => {
  const sys = (b: ChatRequest) => b.messages[0].content;

  it('shared-prefix: groups share their system prompt exactly, and no block with other groups', () => {
    const w = makeWorkload('shared-prefix', { groups: 3, promptsPerGroup: 4, systemTokens: 100, questionTokens: 20, outputTokens: 7 });
    const items = Array.from({ length: 12 }, () => w.next()!);
    const byGroup = new Map<number, Set<string>>();
    for (const it of items) {
      if (!byGroup.has(it.group!)) byGroup.set(it.group!, new Set());
      byGroup.get(it.group!)!.add(sys(it.body));
      expect(sys(it.body)).toHaveLength(400);
      expect(it.body.messages[1].content).toHaveLength(80);
      expect(it.body).toMatchObject({ max_tokens: 7, stream: true, stream_options: { include_usage: true }, ignore_eos: true });
    }
    expect([...byGroup.values()].map((s) => s.size)).toEqual([1, 1, 1]);
    const firsts = [...byGroup.values()].map((s) => [...s][0].slice(0, 64));
    expect(new Set(firsts).size).toBe(3);
    expect(new Set(items.map((i) => i.id)).size).toBe(12);
  });

  it('multi-turn: each turn carries the history and waits for the previous answer', () => {
    const w = makeWorkload('multi-turn', { conversations: 1, turns: 3, systemTokens: 50, userTokens: 10, outputTokens: 5 });
    const t1 = w.next()!;
    expect(w.next()).toBeUndefined(); // the only conversation is busy
    w.complete(t1, { ok: true, text: 'ANSWER-1' });
    const t2 = w.next()!;
    expect(t2.body.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(t2.body.messages[2].content).toBe('ANSWER-1');
    expect(t2.promptTokens).toBeGreaterThan(t1.promptTokens);
  });

  it('multi-turn: turns are not taken in a fixed rotation (which would pin conversations to round-robin pods)', () => {
    const w = makeWorkload('multi-turn', { conversations: 8, turns: 5, systemTokens: 10, userTokens: 5, outputTokens: 2 });
    const pods = new Map<number, Set<number>>();
    for (let i = 0; i < 40; i++) {
      const it = w.next()!;
      // A round-robin router over 8 pods sends request i to pod i mod 8.
      if (!pods.has(it.session!)) pods.set(it.session!, new Set());
      pods.get(it.session!)!.add(i % 8);
      w.complete(it, { ok: true, text: 'a' });
    }
    const distinct = [...pods.values()].map((s) => s.size);
    expect(distinct.reduce((a, b) => a + b, 0) / distinct.length).toBeGreaterThan(2);
  });

  it('no-sharing prompts share nothing; trace replay reads JSONL (and Mooncake hash ids) and rejects bad lines', () => {
    const w = makeWorkload('no-sharing', { promptTokens: 50, outputTokens: 3 });
    const a = w.next()!.body.messages[0].content;
    const b = w.next()!.body.messages[0].content;
    expect(a.slice(0, 16)).not.toBe(b.slice(0, 16));
    const lines = parseTrace('{"timestamp": 2, "input": "hello", "output": 4}\n# comment\n\n{"timestamp": 0, "input_length": 1000, "output_length": 9, "hash_ids": [1, 2]}\n');
    expect(lines.map((l) => l.timestamp)).toEqual([0, 2]);
    const t = makeWorkload('trace', { text: '{"timestamp":0,"input_length":600,"output_length":2,"hash_ids":[7,8]}\n{"timestamp":1,"input_length":600,"output_length":2,"hash_ids":[7,9]}', blockTokens: 512 });
    const x = t.next()!;
    const y = t.next()!;
    expect(x.body.messages[0].content.slice(0, 2048)).toBe(y.body.messages[0].content.slice(0, 2048));
    expect(x.body.messages[0].content.slice(2048)).not.toBe(y.body.messages[0].content.slice(2048));
    expect(y.at).toBe(1);
    expect(() => parseTrace('{"timestamp": -1, "input": "x"}')).toThrow(/line 1: bad timestamp/);
    expect(() => parseTrace('nope')).toThrow(/line 1: invalid JSON/);
  });
});

describe('multi-tenant workload', () => {
  const quiet: TenantSpec = { name: 'quiet', objective: 'critical', rate: 2 };
  const noisy: TenantSpec = { name: 'noisy', objective: 'standard', rate: 1, burst: { rate: 50, fromS: 10, toS: 20 } };
  /** Every item up to `untilS` seconds. */
  const upTo = (tenants: TenantSpec[], untilS: number, seed = 3): WorkItem[] => {
    const w = makeWorkload('tenants', { tenants, seed, promptTokens: 20, outputTokens: 2 });
    const out: WorkItem[] = [];
    for (let it = w.next(); it && it.at! < untilS; it = w.next()) out.push(it);
    return out;
  };

  it('reads tenants from the command line and rejects what cannot be a header or a rate', () => {
    expect(parseTenant('noisy,rate=3,objective=standard,burst=40@5s-25s')).toEqual({ name: 'noisy', rate: 3, objective: 'standard', burst: { rate: 40, fromS: 5, toS: 25 } });
    expect(parseTenant('batch,burst=10@1m-2m,kind=shared-prefix')).toEqual({ name: 'batch', rate: 0, burst: { rate: 10, fromS: 60, toS: 120 }, kind: 'shared-prefix' });
    expect(() => parseTenant('bad name,rate=1')).toThrow(/tenant name "bad name"/);
    expect(() => parseTenant('x,rate=1,objective=a\nb')).toThrow(/objective/);
    expect(() => parseTenant('x')).toThrow(/give rate=R/);
    expect(() => parseTenant('x,rate=-1')).toThrow(/rate must be a number >= 0/);
    expect(() => parseTenant('x,rate=1,burst=5@9s-3s')).toThrow(/TO > FROM/);
    expect(() => parseTenant('x,rate=1,burst=5')).toThrow(/RATE@FROM-TO/);
    expect(() => parseTenant('x,rate=1,colour=red')).toThrow(/unknown setting "colour"/);
    expect(() => makeWorkload('tenants', { tenants: [quiet, quiet] })).toThrow(/given twice/);
    expect(() => makeWorkload('tenants', { tenants: Array.from({ length: 17 }, (_, i) => ({ name: `t${i}`, rate: 1 })) })).toThrow(/at most 16 tenants/);
    const plan = planFromArgs(['--url', 'http://a:1', '--workload', 'tenants', '--tenant', 'quiet,rate=1,objective=critical', '--tenant', 'noisy,rate=2', '--duration', '5s', '--prompt-tokens', '64']);
    expect(plan).toMatchObject({ kind: 'tenants', workloadOptions: { tenants: [{ name: 'quiet', rate: 1, objective: 'critical' }, { name: 'noisy', rate: 2 }], promptTokens: 64 } });
    expect(plan !== 'help' && plan.stages).toEqual([{ name: 'tenants', durationMs: 5000, warmupMs: 0 }]);
    expect(() => planFromArgs(['--url', 'http://a:1', '--workload', 'tenants'])).toThrow(/needs --tenant/);
    expect(() => planFromArgs(['--url', 'http://a:1', '--rates', '1', '--tenant', 'x,rate=1'])).toThrow(/--tenant goes with --workload tenants/);
  });

  it("each tenant's requests carry its fairness id and objective, in arrival order, at its own rate and burst", () => {
    const items = upTo([quiet, noisy], 30);
    expect(items[0].at).toBe(0);
    for (let i = 1; i < items.length; i++) expect(items[i].at!).toBeGreaterThanOrEqual(items[i - 1].at!);
    for (const it of items) {
      const t = it.tenant === 'quiet' ? quiet : noisy;
      expect(it.headers).toEqual({ [FAIRNESS_HEADER]: t.name, [OBJECTIVE_HEADER]: t.objective });
      expect(it.id.startsWith(`${t.name}/`)).toBe(true);
    }
    expect(new Set(items.map((i) => i.id)).size).toBe(items.length);
    const count = (tenant: string, from: number, to: number) => items.filter((i) => i.tenant === tenant && i.at! >= from && i.at! < to).length;
    // Poisson counts (seeded): about rate × window, the burst's rate inside its window only.
    expect(count('noisy', 10, 20)).toBeGreaterThan(400);
    expect(count('noisy', 10, 20)).toBeLessThan(600);
    expect(count('noisy', 0, 10) + count('noisy', 20, 30)).toBeLessThan(40);
    expect(count('quiet', 0, 30)).toBeGreaterThan(40);
    expect(count('quiet', 0, 30)).toBeLessThan(80);
    // Another tenant's presence changes neither a tenant's arrivals nor its text.
    const alone = upTo([quiet], 30);
    expect(alone.map((i) => [i.at, i.id, i.body.messages[0].content])).toEqual(items.filter((i) => i.tenant === 'quiet').map((i) => [i.at, i.id, i.body.messages[0].content]));
    // Different tenants' prompts share nothing.
    const q = items.find((i) => i.tenant === 'quiet')!.body.messages[0].content;
    const n = items.find((i) => i.tenant === 'noisy')!.body.messages[0].content;
    expect(q.slice(0, 16)).not.toBe(n.slice(0, 16));
  });

  it('a piecewise Poisson process: nothing while the rate is 0, the burst from its start, never after an empty tail', () => {
    const burstOnly: TenantSpec = { name: 'b', rate: 0, burst: { rate: 5, fromS: 4, toS: 6 } };
    const items = upTo([burstOnly], 100);
    expect(items.length).toBeGreaterThan(0);
    expect(items[0].at).toBe(4);
    expect(items.every((i) => i.at! >= 4 && i.at! < 6)).toBe(true);
    let r = 0;
    const fixed = () => (r = (r + 0.37) % 1);
    expect(nextArrival(burstOnly, 6, fixed)).toBe(Infinity);
    expect(nextArrival({ name: 'c', rate: 2 }, 1, () => 0.5)).toBeCloseTo(1 + Math.log(2) / 2, 12);
  });
});

describe('load generator command line', () => {
  it('parses durations, strategies and stages, and rejects bad input clearly', () => {
    expect(parseDuration('20s')).toBe(20_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(() => parseDuration('fast')).toThrow(/bad duration/);
    const plan = planFromArgs(['--url', 'epp=http://a:1', '--url', 'rr=http://b:2', '--rates', '2,4', '--duration', '5s', '--warmup', '1s', '--groups', '10']);
    expect(plan).toMatchObject({ targets: [['epp', 'http://a:1'], ['rr', 'http://b:2']], kind: 'shared-prefix', workloadOptions: { groups: 10 } });
    expect(plan !== 'help' && plan.stages).toEqual([
      { rate: 2, durationMs: 5000, warmupMs: 1000 },
      { rate: 4, durationMs: 5000, warmupMs: 1000 },
    ]);
    expect(() => planFromArgs(['--rates', '1'])).toThrow(/--url is required/);
    expect(() => planFromArgs(['--url', 'http://a', '--workload', 'x', '--rates', '1'])).toThrow(/unknown --workload/);
    expect(() => planFromArgs(['--url', 'http://a'])).toThrow(/--rates/);
    const demo = demoPlanFromArgs(['--pods', '4', '--strategies', 'llm-epp,random', '--rates', '5,10', '--groups', '20', '--system-tokens', '1000']);
    expect(demo).toMatchObject({ pods: 4, strategies: ['llm-epp', 'random'], simArgs: [`--num-gpu-blocks=${Math.ceil((20 * 1000) / 0.7 / 4 / 16)}`] });
    expect(() => demoPlanFromArgs(['--strategies', 'magic'])).toThrow(/unknown strategy "magic"/);
  });
});

describe('load runner against a simulated pod', () => {
  let pod: SimPod;
  beforeAll(async () => {
    pod = await startSimPod({ model: 'sim-model', timeScale: 0.05, enablePromptTokensDetails: true, name: 'sim-0' });
  });
  afterAll(async () => {
    await pod.close();
  });

  it('open loop and closed loop stages record TTFT, ITL, tokens, the pod and cache counters; reports are written', async () => {
    const url = `http://127.0.0.1:${pod.port}`;
    const run = await runStages({
      url,
      strategy: 'direct',
      workload: makeWorkload('shared-prefix', { groups: 2, promptsPerGroup: 3, systemTokens: 300, questionTokens: 30, outputTokens: 6 }),
      stages: [
        { rate: 20, durationMs: 600, warmupMs: 200 },
        { concurrency: 3, maxRequests: 9, durationMs: 60_000 },
      ],
      seed: 3,
      progress: false,
      cacheCounters: cacheScraper({ 'sim-0': `${url}/metrics` }),
    });
    expect(run.stages).toHaveLength(2);
    const [open, closed] = run.stages;
    expect(open.records.some((r) => r.warmup)).toBe(true);
    expect(closed.records).toHaveLength(9);
    for (const r of [...open.records, ...closed.records]) {
      expect(r.ok, r.error).toBe(true);
      expect(r.outputTokens).toBe(6);
      expect(r.itlMs).toHaveLength(5);
      expect(r.ttftMs).toBeGreaterThan(0);
      expect(r.e2eMs).toBeGreaterThanOrEqual(r.ttftMs!);
      expect(r.pod).toBe('sim-0');
    }
    const report = buildReport(run, { pods: ['sim-0'] });
    const s0 = report.stages[0];
    expect(s0.requests).toBe(open.records.filter((r) => !r.warmup).length);
    expect(s0.prefixCacheHitRate!.rate).toBeGreaterThan(0.5); // 2 system prompts, reused
    expect(s0.cachedTokenRate).toBeGreaterThan(0.5);
    expect(s0.goodput.fraction).toBe(1);
    const md = toMarkdown(report);
    expect(md).toMatch(/\| qps=20 \| direct \|/);
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-load-'));
    const files = writeReports(report, join(dir, 'r'), [run]);
    expect(JSON.parse(readFileSync(files.json, 'utf8')).stages).toHaveLength(2);
    expect(readFileSync(files.html, 'utf8')).toMatch(/<svg/);
  });

  it('schedule delays are never negative: a request is not sent before its time (timers fire up to 1 ms early)', async () => {
    const run = await runStages({
      url: `http://127.0.0.1:${pod.port}`,
      workload: makeWorkload('no-sharing', { promptTokens: 10, outputTokens: 2 }),
      stages: [{ rate: 100, durationMs: 1000 }],
      arrival: 'constant',
      progress: false,
    });
    const recs = run.stages[0].records;
    expect(recs.length).toBeGreaterThan(50);
    for (const r of recs) {
      expect(r.scheduleDelayMs).toBeGreaterThanOrEqual(0);
      expect(r.startMs).toBeGreaterThanOrEqual(r.intendedMs);
    }
  });

  it('counts an unreachable target as errors instead of failing the run', async () => {
    const run = await runStages({
      url: 'http://127.0.0.1:1',
      workload: makeWorkload('no-sharing', { promptTokens: 10, outputTokens: 2 }),
      stages: [{ concurrency: 2, maxRequests: 4, durationMs: 60_000 }],
      progress: false,
    });
    expect(run.stages[0].records).toHaveLength(4);
    expect(run.stages[0].records.every((r) => !r.ok && r.error === 'ECONNREFUSED')).toBe(true);
  });
});

describe('report charts', () => {
  it('the y axis always covers the largest value (no line drawn above the plot)', async () => {
    const { svgLineChart } = await import('../bench/load/report.ts');
    const svg = svgLineChart('t', 'x', 'y', [{ name: 'a', points: [[2, 273], [22, 4830], [30, 12880]] }, { name: 'b', points: [[2, 269], [22, 698], [30, 9224]] }]);
    const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(ys).toHaveLength(6);
    // Plot area: top margin 28 px, height 280 − 28 − 44.
    for (const y of ys) expect(y).toBeGreaterThanOrEqual(28);
    expect(svg).toContain('>15k<');
  });
});
