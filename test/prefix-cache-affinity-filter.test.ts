// prefix-cache-affinity-filter: keeps the endpoints whose prefix match reaches
// affinityThreshold, steps aside with probability explorationProbability, is a
// no-op when nobody passes, and yields stickiness when the sticky endpoints are
// loaded far beyond the least loaded one (maxQueuePenalty /
// maxTokensInFlightPenalty). Defaults per scheduling.md §3.2: 0.80 / 0.01 / 5000.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../src/pool/endpoint.ts';
import { PREFIX_MATCH, type PrefixResult } from '../src/scheduling/producers/approx-prefix.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { prefixCacheAffinityFilter } from '../src/scheduling/filters/prefix-cache-affinity.ts';
import type { CycleState, Filter } from '../src/scheduling/framework.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import { context, create, makePool, request, seeded, state, type EpSpec, runCycle } from './helpers/scheduling.ts';
import { createLogger } from '../src/log.ts';

const TYPE = 'prefix-cache-affinity-filter';

/** A cycle state carrying a prefix result: endpoint i matched `matched[i]` of `total` blocks. */
function withMatch(endpoints: readonly Endpoint[], matched: readonly number[], total: number): CycleState {
  const st = state({ model: 'm', prompt: 'x' });
  const m = new Map<string, number>();
  matched.forEach((v, i) => {
    if (v > 0) m.set(endpoints[i].key, v);
  });
  const result: PrefixResult = {
    hashes: { hi: new Uint32Array(total), lo: new Uint32Array(total), count: total },
    blockTokens: 16,
    total,
    matched: m,
    best: Math.max(0, ...matched),
  };
  st.set(PREFIX_MATCH, result);
  return st;
}

const names = (eps: readonly Endpoint[]) => eps.map((e) => e.name);

/** A random source that returns `value` and counts its calls. */
function fixedRandom(value: number): { fn: () => number; calls: () => number } {
  let n = 0;
  return {
    fn: () => {
      n++;
      return value;
    },
    calls: () => n,
  };
}

function filterOf(specs: EpSpec[], params: Record<string, unknown>, random: () => number = () => 0.999): { f: Filter; endpoints: Endpoint[] } {
  const { pool, endpoints } = makePool(specs);
  return { f: create<Filter>(TYPE, params, pool, random), endpoints };
}

describe('prefix-cache-affinity-filter: threshold', () => {
  it('keeps only the endpoints at or above the threshold (inclusive), dropping the rest', () => {
    const { f, endpoints } = filterOf([{}, {}, {}, {}], { affinityThreshold: 0.5, explorationProbability: 0 });
    // 10 blocks: 0.6, 0.5 (exactly the threshold), 0.4, 0.
    const kept = f.filter(withMatch(endpoints, [6, 5, 4, 0], 10), endpoints);
    expect(names(kept)).toEqual(['pod-1', 'pod-2']);
  });

  it('default threshold is 0.80: 4/5 = 0.8 is kept, 79/100 is dropped', () => {
    const { f, endpoints } = filterOf([{}, {}, {}], { explorationProbability: 0 });
    expect(names(f.filter(withMatch(endpoints, [4, 3, 5], 5), endpoints))).toEqual(['pod-1', 'pod-3']);
    expect(names(f.filter(withMatch(endpoints, [79, 80, 100], 100), endpoints))).toEqual(['pod-2', 'pod-3']);
  });

  it('a strict threshold of 1 keeps only full matches', () => {
    const { f, endpoints } = filterOf([{}, {}, {}], { affinityThreshold: 1, explorationProbability: 0 });
    expect(names(f.filter(withMatch(endpoints, [20, 19, 20], 20), endpoints))).toEqual(['pod-1', 'pod-3']);
  });

  it('is a no-op when no endpoint reaches the threshold', () => {
    const { f, endpoints } = filterOf([{}, {}, {}], { explorationProbability: 0 });
    const st = withMatch(endpoints, [7, 3, 0], 10); // best 0.7 < 0.8
    expect(names(f.filter(st, endpoints))).toEqual(['pod-1', 'pod-2', 'pod-3']);
  });

  it('is a no-op without prefix data (no producer ran, or a prompt shorter than one block)', () => {
    const { f, endpoints } = filterOf([{}, {}], { explorationProbability: 0 });
    expect(names(f.filter(state({ model: 'm', prompt: 'x' }), endpoints))).toEqual(['pod-1', 'pod-2']);
    expect(names(f.filter(withMatch(endpoints, [0, 0], 0), endpoints))).toEqual(['pod-1', 'pod-2']);
  });

  it('judges only the endpoints it is given (an earlier filter may have narrowed them)', () => {
    const { f, endpoints } = filterOf([{}, {}, {}], { explorationProbability: 0 });
    const st = withMatch(endpoints, [10, 10, 0], 10);
    expect(names(f.filter(st, [endpoints[1], endpoints[2]]))).toEqual(['pod-2']);
    // The only sticky endpoint is not among them: nobody passes, so it keeps them all.
    expect(names(f.filter(withMatch(endpoints, [10, 0, 0], 10), [endpoints[1], endpoints[2]]))).toEqual(['pod-2', 'pod-3']);
  });
});

