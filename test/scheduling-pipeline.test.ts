// The scheduling pipeline (src/scheduling/pipeline.ts) and the request
// plugins request control runs around it (src/request-control/request-plugins.ts):
// scores clamped to [0, 1] (NaN ⇒ 0), totals Σ weight × score (not divided by
// the weight sum), the picker sees only what survived the filters, and what
// happens when a plugin throws: a filter passes its input through, a scorer
// scores 0, a data producer or PreRequest hook is skipped — each logged —
// while an exception from the picker or profile handler propagates (those
// calls are not guarded).
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../src/log.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import type { Endpoint } from '../src/pool/endpoint.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { stateKey, type CycleState, type DataProducer, type Filter, type Picker, type PreRequest, type ProfileHandler, type ScoredEndpoint, type Scorer, type SchedulerProfile, type Plugin } from '../src/scheduling/framework.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import type { SchedulingRequest, SchedulingResult } from '../src/scheduling/types.ts';
import { context, create, makePool, request, seeded, type EpSpec, runCycle } from './helpers/scheduling.ts';

const silent = createLogger('silent');
const req = () => request({ model: 'm', prompt: 'hello' });

function fixedScorer(name: string, scores: number[] | (() => Float64Array)): Scorer & { calls: number } {
  const s = {
    type: 'test-scorer',
    name,
    category: 'balance' as const,
    calls: 0,
    score(_st: CycleState, eps: readonly Endpoint[]): Float64Array {
      s.calls++;
      if (typeof scores === 'function') return scores();
      return Float64Array.from(eps.map((e) => scores[Number(e.name.slice(4)) - 1]));
    },
  };
  return s;
}

function keepFilter(name: string, keep: (e: Endpoint) => boolean): Filter & { seen: string[][] } {
  const f = {
    type: 'test-filter',
    name,
    seen: [] as string[][],
    filter(_st: CycleState, eps: readonly Endpoint[]) {
      f.seen.push(eps.map((e) => e.name));
      return eps.filter(keep);
    },
  };
  return f;
}

function throwing<T extends Plugin>(base: T, method: keyof T): T {
  return { ...base, [method]: () => { throw new Error(`${base.name} exploded`); } } as T;
}

/** A picker that records what it was offered, then delegates to the real max-score-picker. */
function recordingPicker(pool: Parameters<typeof create>[2]): Picker & { offered: ScoredEndpoint[][] } {
  const inner = create<Picker>('max-score-picker', {}, pool, seeded(3));
  const p = {
    type: 'recording-picker',
    name: 'recording-picker',
    maxEndpoints: undefined,
    offered: [] as ScoredEndpoint[][],
    pick(st: CycleState, scored: readonly ScoredEndpoint[], max: number) {
      p.offered.push([...scored]);
      return inner.pick(st, scored, max);
    },
  };
  return p;
}

interface Built {
  scheduler: PipelineScheduler;
  endpoints: Endpoint[];
  picker: ReturnType<typeof recordingPicker>;
  /** One request as request control runs it: producers, the scheduler's profiles, PreRequest hooks. */
  run(request: SchedulingRequest, candidates: readonly Endpoint[], max: number): SchedulingResult;
}

function build(
  specs: EpSpec[],
  parts: { filters?: Filter[]; scorers?: { scorer: Scorer; weight: number }[]; extra?: Plugin[]; picker?: Picker; handler?: ProfileHandler },
  log: Logger = silent,
  metrics?: EppMetrics,
): Built {
  const { pool, endpoints } = makePool(specs);
  const picker = recordingPicker(pool);
  const profile: SchedulerProfile = { name: 'default', filters: parts.filters ?? [], scorers: parts.scorers ?? [], picker: parts.picker ?? picker };
  const handler = parts.handler ?? create<ProfileHandler>('single-profile-handler', {}, pool);
  const plugins = new Map<string, Plugin>();
  for (const p of [...(parts.filters ?? []), ...(parts.scorers ?? []).map((s) => s.scorer), ...(parts.extra ?? []), profile.picker, handler]) plugins.set(p.name, p);
  const scheduler = new PipelineScheduler({ plugins, profiles: new Map([['default', profile]]), profileHandler: handler }, log, metrics);
  const run = (request: SchedulingRequest, candidates: readonly Endpoint[], max: number) => runCycle(scheduler, request, candidates, max);
  return { scheduler, endpoints, picker, run };
}

