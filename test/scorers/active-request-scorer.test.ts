import { describe, expect, it } from 'vitest';
import type { Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('active-request-scorer', () => {
  it('idle ⇒ 1.0; busy spread over [0, maxBusyScore], the busiest 0', () => {
    const { pool, endpoints } = makePool([{ inFlight: 0 }, { inFlight: 2 }, { inFlight: 4 }]);
    expect([...create<Scorer>('active-request-scorer', {}, pool).score(state(undefined), endpoints)]).toEqual([1, 0.5, 0]);
    expect([...create<Scorer>('active-request-scorer', { idleThreshold: 2, maxBusyScore: 0.5 }, pool).score(state(undefined), endpoints)]).toEqual([1, 1, 0]);
    // llm-d's form: maxBusyScore × (max − n) / max for busy endpoints.
    const busy = makePool([{ inFlight: 3 }, { inFlight: 4 }, { inFlight: 0 }]);
    expect([...create<Scorer>('active-request-scorer', { idleThreshold: 2 }, busy.pool).score(state(undefined), busy.endpoints)]).toEqual([0.25, 0, 1]);
  });
});
