import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import type { Datastore } from '../src/pool/datastore.ts';
import type { Endpoint } from '../src/pool/endpoint.ts';
import { RequestPlugins } from '../src/request-control/request-plugins.ts';
import { prefixCacheScorer } from '../scorers/prefix-cache-scorer.ts';
import type { CycleState, Plugin, PluginContext, Scorer } from '../src/scheduling/framework.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { PluginTimer } from '../src/scheduling/plugin-timer.ts';
import { PluginRegistry } from '../src/scheduling/registry.ts';
import { PREFIX_MATCH } from '../src/scheduling/producers/approx-prefix.ts';
import { burstPrefixCacheProducer, type BurstPrefixProducer } from '../src/scheduling/producers/burst-prefix.ts';
import { TOKENIZED_PROMPT, tokenProducer } from '../src/scheduling/producers/token-producer.ts';
import { context, makePool, state, type EpSpec } from './helpers/scheduling.ts';

const TYPE = 'burst-prefix-cache-producer';
const NEVER = new AbortController().signal;
/** Small blocks keep the prompts short: 4 tokens a block. */
const BS = 4;

function make(params: Record<string, unknown>, pool: Datastore, ctx: Partial<PluginContext> = {}): BurstPrefixProducer {
  const registry = new PluginRegistry().register(burstPrefixCacheProducer);
  return registry.create(TYPE, 'burst', { blockSizeTokens: BS, windowDurationMs: 10, ...params }, { ...context(pool), ...ctx }) as BurstPrefixProducer;
}

/** Token ids: one block per given value (BS copies of it), then `tail` ids of a partial block. */
function prompt(blocks: number[], tail: number[] = []): Uint32Array {
  return Uint32Array.from([...blocks.flatMap((b) => Array<number>(BS).fill(b)), ...tail]);
}

function tokenized(ids: Uint32Array, body: Record<string, unknown> = { model: 'm', prompt: 'p' }): CycleState {
  const st = state(body);
  st.set(TOKENIZED_PROMPT, { ids, backend: 'estimate' });
  return st;
}

/** One window: every request joins it in the same tick, then each produces. */
async function burst(p: BurstPrefixProducer, prompts: Uint32Array[], endpoints: readonly Endpoint[]): Promise<CycleState[]> {
  const states = prompts.map((ids) => tokenized(ids));
  await Promise.all(states.map((st) => p.prepare(st, endpoints, NEVER)));
  for (const st of states) p.produce(st, endpoints);
  return states;
}

/** Where the producer steered the request: the one endpoint with a full match, or "" for none. */
function target(p: BurstPrefixProducer, st: CycleState, endpoints: readonly Endpoint[]): string {
  const r = st.get(p.matchKey)!;
  const full = endpoints.filter((e) => r.total > 0 && r.matched.get(e.key) === r.total);
  expect(full.length).toBeLessThanOrEqual(1);
  if (full.length === 1) expect(r.best).toBe(r.total);
  else expect(r.best).toBe(0);
  return full[0]?.name ?? '';
}

function counts(names: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (out[n] ?? 0) + 1;
  return out;
}

function setup(specs: EpSpec[], params: Record<string, unknown> = {}) {
  const { pool, endpoints } = makePool(specs);
  const p = make(params, pool);
  const run = async (prompts: Uint32Array[]) => (await burst(p, prompts, endpoints)).map((st) => target(p, st, endpoints));
  return { p, pool, endpoints, run };
}

const copies = (n: number, ids: Uint32Array) => Array.from({ length: n }, () => ids);

