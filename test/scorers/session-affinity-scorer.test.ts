import { describe, expect, it } from 'vitest';
import type { ResponseReceived, Scorer } from '../../src/scheduling/framework.ts';
import { sessionToken } from '../../scorers/session-affinity-scorer.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('session-affinity-scorer', () => {
  it('scores 1.0 for the endpoint named by x-session-token and 0 elsewhere', () => {
    const { pool, endpoints } = makePool([{}, {}, {}]);
    const s = create<Scorer & ResponseReceived>('session-affinity-scorer', {}, pool);
    const token = Buffer.from('default/pod-2').toString('base64');
    expect(sessionToken(endpoints[1])).toBe(token);
    expect([...s.score(state(undefined, { 'x-session-token': token }), endpoints)]).toEqual([0, 1, 0]);
    expect([...s.score(state(undefined), endpoints)]).toEqual([0, 0, 0]);
    expect([...s.score(state(undefined, { 'x-session-token': 'bm9wZQ==' }), endpoints)]).toEqual([0, 0, 0]);
    expect(s.responseReceived(state(undefined), endpoints[2])).toEqual([['x-session-token', Buffer.from('default/pod-3').toString('base64')]]);
  });
});