/** A logger whose error lines are collected. */
function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'error' }, stream) as unknown as Logger, lines };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('scheduling pipeline: scores', () => {
  it('clamps each scorer\'s scores to [0, 1]; NaN counts as 0', () => {
    const wild = fixedScorer('wild', [1.7, -0.3, Number.NaN, 0.25, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    const { run, endpoints } = build([{}, {}, {}, {}, {}, {}], { scorers: [{ scorer: wild, weight: 1 }] });
    const r = run(req(), endpoints, 1);
    const totals = endpoints.map((e) => r.scores!().get(e));
    expect(totals).toEqual([1, 0, 0, 0.25, 1, 0]);
    for (const t of totals) expect(Number.isNaN(t)).toBe(false);
    // explain() reports the clamped value per plugin too.
    expect(r.explain!()).toMatchObject({ chosen: { plugins: { wild: 1 } } });
  });

  it('a NaN from one scorer does not poison the others\' contribution', () => {
    const nan = fixedScorer('nan', [Number.NaN, Number.NaN]);
    const good = fixedScorer('good', [0.2, 0.6]);
    const { run, endpoints } = build([{}, {}], { scorers: [{ scorer: nan, weight: 5 }, { scorer: good, weight: 2 }] });
    const r = run(req(), endpoints, 2);
    expect(endpoints.map((e) => r.scores!().get(e))).toEqual([0.4, 1.2]);
    expect(r.endpoints.map((e) => e.name)).toEqual(['pod-2', 'pod-1']);
  });

  it('totals are Σ weight × clamped score, not divided by the sum of weights', () => {
    const a = fixedScorer('a', [0.5, 1, 0, 0.9]);
    const b = fixedScorer('b', [1, 0.25, 0.5, 1.4]); // 1.4 clamps to 1
    const zero = fixedScorer('zero', [1, 1, 1, 0]); // weight 0: no influence
    const { run, endpoints } = build([{}, {}, {}, {}], { scorers: [{ scorer: a, weight: 2 }, { scorer: b, weight: 3 }, { scorer: zero, weight: 0 }] });
    const r = run(req(), endpoints, 4);
    const totals = endpoints.map((e) => r.scores!().get(e)!);
    const expected = [2 * 0.5 + 3 * 1, 2 * 1 + 3 * 0.25, 2 * 0 + 3 * 0.5, 2 * 0.9 + 3 * 1];
    totals.forEach((t, i) => expect(t).toBeCloseTo(expected[i], 12));
    expect(r.endpoints.map((e) => e.name)).toEqual(['pod-4', 'pod-1', 'pod-2', 'pod-3']);
  });

  it('weights from the config flow into the totals (queue 2 + kv-cache 3, real scorers)', () => {
    const { pool, endpoints } = makePool([
      { waitingQueueSize: 0, kvCacheUsage: 0.5 },
      { waitingQueueSize: 10, kvCacheUsage: 0 },
      { waitingQueueSize: 5, kvCacheUsage: 0.2 },
    ]);
    const yaml = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: queue-scorer, weight: 2}
  - {pluginRef: kv-cache-utilization-scorer, weight: 3}
`;
    const c = loadConfig(parseConfigText(yaml, 't'), createRegistry(), context(pool), 't');
    const r = runCycle(new PipelineScheduler(c, silent), req(), endpoints, 3);
    // queue: (max − q)/(max − min) = 1, 0, 0.5; kv: 1 − usage = 0.5, 1, 0.8
    const expected = [2 * 1 + 3 * 0.5, 2 * 0 + 3 * 1, 2 * 0.5 + 3 * 0.8];
    endpoints.forEach((e, i) => expect(r.scores!().get(e)).toBeCloseTo(expected[i], 12));
    expect(r.endpoints.map((e) => e.name)).toEqual(['pod-1', 'pod-3', 'pod-2']);
  });

  it('with no scorers every total is 0 and the picker still picks', () => {
    const { run, endpoints } = build([{}, {}], {});
    const r = run(req(), endpoints, 1);
    expect(r.endpoints).toHaveLength(1);
    expect([...r.scores!().values()]).toEqual([0, 0]);
  });
});

describe('scheduling pipeline: filters and the picker', () => {
  it('the picker is offered only the endpoints that survived every filter, in filter order', () => {
    const best = fixedScorer('s', [1, 0.9, 0.1, 0.5]); // pod-1 would win if it were not filtered out
    const notOne = keepFilter('not-one', (e) => e.name !== 'pod-1');
    const notThree = keepFilter('not-three', (e) => e.name !== 'pod-3');
    const { run, endpoints, picker } = build([{}, {}, {}, {}], { filters: [notOne, notThree], scorers: [{ scorer: best, weight: 1 }] });
    const r = run(req(), endpoints, 4);
    expect(notOne.seen).toEqual([['pod-1', 'pod-2', 'pod-3', 'pod-4']]);
    expect(notThree.seen).toEqual([['pod-2', 'pod-3', 'pod-4']]);
    expect(picker.offered).toHaveLength(1);
    expect(picker.offered[0].map((s) => [s.endpoint.name, s.score])).toEqual([
      ['pod-2', 0.9],
      ['pod-4', 0.5],
    ]);
    // Even when asked for 4, only survivors are returned.
    expect(r.endpoints.map((e) => e.name)).toEqual(['pod-2', 'pod-4']);
    expect([...r.scores!().keys()].map((e) => e.name)).toEqual(['pod-2', 'pod-4']);
  });

  it('scorers see only the survivors too', () => {
    const seen: string[][] = [];
    const s: Scorer = {
      type: 't',
      name: 'seeing',
      category: 'balance',
      score: (_st, eps) => {
        seen.push(eps.map((e) => e.name));
        return new Float64Array(eps.length);
      },
    };
    const { run, endpoints } = build([{}, {}, {}], { filters: [keepFilter('f', (e) => e.name === 'pod-3')], scorers: [{ scorer: s, weight: 1 }] });
    expect(run(req(), endpoints, 1).endpoints.map((e) => e.name)).toEqual(['pod-3']);
    expect(seen).toEqual([['pod-3']]);
  });

  it('when a filter removes everyone: no endpoints, later filters, scorers and the picker are not run', () => {
    const none = keepFilter('none', () => false);
    const later = keepFilter('later', () => true);
    const s = fixedScorer('s', [1, 1]);
    const { run, endpoints, picker } = build([{}, {}], { filters: [none, later], scorers: [{ scorer: s, weight: 1 }] });
    const r = run(req(), endpoints, 1);
    expect(r.endpoints).toEqual([]);
    expect(later.seen).toEqual([]);
    expect(s.calls).toBe(0);
    expect(picker.offered).toEqual([]);
  });

  it('the picker gets maxEndpoints from the caller unless it sets maxNumOfEndpoints', () => {
    const { pool, endpoints } = makePool([{}, {}, {}, {}]);
    const capped = create<Picker>('max-score-picker', { maxNumOfEndpoints: 2 }, pool, seeded(1));
    const b1 = build([{}, {}, {}, {}], { picker: capped });
    expect(b1.run(req(), b1.endpoints, 4).endpoints).toHaveLength(2);
    const b2 = build([{}, {}, {}, {}], {});
    expect(b2.run(req(), b2.endpoints, 3).endpoints).toHaveLength(3);
    expect(endpoints).toHaveLength(4);
  });
});

describe('scheduling pipeline: a throwing plugin', () => {
  it('a throwing filter passes its input through to the next filter, and is logged', () => {
    const { log, lines } = capturingLogger();
    const bad = throwing(keepFilter('bad-filter', () => false), 'filter');
    const next = keepFilter('next', (e) => e.name !== 'pod-2');
    const { run, endpoints, picker } = build([{}, {}, {}], { filters: [bad, next] }, log);
    const r = run(req(), endpoints, 3);
    expect(next.seen).toEqual([['pod-1', 'pod-2', 'pod-3']]);
    expect(picker.offered[0].map((s) => s.endpoint.name)).toEqual(['pod-1', 'pod-3']);
    expect(r.endpoints.map((e) => e.name).sort()).toEqual(['pod-1', 'pod-3']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ plugin: 'bad-filter', extensionPoint: 'Filter', err: { message: 'bad-filter exploded' } });
  });

  it('a throwing scorer scores 0 everywhere; the others still count', () => {
    const { log, lines } = capturingLogger();
    const bad = throwing(fixedScorer('bad-scorer', [1, 0]), 'score');
    const good = fixedScorer('good', [0.1, 0.3]);
    const { run, endpoints } = build([{}, {}], { scorers: [{ scorer: bad, weight: 100 }, { scorer: good, weight: 1 }] }, log);
    const r = run(req(), endpoints, 2);
    expect(endpoints.map((e) => r.scores!().get(e))).toEqual([0.1, 0.3]);
    expect(r.endpoints[0].name).toBe('pod-2');
    expect(r.explain!()).toMatchObject({ chosen: { endpoint: endpoints[1].key, plugins: { 'bad-scorer': 0, good: 0.3 } } });
    expect(lines.map((l) => [l.plugin, l.extensionPoint])).toEqual([['bad-scorer', 'Scorer']]);
  });

  it('a throwing data producer is skipped; other producers and the profile still run', () => {
    const { log, lines } = capturingLogger();
    let ran = 0;
    const K = stateKey<number>('k', 'good-producer');
    const badProducer = throwing<DataProducer>({ type: 'p', name: 'bad-producer', produces: [], produce: () => {} }, 'produce');
    const goodProducer: DataProducer = { type: 'p', name: 'good-producer', produces: [K], produce: (st) => { ran++; st.set(K, 0.7); } };
    const reads: Scorer = { type: 't', name: 'reads', category: 'affinity', consumes: [K], score: (st, eps) => new Float64Array(eps.length).fill(st.get(K) ?? 0) };
    const { run, endpoints } = build([{}, {}], { extra: [badProducer, goodProducer], scorers: [{ scorer: reads, weight: 1 }] }, log);
    const r = run(req(), endpoints, 1);
    expect(ran).toBe(1);
    expect(r.endpoints).toHaveLength(1);
    expect([...r.scores!().values()]).toEqual([0.7, 0.7]);
    expect(lines.map((l) => [l.plugin, l.extensionPoint])).toEqual([['bad-producer', 'PrepareData']]);
  });

  it('a throwing PreRequest hook does not lose the result; the other hooks still run with the chosen endpoint', () => {
    const { log, lines } = capturingLogger();
    const got: string[] = [];
    const bad = throwing<PreRequest>({ type: 'h', name: 'bad-hook', preRequest: () => {} }, 'preRequest');
    const good: PreRequest = { type: 'h', name: 'good-hook', preRequest: (_st, primary) => got.push(primary.name) };
    const s = fixedScorer('s', [0, 1, 0]);
    const { run, endpoints } = build([{}, {}, {}], { extra: [bad, good], scorers: [{ scorer: s, weight: 1 }] }, log);
    const r = run(req(), endpoints, 1);
    expect(r.endpoints.map((e) => e.name)).toEqual(['pod-2']);
    expect(got).toEqual(['pod-2']);
    expect(lines.map((l) => [l.plugin, l.extensionPoint])).toEqual([['bad-hook', 'PreRequest']]);
  });

  it('PreRequest hooks do not run when no endpoint was chosen', () => {
    const got: string[] = [];
    const hook: PreRequest = { type: 'h', name: 'hook', preRequest: (_st, p) => got.push(p.name) };
    const { run, endpoints } = build([{}, {}], { extra: [hook], filters: [keepFilter('none', () => false)] });
    expect(run(req(), endpoints, 1).endpoints).toEqual([]);
    expect(got).toEqual([]);
  });

  it('a throwing picker or profile handler is not guarded: the exception reaches the caller', () => {
    const { pool } = makePool([{}]);
    const badPicker = throwing(create<Picker>('max-score-picker', {}, pool), 'pick');
    const b1 = build([{}, {}], { picker: badPicker });
    expect(() => b1.run(req(), b1.endpoints, 1)).toThrow(/max-score-picker exploded/);
    const badHandler = throwing(create<ProfileHandler>('single-profile-handler', {}, pool), 'pickProfiles');
    const b2 = build([{}, {}], { handler: badHandler });
    expect(() => b2.run(req(), b2.endpoints, 1)).toThrow(/single-profile-handler exploded/);
  });

  it('a failing plugin call is still timed into llm_d_epp_plugin_duration_seconds and its deprecated twin', async () => {
    const { pool } = makePool([]);
    const metrics = new EppMetrics(pool, { poolName: 'p', stalenessThresholdMs: 2000, version: 't', processMetrics: false });
    const bad = throwing(fixedScorer('bad-scorer', [1, 1]), 'score');
    const good = fixedScorer('good-scorer', [1, 1]);
    const { run, endpoints } = build([{}, {}], { scorers: [{ scorer: bad, weight: 1 }, { scorer: good, weight: 1 }] }, silent, metrics);
    run(req(), endpoints, 1);
    run(req(), endpoints, 1);
    for (const metric of ['llm_d_epp_plugin_duration_seconds', 'inference_extension_plugin_duration_seconds']) {
      const values = (await metrics.registry.getSingleMetric(metric)!.get()).values as { metricName?: string; labels: Record<string, string | number>; value: number }[];
      const count = (name: string, point: string) =>
        values.find((v) => v.metricName === `${metric}_count` && v.labels.plugin_name === name && v.labels.extension_point === point)?.value;
      expect(count('bad-scorer', 'Scorer')).toBe(2);
      expect(count('good-scorer', 'Scorer')).toBe(2);
      expect(count('recording-picker', 'Picker')).toBe(2);
      expect(count('single-profile-handler', 'ProfileHandler')).toBe(4); // asked twice per cycle: run the profile, then done
    }
    await flush();
  });
});