describe('burst-prefix-cache-producer: placement', () => {
  it('sends identical prompts of one window to one endpoint, with a full match there and none elsewhere', async () => {
    const { p, endpoints } = setup([{}, {}, {}, {}]);
    const states = await burst(p, copies(8, prompt([1, 2, 3])), endpoints);
    for (const st of states) {
      const r = st.get(p.matchKey)!;
      expect(st.get(PREFIX_MATCH)).toBe(r);
      expect(r.total).toBe(3);
      expect(r.blockTokens).toBe(BS);
      expect(endpoints.map((e) => r.matched.get(e.key) ?? 0)).toEqual([3, 0, 0, 0]);
    }
  });

  it('breaks a tie by fewer requests in flight, then by name', async () => {
    const { run } = setup([{ inFlight: 2 }, { inFlight: 0 }, { inFlight: 1 }, { inFlight: 0 }]);
    expect(await run(copies(3, prompt([1, 2])))).toEqual(['pod-2', 'pod-2', 'pod-2']);
  });

  it('spills a group past maxPerReplica, filling one endpoint before the next', async () => {
    expect(counts(await setup([{}, {}, {}, {}], { maxPerReplica: 2 }).run(copies(8, prompt([1, 2, 3]))))).toEqual({ 'pod-1': 2, 'pod-2': 2, 'pod-3': 2, 'pod-4': 2 });
    expect(counts(await setup([{}, {}, {}, {}], { maxPerReplica: 4 }).run(copies(8, prompt([1, 2, 3]))))).toEqual({ 'pod-1': 4, 'pod-2': 4 });
    // More members than k × endpoints: the rest still placed, evenly.
    expect(counts(await setup([{}, {}], { maxPerReplica: 2 }).run(copies(8, prompt([1, 2, 3]))))).toEqual({ 'pod-1': 4, 'pod-2': 4 });
  });

  it('balances distinct prompt groups across endpoints, and leaves a prompt nobody shares alone', async () => {
    const { run } = setup([{}, {}, {}]);
    const got = await run([...copies(3, prompt([1, 1])), ...copies(3, prompt([2, 2])), prompt([3, 3]), ...copies(3, prompt([4, 4]))]);
    expect(got).toEqual(['pod-1', 'pod-1', 'pod-1', 'pod-2', 'pod-2', 'pod-2', '', 'pod-3', 'pod-3', 'pod-3']);
  });

  it('places the longest prefix first, whatever the arrival order', async () => {
    const { run } = setup([{}, {}]);
    expect(await run([...copies(2, prompt([9])), ...copies(2, prompt([1, 2, 3]))])).toEqual(['pod-2', 'pod-2', 'pod-1', 'pod-1']);
  });

  it('with minColocateBlocks, places prefix-sharing singles together within the fair share', async () => {
    // Four different prompts sharing two leading blocks: placed, two per endpoint.
    const { run } = setup([{}, {}], { minColocateBlocks: 2 });
    expect(counts(await run([prompt([1, 2, 3]), prompt([1, 2, 4]), prompt([1, 2, 5]), prompt([1, 2, 6])]))).toEqual({ 'pod-1': 2, 'pod-2': 2 });
    // Two families: each together, apart from the other; a prompt sharing nothing gets no affinity.
    const got = await run([prompt([1, 2, 3]), prompt([7, 8, 5]), prompt([1, 2, 4]), prompt([7, 8, 6]), prompt([9, 9, 9])]);
    expect(got[0]).toBe(got[2]);
    expect(got[1]).toBe(got[3]);
    expect(got[0]).not.toBe(got[1]);
    expect(got[4]).toBe('');
    // A single sharing a group's prefix joins that group's endpoint.
    const attach = await run([...copies(2, prompt([1, 2, 3])), prompt([1, 2, 8]), ...copies(2, prompt([7, 8, 5])), prompt([7, 8, 9])]);
    expect(attach).toEqual([attach[0], attach[0], attach[0], attach[3], attach[3], attach[3]]);
    expect(attach[0]).not.toBe(attach[3]);
  });

  it('follows a shared prefix for a unit\'s first endpoint only; the rest of a capped unit goes to the least loaded', async () => {
    const { run } = setup([{}, {}, {}, {}], { minColocateBlocks: 2, maxPerReplica: 1 });
    const got = await run([...copies(2, prompt([1, 2, 3, 3])), ...copies(2, prompt([1, 2, 5])), ...copies(4, prompt([8]))]);
    // [1, 2] is on pod-1 and pod-2 (both under the fair share of 2): the second member of [1, 2, 5] still goes to idle pod-3.
    expect(got.slice(0, 4)).toEqual(['pod-1', 'pod-2', 'pod-1', 'pod-3']);
  });

  it('does not co-locate prompts sharing fewer than minColocateBlocks leading blocks', async () => {
    const { run } = setup([{}, {}], { minColocateBlocks: 3 });
    const got = await run([...copies(2, prompt([1, 2, 3])), ...copies(2, prompt([1, 2, 4])), prompt([1, 2, 5])]);
    expect(got[0]).not.toBe(got[2]);
    expect(got[4]).toBe('');
  });

  it('keeps prefix-sharing groups from piling onto one endpoint (fair share)', async () => {
    const { run } = setup([{}, {}, {}, {}], { minColocateBlocks: 2 });
    const got = await run([1, 2, 3, 4].flatMap((g) => copies(2, prompt([1, 2, 10 + g]))));
    expect(counts(got)).toEqual({ 'pod-1': 2, 'pod-2': 2, 'pod-3': 2, 'pod-4': 2 });
  });

  it('balanceBy tokens spreads a long prefix and packs short ones; requests mode stacks by count', async () => {
    const window = () => [...copies(2, prompt([1, 2, 3, 4])), ...copies(2, prompt([5])), ...copies(2, prompt([6]))];
    const byRequests = await setup([{}, {}]).run(window());
    expect(byRequests[0]).toBe(byRequests[4]);
    const byTokens = await setup([{}, {}], { balanceBy: 'tokens' }).run(window());
    expect(byTokens[2]).toBe(byTokens[4]);
    expect(byTokens[0]).not.toBe(byTokens[2]);
  });

  it('balanceBy tokens charges a shared prefix once, so units sharing it stay together', async () => {
    const lead = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    const { run } = setup([{}, {}], { balanceBy: 'tokens', minColocateBlocks: 9 });
    const got = await run([10, 11, 12].flatMap((last) => copies(2, prompt([...lead, last]))));
    expect(new Set(got).size).toBe(1);
  });

  it('groups by the whole prompt, its trailing partial block included', async () => {
    const { run } = setup([{}, {}]);
    // Shorter than a block: identical ones still group.
    expect(await run(copies(2, Uint32Array.of(5, 6)))).toEqual(['pod-1', 'pod-1']);
    // Same full blocks, different last tokens: not identical.
    expect(await run([prompt([1, 2], [3]), prompt([1, 2], [4])])).toEqual(['', '']);
  });

  it('compares only the first maxPrefixTokensToMatch tokens', async () => {
    const { run } = setup([{}, {}], { maxPrefixTokensToMatch: 2 * BS });
    expect(await run([prompt([1, 2, 3]), prompt([1, 2, 4], [9])])).toEqual(['pod-1', 'pod-1']);
  });

  it('separates models and cache_salt', async () => {
    const { p, endpoints } = setup([{}, {}]);
    const ids = prompt([1, 2]);
    const states = [tokenized(ids), tokenized(ids, { model: 'other', prompt: 'p' }), tokenized(ids, { model: 'm', prompt: 'p', cache_salt: 's' })];
    await Promise.all(states.map((st) => p.prepare(st, endpoints, NEVER)));
    for (const st of states) p.produce(st, endpoints);
    expect(states.map((st) => target(p, st, endpoints))).toEqual(['', '', '']);
  });
});

