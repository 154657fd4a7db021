import { describe, expect, it } from 'vitest';
import type { PrefixCacheScorer } from '../../scorers/prefix-cache-scorer.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

const system = 'You are a meticulous assistant. '.repeat(40); // 1,320 bytes ≈ 20 blocks of 64 bytes
const prompt = (q: string) => ({ model: 'm', prompt: system + q });

function run(s: PrefixCacheScorer, body: Record<string, unknown>, endpoints: Parameters<PrefixCacheScorer['score']>[1], pick?: number) {
  const st = state(body);
  s.produce(st, endpoints);
  const scores = [...s.score(st, endpoints)];
  if (pick !== undefined) s.preRequest(st, endpoints[pick], new Map());
  return scores;
}

describe('prefix-cache-scorer', () => {
  it('scores consecutive matched blocks ÷ total blocks, after the chosen pod is recorded', () => {
    const { pool, endpoints } = makePool([{}, {}, {}]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    expect(run(s, prompt('first question?'), endpoints, 1)).toEqual([0, 0, 0]);
    // Same system prompt, a different question of the same length: every full block of the shared part matches.
    const again = run(s, prompt('other question?'), endpoints);
    const total = Math.floor(Buffer.byteLength(system + 'other question?') / 64);
    const shared = Math.floor(Buffer.byteLength(system) / 64);
    expect(again[0]).toBe(0);
    expect(again[1]).toBeCloseTo(shared / total);
    expect(again[2]).toBe(0);
  });

  it('separates models and cache_salt (they seed the hash chain)', () => {
    const { pool, endpoints } = makePool([{}, {}]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    run(s, prompt('a'), endpoints, 0);
    expect(run(s, prompt('a'), endpoints)[0]).toBe(1);
    expect(run(s, { ...prompt('a'), model: 'other' }, endpoints)[0]).toBe(0);
    expect(run(s, { ...prompt('a'), cache_salt: 'tenant-b' }, endpoints)[0]).toBe(0);
  });

  it('uses the block size the pods report when autoTune is on', () => {
    const { pool, endpoints } = makePool([{ cacheBlockSize: 32 }, { cacheBlockSize: 32 }]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    const st = state(prompt('x'));
    s.produce(st, endpoints);
    expect(st.get<{ blockTokens: number }>('approx-prefix-cache')?.blockTokens).toBe(32);
    const fixed = create<PrefixCacheScorer>('prefix-cache-scorer', { autoTune: false, blockSizeTokens: 8 }, pool);
    const st2 = state(prompt('x'));
    fixed.produce(st2, endpoints);
    expect(st2.get<{ blockTokens: number }>('approx-prefix-cache')?.blockTokens).toBe(8);
  });

  it('hashes long prompts fully by default and honours maxPrefixBlocksToMatch', () => {
    const { pool, endpoints } = makePool([{}]);
    const long = { model: 'm', prompt: 'z'.repeat(400_000) }; // ~100k tokens
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    const st = state(long);
    s.produce(st, endpoints);
    expect(st.get<{ total: number }>('approx-prefix-cache')?.total).toBe(6250);
    const capped = create<PrefixCacheScorer>('prefix-cache-scorer', { maxPrefixBlocksToMatch: 256 }, pool);
    const st2 = state(long);
    capped.produce(st2, endpoints);
    expect(st2.get<{ total: number }>('approx-prefix-cache')?.total).toBe(256);
  });

  it('purges endpoints that leave the pool', () => {
    const { pool, endpoints } = makePool([{}, {}]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    run(s, prompt('q'), endpoints, 0);
    expect(s.producer.index.podSize(endpoints[0].key)).toBeGreaterThan(0);
    pool.replaceAll([{ address: endpoints[1].address, port: endpoints[1].port }]);
    expect(s.producer.index.hasEndpoint(endpoints[0].key)).toBe(false);
  });

  it('rejects the deprecated character blockSize on its own', () => {
    const { pool } = makePool([{}]);
    expect(() => create('prefix-cache-scorer', { blockSize: 64 }, pool)).toThrow(/blockSize.*deprecated.*blockSizeTokens/);
  });
});
