import { describe, expect, it } from 'vitest';
import type { PrefixCacheScorer } from '../../scorers/prefix-cache-scorer.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';
import { PREFIX_MATCH, type ApproxPrefixProducer } from '../../src/scheduling/producers/approx-prefix.ts';

const system = 'You are a meticulous assistant. '.repeat(40); // 1,320 bytes ≈ 20 blocks of 64 bytes
const prompt = (q: string) => ({ model: 'm', prompt: system + q });

async function run(s: PrefixCacheScorer, body: Record<string, unknown>, endpoints: Parameters<PrefixCacheScorer['score']>[1], pick?: number) {
  const st = state(body);
  s.produce(st, endpoints);
  const scores = [...s.score(st, endpoints)];
  if (pick !== undefined) {
    s.preRequest(st, endpoints[pick], new Map());
    await new Promise((r) => setImmediate(r)); // blocks are recorded after the reply goes out
  }
  return scores;
}

describe('prefix-cache-scorer', () => {
  it('scores consecutive matched blocks ÷ total blocks, after the chosen pod is recorded', async () => {
    const { pool, endpoints } = makePool([{}, {}, {}]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    expect(await run(s, prompt('first question?'), endpoints, 1)).toEqual([0, 0, 0]);
    // Same system prompt, a different question of the same length: every full block of the shared part matches.
    const again = await run(s, prompt('other question?'), endpoints);
    const total = Math.floor(Buffer.byteLength(system + 'other question?') / 64);
    const shared = Math.floor(Buffer.byteLength(system) / 64);
    expect(again[0]).toBe(0);
    expect(again[1]).toBeCloseTo(shared / total);
    expect(again[2]).toBe(0);
  });

  it('separates models and cache_salt (they seed the hash chain)', async () => {
    const { pool, endpoints } = makePool([{}, {}]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    await run(s, prompt('a'), endpoints, 0);
    expect((await run(s, prompt('a'), endpoints))[0]).toBe(1);
    expect((await run(s, { ...prompt('a'), model: 'other' }, endpoints))[0]).toBe(0);
    expect((await run(s, { ...prompt('a'), cache_salt: 'tenant-b' }, endpoints))[0]).toBe(0);
  });

  it('uses the block size the pods report when autoTune is on', async () => {
    const { pool, endpoints } = makePool([{ cacheBlockSize: 32 }, { cacheBlockSize: 32 }]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    const st = state(prompt('x'));
    s.produce(st, endpoints);
    expect(st.get(PREFIX_MATCH)?.blockTokens).toBe(32);
    const fixed = create<PrefixCacheScorer>('prefix-cache-scorer', { autoTune: false, blockSizeTokens: 8 }, pool);
    const st2 = state(prompt('x'));
    fixed.produce(st2, endpoints);
    expect(st2.get(PREFIX_MATCH)?.blockTokens).toBe(8);
  });

  it('hashes long prompts fully by default and honours maxPrefixBlocksToMatch', async () => {
    const { pool, endpoints } = makePool([{}]);
    const long = { model: 'm', prompt: 'z'.repeat(400_000) }; // ~100k tokens
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    const st = state(long);
    s.produce(st, endpoints);
    expect(st.get(PREFIX_MATCH)?.total).toBe(6250);
    const capped = create<PrefixCacheScorer>('prefix-cache-scorer', { maxPrefixBlocksToMatch: 256 }, pool);
    const st2 = state(long);
    capped.produce(st2, endpoints);
    expect(st2.get(PREFIX_MATCH)?.total).toBe(256);
  });

  it('purges endpoints that leave the pool', async () => {
    const { pool, endpoints } = makePool([{}, {}]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    await run(s, prompt('q'), endpoints, 0);
    expect((s.producer as ApproxPrefixProducer).index.podSize(endpoints[0].key)).toBeGreaterThan(0);
    pool.replaceAll([{ address: endpoints[1].address, port: endpoints[1].port }]);
    expect((s.producer as ApproxPrefixProducer).index.hasEndpoint(endpoints[0].key)).toBe(false);
  });

  it('rejects the deprecated character blockSize on its own', async () => {
    const { pool } = makePool([{}]);
    expect(() => create('prefix-cache-scorer', { blockSize: 64 }, pool)).toThrow(/blockSize.*deprecated.*blockSizeTokens/);
  });

  it('shares one index with a declared approx-prefix-cache-producer', async () => {
    const { loadConfig, parseConfigText } = await import('../../src/scheduling/config.ts');
    const { createRegistry } = await import('../../src/builtin-plugins.ts');
    const { context } = await import('../helpers/scheduling.ts');
    const { pool, endpoints } = makePool([{}, {}]);
    const yaml = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: approx-prefix-cache-producer\n  parameters: {blockSizeTokens: 64, autoTune: false}\n- type: prefix-cache-scorer\n';
    const c = loadConfig(parseConfigText(yaml, 't'), createRegistry(), context(pool), 't');
    const scorer = c.plugins.get('prefix-cache-scorer') as PrefixCacheScorer;
    const producer = c.plugins.get('approx-prefix-cache-producer');
    expect(scorer.producer).toBe(producer);
    const st = state(prompt('x'));
    for (const p of [producer, scorer] as unknown as PrefixCacheScorer[]) p.produce(st, endpoints);
    for (const p of [producer, scorer] as unknown as PrefixCacheScorer[]) p.preRequest(st, endpoints[0], new Map());
    await new Promise((r) => setImmediate(r));
    // 64-token (256-byte) blocks, recorded once.
    expect((scorer.producer as ApproxPrefixProducer).index.podSize(endpoints[0].key)).toBe(Math.floor(Buffer.byteLength(system + 'x') / 256));
  });
});