describe('burst-prefix-cache-producer: windows', () => {
  it('gives a request alone in its window no affinity', async () => {
    const { p, endpoints } = setup([{}, {}]);
    const [st] = await burst(p, [prompt([1, 2])], endpoints);
    const r = st.get(p.matchKey)!;
    expect(r.total).toBe(2);
    expect(r.matched.size).toBe(0);
    expect(r.best).toBe(0);
  });

  it('groups only requests of the same window', async () => {
    const { p, endpoints } = setup([{}, {}]);
    const first = await burst(p, [prompt([1, 2])], endpoints);
    const second = await burst(p, [prompt([1, 2])], endpoints);
    expect([...first, ...second].map((st) => target(p, st, endpoints))).toEqual(['', '']);
  });

  it('an aborted request leaves the window at once', async () => {
    const { p, endpoints } = setup([{}, {}], { windowDurationMs: 50 });
    const order: string[] = [];
    const ctl = new AbortController();
    const [a, b] = [tokenized(prompt([1, 2])), tokenized(prompt([1, 2]))];
    const waitA = p.prepare(a, endpoints, ctl.signal)!.then(() => order.push('aborted'));
    const waitB = p.prepare(b, endpoints, NEVER)!.then(() => order.push('sealed'));
    ctl.abort();
    await Promise.all([waitA, waitB]);
    expect(order).toEqual(['aborted', 'sealed']);
    p.produce(a, endpoints);
    p.produce(b, endpoints);
    // b was left alone in the window: no affinity for either.
    expect([target(p, a, endpoints), target(p, b, endpoints)]).toEqual(['', '']);
    expect(p.prepare(tokenized(prompt([1])), endpoints, ctl.signal)).toBeUndefined();
  });

  it('a full window sends later requests on at once without affinity', async () => {
    const { p, endpoints } = setup([{}, {}], { maxBatchSize: 2 });
    const states = copies(3, prompt([1, 2])).map((ids) => tokenized(ids));
    const waits = states.map((st) => p.prepare(st, endpoints, NEVER));
    expect(waits[2]).toBeUndefined();
    await Promise.all(waits);
    for (const st of states) p.produce(st, endpoints);
    expect(states.map((st) => target(p, st, endpoints))).toEqual(['pod-1', 'pod-1', '']);
    expect(states[2].get(p.matchKey)!.total).toBe(2);
  });

  it('without tokens, does not wait and writes an empty match', () => {
    const { p, endpoints } = setup([{}, {}]);
    const st = state({ model: 'm', prompt: 'p' });
    expect(p.prepare(st, endpoints, NEVER)).toBeUndefined();
    expect(p.prepare(tokenized(new Uint32Array(0)), endpoints, NEVER)).toBeUndefined();
    p.produce(st, endpoints);
    expect(st.get(p.matchKey)).toMatchObject({ total: 0, best: 0 });
    expect(st.get(PREFIX_MATCH)).toBe(st.get(p.matchKey));
  });

  it('gives no affinity when the assigned endpoint is no longer a candidate', async () => {
    const { p, endpoints } = setup([{}, {}]);
    const states = copies(2, prompt([1, 2])).map((ids) => tokenized(ids));
    await Promise.all(states.map((st) => p.prepare(st, endpoints, NEVER)));
    p.produce(states[0], endpoints.slice(1));
    expect(states[0].get(p.matchKey)!.matched.size).toBe(0);
  });
});