describe('prefix-cache-affinity-filter: exploration', () => {
  it('skips the filter when the random draw is below explorationProbability, applies it otherwise', () => {
    const below = fixedRandom(0.0999);
    const { f, endpoints } = filterOf([{}, {}], { explorationProbability: 0.1 }, below.fn);
    const st = () => withMatch(endpoints, [10, 0], 10);
    expect(names(f.filter(st(), endpoints))).toEqual(['pod-1', 'pod-2']);
    expect(below.calls()).toBe(1);
    const at = fixedRandom(0.1);
    const g = create<Filter>(TYPE, { explorationProbability: 0.1 }, makePool([{}, {}]).pool, at.fn);
    expect(names(g.filter(st(), endpoints))).toEqual(['pod-1']);
  });

  it('never draws when explorationProbability is 0, and always steps aside at 1', () => {
    const r = fixedRandom(0);
    const { f, endpoints } = filterOf([{}, {}], { explorationProbability: 0 }, r.fn);
    for (let i = 0; i < 10; i++) expect(names(f.filter(withMatch(endpoints, [10, 0], 10), endpoints))).toEqual(['pod-1']);
    expect(r.calls()).toBe(0);
    const always = create<Filter>(TYPE, { explorationProbability: 1 }, makePool([{}, {}]).pool, seeded(9));
    for (let i = 0; i < 50; i++) expect(always.filter(withMatch(endpoints, [10, 0], 10), endpoints)).toHaveLength(2);
  });

  it('explores at the configured rate over many draws (0.2 ± 4σ)', () => {
    const { f, endpoints } = filterOf([{}, {}, {}], { explorationProbability: 0.2 }, seeded(7));
    const draws = 10_000;
    let explored = 0;
    for (let i = 0; i < draws; i++) if (f.filter(withMatch(endpoints, [10, 0, 0], 10), endpoints).length === 3) explored++;
    // σ = √(n p (1 − p)) = 40
    expect(Math.abs(explored - 2000)).toBeLessThan(160);
  });

  it('explores 1% of the time by default (0.01 ± 4σ over 40,000 draws)', () => {
    const { f, endpoints } = filterOf([{}, {}], {}, seeded(11));
    const draws = 40_000;
    let explored = 0;
    for (let i = 0; i < draws; i++) if (f.filter(withMatch(endpoints, [10, 0], 10), endpoints).length === 2) explored++;
    // expected 400, σ ≈ 19.9
    expect(Math.abs(explored - 400)).toBeLessThan(80);
  });
});

describe('prefix-cache-affinity-filter: load penalties', () => {
  // pod-1 is the sticky one (full match); the others have no match.
  const sticky = (endpoints: readonly Endpoint[]) => withMatch(endpoints, [10, 0, 0], 10);

  it('maxQueuePenalty: stickiness yields when the sticky endpoints\' shortest queue exceeds the pool\'s shortest by more than the penalty', () => {
    const specs: EpSpec[] = [{ waitingQueueSize: 12 }, { waitingQueueSize: 2 }, { waitingQueueSize: 7 }];
    // gap = 12 − 2 = 10
    const strict = filterOf(specs, { explorationProbability: 0, maxQueuePenalty: 9 });
    expect(names(strict.f.filter(sticky(strict.endpoints), strict.endpoints))).toEqual(['pod-1', 'pod-2', 'pod-3']);
    const exact = filterOf(specs, { explorationProbability: 0, maxQueuePenalty: 10 });
    expect(names(exact.f.filter(sticky(exact.endpoints), exact.endpoints))).toEqual(['pod-1']);
    // 0 (the default) disables the check however large the gap.
    const off = filterOf(specs, { explorationProbability: 0 });
    expect(names(off.f.filter(sticky(off.endpoints), off.endpoints))).toEqual(['pod-1']);
  });

  it('maxQueuePenalty compares the least loaded sticky endpoint, not the busiest', () => {
    const specs: EpSpec[] = [{ waitingQueueSize: 50 }, { waitingQueueSize: 3 }, { waitingQueueSize: 0 }];
    const { f, endpoints } = filterOf(specs, { explorationProbability: 0, maxQueuePenalty: 5 });
    // pod-1 and pod-2 sticky; min sticky queue 3, pool min 0: gap 3 ≤ 5 ⇒ stay sticky.
    expect(names(f.filter(withMatch(endpoints, [10, 10, 0], 10), endpoints))).toEqual(['pod-1', 'pod-2']);
  });

  it('maxTokensInFlightPenalty: stickiness yields when the sticky endpoints carry too many more in-flight prompt tokens', () => {
    const specs: EpSpec[] = [{ inFlightTokens: 300_000 }, { inFlightTokens: 10_000 }, { inFlightTokens: 50_000 }];
    // gap = 290,000
    const yields = filterOf(specs, { explorationProbability: 0, maxTokensInFlightPenalty: 286_720 });
    expect(names(yields.f.filter(sticky(yields.endpoints), yields.endpoints))).toEqual(['pod-1', 'pod-2', 'pod-3']);
    const holds = filterOf(specs, { explorationProbability: 0, maxTokensInFlightPenalty: 290_000 });
    expect(names(holds.f.filter(sticky(holds.endpoints), holds.endpoints))).toEqual(['pod-1']);
    // The token check ignores queues and vice versa.
    const queueOnly = filterOf(specs, { explorationProbability: 0, maxQueuePenalty: 1 });
    expect(names(queueOnly.f.filter(sticky(queueOnly.endpoints), queueOnly.endpoints))).toEqual(['pod-1']);
  });

  it('maxTTFTPenaltyMs is accepted and has no effect (no latency predictor)', () => {
    const specs: EpSpec[] = [{ waitingQueueSize: 100, inFlightTokens: 1e6 }, {}, {}];
    for (const ms of [0, 1, 5000]) {
      const { f, endpoints } = filterOf(specs, { explorationProbability: 0, maxTTFTPenaltyMs: ms });
      expect(names(f.filter(sticky(endpoints), endpoints))).toEqual(['pod-1']);
    }
  });
});

