import { describe, expect, it } from 'vitest';
import type { Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('load-aware-scorer', () => {
  it('q = 0 ⇒ 0.5; else 0.5 × (1 − min(q, threshold) / threshold)', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 0 }, { waitingQueueSize: 32 }, { waitingQueueSize: 128 }, { waitingQueueSize: 500 }]);
    expect([...create<Scorer>('load-aware-scorer', {}, pool).score(state(undefined), endpoints)]).toEqual([0.5, 0.375, 0, 0]);
  });
  it('honours threshold and rejects a bad one', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 5 }]);
    expect(create<Scorer>('load-aware-scorer', { threshold: 10 }, pool).score(state(undefined), endpoints)[0]).toBe(0.25);
    expect(() => create('load-aware-scorer', { threshold: 0 }, pool)).toThrow(/threshold" must be > 0/);
    expect(() => create('load-aware-scorer', { threshold: 'many' }, pool)).toThrow(/must be a number/);
  });
});
