import { describe, expect, it } from 'vitest';
import type { Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('queue-scorer', () => {
  it('min-max normalises waiting queues: (max − q) / (max − min)', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 0 }, { waitingQueueSize: 5 }, { waitingQueueSize: 10 }]);
    expect([...create<Scorer>('queue-scorer', {}, pool).score(state(undefined), endpoints)]).toEqual([1, 0.5, 0]);
  });
  it('scores 1.0 everywhere when queues are equal', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 3 }, { waitingQueueSize: 3 }]);
    expect([...create<Scorer>('queue-scorer', {}, pool).score(state(undefined), endpoints)]).toEqual([1, 1]);
  });
  it('accepts only countRoutedSinceScrape', () => {
    const { pool } = makePool([{}]);
    expect(() => create('queue-scorer', { threshold: 1 }, pool)).toThrow(/unknown parameter "threshold" \(known: countRoutedSinceScrape\)/);
  });
  it('counts requests routed since the endpoint\'s last scrape was sent (unless countRoutedSinceScrape is false)', () => {
    const { pool, endpoints } = makePool([{ waitingQueueSize: 0 }, { waitingQueueSize: 1 }, { waitingQueueSize: 0 }]);
    // Two requests routed to the first endpoint after its last scrape was sent, one before.
    endpoints[0].dispatched = 3;
    endpoints[0].dispatchedAtScrape = 1;
    expect([...create<Scorer>('queue-scorer', {}, pool).score(state(undefined), endpoints)]).toEqual([0, 0.5, 1]);
    expect([...create<Scorer>('queue-scorer', { countRoutedSinceScrape: false }, pool).score(state(undefined), endpoints)]).toEqual([1, 0, 1]);
  });
});
