import { describe, expect, it } from 'vitest';
import type { Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('token-load-scorer', () => {
  it('scores 1 − min(1, inFlightTokens / queueThresholdTokens)', () => {
    const { pool, endpoints } = makePool([{ inFlightTokens: 0 }, { inFlightTokens: 1000 }, { inFlightTokens: 5000 }]);
    expect([...create<Scorer>('token-load-scorer', { queueThresholdTokens: 4000 }, pool).score(state(undefined), endpoints)]).toEqual([1, 0.75, 0]);
    expect(create<Scorer>('token-load-scorer', {}, pool).score(state(undefined), endpoints)[1]).toBeCloseTo(1 - 1000 / 4_194_304);
  });
});
