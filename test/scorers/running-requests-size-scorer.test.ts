import { describe, expect, it } from 'vitest';
import type { Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('running-requests-size-scorer', () => {
  it('min-max normalises running requests', () => {
    const { pool, endpoints } = makePool([{ runningRequests: 4 }, { runningRequests: 0 }, { runningRequests: 1 }]);
    expect([...create<Scorer>('running-requests-size-scorer', {}, pool).score(state(undefined), endpoints)]).toEqual([0, 1, 0.75]);
  });
});
