import { describe, expect, it } from 'vitest';
import type { PrefixCacheScorer } from '../../scorers/prefix-cache-scorer.ts';
import type { PreRequest, Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('no-hit-lru-scorer', () => {
  it('ranks endpoints by how recently they got a cold request; 0.5 for all on a prefix hit', async () => {
    const { pool, endpoints } = makePool([{}, {}, {}]);
    const prefix = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    const lru = create<Scorer & PreRequest>('no-hit-lru-scorer', {}, pool);
    const cold = async (q: string, pick: number) => {
      const st = state({ model: 'm', prompt: q.repeat(100) });
      prefix.produce(st, endpoints);
      const scores = [...lru.score(st, endpoints)];
      lru.preRequest(st, endpoints[pick], new Map());
      prefix.preRequest(st, endpoints[pick], new Map());
      await new Promise((r) => setImmediate(r)); // the index records after the reply
      return scores;
    };
    // Position i of n scores 1 − i/(n − 1): never used first (in candidate order), then least recent.
    expect(await cold('a', 0)).toEqual([1, 0.5, 0]); // nobody used yet
    expect(await cold('b', 2)).toEqual([0, 1, 0.5]); // pod 1 used: last
    expect(await cold('c', 1)).toEqual([0.5, 1, 0]); // pod 2 never used; pod 1 older than pod 3
    // A request whose prefix hits pod 1: every endpoint 0.5.
    const hit = state({ model: 'm', prompt: 'a'.repeat(100) });
    prefix.produce(hit, endpoints);
    expect([...lru.score(hit, endpoints)]).toEqual([0.5, 0.5, 0.5]);
  });

  it('scores 1.0 for a single candidate', () => {
    const { pool, endpoints } = makePool([{}]);
    expect([...create<Scorer>('no-hit-lru-scorer', {}, pool).score(state({ model: 'm', prompt: 'x' }), endpoints)]).toEqual([1]);
  });
});
