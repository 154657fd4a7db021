import { describe, expect, it } from 'vitest';
import type { Filter, Picker, ScoredEndpoint } from '../src/scheduling/framework.ts';
import { create, makePool, seeded, state } from './helpers/scheduling.ts';

describe('pickers', () => {
  const { pool, endpoints } = makePool([{}, {}, {}, {}]);
  const scored = (scores: number[]): ScoredEndpoint[] => endpoints.map((endpoint, i) => ({ endpoint, score: scores[i] }));

  it('max-score-picker ranks by score and breaks ties at random', () => {
    const p = create<Picker>('max-score-picker', {}, pool, seeded(1));
    expect(p.pick(state(undefined), scored([0.1, 0.9, 0.5, 0.3]), 3).map((e) => e.name)).toEqual(['pod-2', 'pod-3', 'pod-4']);
    const firsts = new Set<string>();
    for (let i = 0; i < 200; i++) firsts.add(p.pick(state(undefined), scored([1, 1, 1, 0]), 1)[0].name);
    expect(firsts).toEqual(new Set(['pod-1', 'pod-2', 'pod-3']));
  });

  it('random-picker is uniform', () => {
    const p = create<Picker>('random-picker', {}, pool, seeded(2));
    const counts = new Map<string, number>();
    for (let i = 0; i < 8000; i++) {
      const n = p.pick(state(undefined), scored([5, 0, 0, 0]), 1)[0].name;
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    for (const c of counts.values()) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });

  it('weighted-random-picker draws in proportion to score', () => {
    const p = create<Picker>('weighted-random-picker', {}, pool, seeded(3));
    const weights = [1, 2, 3, 4];
    const counts = [0, 0, 0, 0];
    const draws = 20_000;
    for (let i = 0; i < draws; i++) counts[endpoints.indexOf(p.pick(state(undefined), scored(weights), 1)[0])]++;
    counts.forEach((c, i) => expect(Math.abs(c / draws - weights[i] / 10)).toBeLessThan(0.015));
    // Distinct fallbacks, and zero scores only after all positive ones.
    const order = p.pick(state(undefined), scored([0, 2, 0, 1]), 4);
    expect(new Set(order).size).toBe(4);
    expect(order.slice(0, 2).map((e) => e.name).sort()).toEqual(['pod-2', 'pod-4']);
  });

  it('weighted-random-picker is uniform when every score is 0', () => {
    const p = create<Picker>('weighted-random-picker', {}, pool, seeded(4));
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 8000; i++) counts[endpoints.indexOf(p.pick(state(undefined), scored([0, 0, 0, 0]), 1)[0])]++;
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });

  it('maxNumOfEndpoints overrides the server\'s list length', () => {
    expect(create<Picker>('max-score-picker', { maxNumOfEndpoints: 2 }, pool).maxEndpoints).toBe(2);
    expect(create<Picker>('max-score-picker', {}, pool).maxEndpoints).toBeUndefined();
    expect(() => create('max-score-picker', { maxNumOfEndpoints: 0 }, pool)).toThrow(/must be ≥ 1/);
  });
});

describe('filters', () => {
  const { pool, endpoints } = makePool([
    { labels: { 'llm-d.ai/role': 'decode', tier: 'a' } },
    { labels: { 'llm-d.ai/role': 'prefill', tier: 'b' } },
    { labels: { 'llm-d.ai/role': 'both' } },
    { labels: {} },
  ]);
  const names = (f: Filter) => f.filter(state(undefined), endpoints).map((e) => e.name);

  it('decode-filter keeps decode roles and unlabelled pods; prefill-filter drops unlabelled ones', () => {
    expect(names(create('decode-filter', {}, pool))).toEqual(['pod-1', 'pod-3', 'pod-4']);
    expect(names(create('prefill-filter', {}, pool))).toEqual(['pod-2', 'pod-3']);
  });

  it('label-selector-filter applies matchLabels and matchExpressions', () => {
    expect(names(create('label-selector-filter', { matchLabels: { tier: 'a' } }, pool))).toEqual(['pod-1']);
    expect(names(create('label-selector-filter', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['a', 'b'] }] }, pool))).toEqual(['pod-1', 'pod-2']);
    expect(names(create('label-selector-filter', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['a'] }] }, pool))).toEqual(['pod-2', 'pod-3', 'pod-4']);
    expect(names(create('label-selector-filter', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, pool))).toEqual(['pod-1', 'pod-2']);
    expect(names(create('by-label-selector', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, pool))).toEqual(['pod-3', 'pod-4']);
  });

  it('by-label keeps valid values and optionally unlabelled pods', () => {
    expect(names(create('by-label', { label: 'tier', validValues: ['b'] }, pool))).toEqual(['pod-2']);
    expect(names(create('by-label', { label: 'tier', validValues: ['b'], allowsNoLabel: true }, pool))).toEqual(['pod-2', 'pod-3', 'pod-4']);
  });
});