describe('prefix-cache-affinity-filter: parameters', () => {
  it('defaults are 0.80 / 0.01 / 5000 (scheduling.md §3.2), penalties off', () => {
    const p = prefixCacheAffinityFilter.params;
    expect(p.affinityThreshold.default).toBe(0.8);
    expect(p.explorationProbability.default).toBe(0.01);
    expect(p.maxTTFTPenaltyMs.default).toBe(5000);
    expect(p.maxQueuePenalty.default).toBe(0);
    expect(p.maxTokensInFlightPenalty.default).toBe(0);
  });

  it.each([
    [{ affinityThreshold: 1.5 }, /plugin "prefix-cache-affinity-filter" \(prefix-cache-affinity-filter\): parameter "affinityThreshold" must be ≤ 1/],
    [{ affinityThreshold: -0.1 }, /parameter "affinityThreshold" must be ≥ 0/],
    [{ explorationProbability: 2 }, /parameter "explorationProbability" must be ≤ 1/],
    [{ maxTTFTPenaltyMs: -1 }, /parameter "maxTTFTPenaltyMs" must be ≥ 0/],
    [{ maxQueuePenalty: 'many' }, /parameter "maxQueuePenalty" must be a number/],
    [{ maxTokensInFlightPenalty: -5 }, /parameter "maxTokensInFlightPenalty" must be ≥ 0/],
    [{ threshold: 0.5 }, /unknown parameter "threshold" \(known: affinityThreshold, explorationProbability/],
  ])('rejects %o', (params, message) => {
    const { pool } = makePool([{}]);
    expect(() => create(TYPE, params, pool)).toThrow(ConfigError);
    expect(() => create(TYPE, params, pool)).toThrow(message);
  });
});

describe('prefix-cache-affinity-filter in a pipeline with the real prefix index', () => {
  const system = 'You are a meticulous assistant. '.repeat(40);
  const yaml = (filterParams: string) => `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
  parameters: {autoTune: false, blockSizeTokens: 16}
- type: queue-scorer
- type: prefix-cache-affinity-filter
  parameters: ${filterParams}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-affinity-filter
  - {pluginRef: prefix-cache-scorer, weight: 0}
  - {pluginRef: queue-scorer, weight: 10}
  - pluginRef: max-score-picker
`;

  async function twoRequests(filterParams: string): Promise<[string, string]> {
    const { pool, endpoints } = makePool([{}, { waitingQueueSize: 1 }, { waitingQueueSize: 2 }]);
    const log = createLogger('silent');
    const c = loadConfig(parseConfigText(yaml(filterParams), 't'), createRegistry(), context(pool, seeded(5)), 't');
    const s = new PipelineScheduler(c, log);
    const body = { model: 'm', prompt: system + 'first?' };
    const first = runCycle(s, request(body), endpoints, 1).endpoints[0];
    await new Promise((r) => setImmediate(r)); // the index records the blocks after the reply
    // The first pick gets busy: the queue scorer alone would now move away from it.
    first.metrics = { ...first.metrics!, waitingQueueSize: 10 };
    const second = runCycle(s, request({ model: 'm', prompt: system + 'first?' }), endpoints, 1).endpoints[0];
    return [first.name, second.name];
  }

  it('sticks to the endpoint holding the prefix although load scorers prefer another', async () => {
    const [first, second] = await twoRequests('{explorationProbability: 0}');
    expect(first).toBe('pod-1'); // shortest queue, no prefix anywhere yet
    expect(second).toBe('pod-1');
  });

  it('lets the load scorers decide once the queue penalty is exceeded', async () => {
    const [first, second] = await twoRequests('{explorationProbability: 0, maxQueuePenalty: 5}');
    expect(first).toBe('pod-1');
    expect(second).toBe('pod-2'); // gap 10 − 1 = 9 > 5; pod-2 has the shortest queue
  });
});
