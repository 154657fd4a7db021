import { describe, expect, it } from 'vitest';
import type { PrefixCacheScorer } from '../../scorers/prefix-cache-scorer.ts';
import type { PreRequest, Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('no-hit-lru-scorer', () => {
  it('ranks endpoints by how recently they got a cold request; 0.5 for all on a prefix hit', () => {
    const { pool, endpoints } = makePool([{}, {}, {}]);
    const prefix = create<PrefixCacheScorer>('prefix-cache-scorer', {}, pool);
    const lru = create<Scorer & PreRequest>('no-hit-lru-scorer', {}, pool);
    const cold = (q: string, pick: number) => {
      const st = state({ model: 'm', prompt: q.repeat(100) });
      prefix.produce(st, endpoints);
      const scores = [...lru.score(st, endpoints)];
      lru.preRequest(st, endpoints[pick], new Map());
      prefix.preRequest(st, endpoints[pick], new Map());
      return scores;
    };
    expect(cold('a', 0)).toEqual([1, 1, 1]); // nobody used yet
    expect(cold('b', 2)).toEqual([0.5, 1, 1]); // pod 1 used once: m = 1 ⇒ 1/2
    expect(cold('c', 1)).toEqual([2 / 3, 1, 1 / 3]); // least recent (pod 1) 2/3, most recent (pod 3) 1/3
    // A request whose prefix hits pod 1: every endpoint 0.5.
    const hit = state({ model: 'm', prompt: 'a'.repeat(100) });
    prefix.produce(hit, endpoints);
    expect([...lru.score(hit, endpoints)]).toEqual([0.5, 0.5, 0.5]);
  });
});
