import { describe, expect, it } from 'vitest';
import type { Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('kv-cache-utilization-scorer', () => {
  it('scores 1 − KV-cache usage', () => {
    const { pool, endpoints } = makePool([{ kvCacheUsage: 0 }, { kvCacheUsage: 0.25 }, { kvCacheUsage: 1 }]);
    expect([...create<Scorer>('kv-cache-utilization-scorer', {}, pool).score(state(undefined), endpoints)]).toEqual([1, 0.75, 0]);
  });
  it('accepts its 2025 name kv-cache-scorer', () => {
    const { pool } = makePool([{}]);
    expect(create('kv-cache-scorer', {}, pool).type).toBe('kv-cache-utilization-scorer');
  });
});