describe('burst-prefix-cache-producer: configuration', () => {
  const { pool } = makePool([{}]);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ windowDurationMs: 0 }, /windowDurationMs" must be ≥ 1, got 0/],
    [{ windowDurationMs: 10_001 }, /windowDurationMs" must be ≤ 10000, got 10001/],
    [{ maxPerReplica: 0 }, /maxPerReplica must be -1 \(unlimited\) or ≥ 1, got 0/],
    [{ maxPerReplica: -2 }, /maxPerReplica must be -1 \(unlimited\) or ≥ 1, got -2/],
    [{ blockSizeTokens: 0 }, /blockSizeTokens" must be ≥ 1/],
    [{ maxPrefixTokensToMatch: -1 }, /maxPrefixTokensToMatch" must be ≥ 0/],
    [{ blockSizeTokens: 64, maxPrefixTokensToMatch: 32 }, /maxPrefixTokensToMatch \(32\) must be 0 or ≥ blockSizeTokens \(64\)/],
    [{ minColocateBlocks: -1 }, /minColocateBlocks" must be ≥ 0/],
    [{ maxBatchSize: 0 }, /maxBatchSize must be -1 \(unlimited\) or ≥ 1, got 0/],
    [{ balanceBy: 'bytes' }, /balanceBy" must be one of requests, tokens, got "bytes"/],
    [{ windowDurationMs: 1.5 }, /must be an integer/],
  ];
  it.each(bad)('refuses %j', (params, message) => {
    expect(() => make(params, pool)).toThrow(ConfigError);
    expect(() => make(params, pool)).toThrow(message);
  });

  it('takes llm-d\'s defaults and accepts its sentinels', () => {
    const p = make({ blockSizeTokens: undefined, windowDurationMs: undefined, maxPerReplica: -1, maxBatchSize: -1 }, pool);
    expect(p.produces).toEqual([PREFIX_MATCH, p.matchKey]);
    expect(p.consumes).toEqual([TOKENIZED_PROMPT]);
    expect(burstPrefixCacheProducer.params.windowDurationMs.default).toBe(100);
    expect(burstPrefixCacheProducer.params.blockSizeTokens.default).toBe(64);
    expect(burstPrefixCacheProducer.params.maxBatchSize.default).toBe(1000);
    expect(burstPrefixCacheProducer.params.maxPerReplica.default).toBe(-1);
  });

  it('is alpha: refused without --allow-experimental-plugins', () => {
    expect(() => make({}, pool, { allowExperimental: false })).toThrow(/--allow-experimental-plugins/);
  });
});

describe('burst-prefix-cache-producer through request control', () => {
  it('groups concurrent requests after token-producer, and prefix-cache-scorer follows the assignment', async () => {
    const { pool, endpoints } = makePool([{}, {}, {}]);
    const ctx = context(pool);
    const registry = new PluginRegistry().register(burstPrefixCacheProducer).register(tokenProducer).register(prefixCacheScorer);
    const burstP = registry.create(TYPE, 'burst', { blockSizeTokens: BS, windowDurationMs: 10 }, ctx) as BurstPrefixProducer;
    const tokens = registry.create('token-producer', 'token-producer', {}, ctx);
    const scorer = registry.create('prefix-cache-scorer', 'prefix-cache-scorer', { prefixMatchInfoProducerName: 'burst' }, ctx) as Scorer;
    // Listed before the token producer: request control still runs it second.
    const all = new Map<string, Plugin>([['burst', burstP], ['token-producer', tokens], ['prefix-cache-scorer', scorer]]);
    scorer.link?.(all, () => {
      throw new Error('no default plugin expected');
    });
    const plugins = new RequestPlugins(all.values(), new PluginTimer(undefined, createLogger('silent')));

    const text = (topic: string) => `Summarise the following notes about ${topic} in three bullet points, please.`;
    const bodies = ['alpha', 'beta', 'alpha', 'gamma', 'beta', 'alpha', 'beta'].map((t) => ({ model: 'm', prompt: text(t) }));
    const states = bodies.map((b) => state(b));
    await Promise.all(states.map((st) => plugins.prepare(st, endpoints, NEVER)));
    for (const st of states) plugins.produce(st, endpoints);

    const got = states.map((st) => target(burstP, st, endpoints));
    expect(got).toEqual(['pod-1', 'pod-2', 'pod-1', '', 'pod-2', 'pod-1', 'pod-2']);
    const scores = states.map((st) => [...scorer.score(st, endpoints)]);
    expect(scores[0]).toEqual([1, 0, 0]);
    expect(scores[1]).toEqual([0, 1, 0]);
    expect(scores[3]).toEqual([0, 0, 0]);
  });
});
