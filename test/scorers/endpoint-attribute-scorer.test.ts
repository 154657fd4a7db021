// endpoint-attribute-scorer: linear in one numeric endpoint attribute, over
// the candidates' range or a fixed one; a missing attribute scores 0.
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/builtin-plugins.ts';
import { createLogger } from '../../src/log.ts';
import { attributeKey } from '../../src/pool/attributes.ts';
import { Datastore } from '../../src/pool/datastore.ts';
import type { Endpoint } from '../../src/pool/endpoint.ts';
import { makePool } from '../helpers/scheduling.ts';

const KEY = attributeKey('dcgm-extractor', 'GPUUtilization');

describe('endpoint-attribute-scorer', () => {
  const withUtil = (values: (number | undefined)[]) => {
    const { endpoints } = makePool(values.map(() => ({})));
    values.forEach((v, i) => v !== undefined && endpoints[i].attributes.set(KEY, v));
    return endpoints;
  };
  const plugin = (type: string, parameters: Record<string, unknown>) => createRegistry().create(type, 'p', parameters, { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random, plugins: new Map(), allowExperimental: true });

  it('linear scorer: adaptive range (equal values all 1), fixed range clamped, higher or lower better, missing 0', () => {
    const score = (params: Record<string, unknown>, values: (number | undefined)[]) =>
      [...(plugin('endpoint-attribute-scorer', { attributeKey: 'GPUUtilization', producer: 'dcgm-extractor', ...params }) as unknown as { score: (s: unknown, e: readonly Endpoint[]) => Float64Array }).score(undefined, withUtil(values))];
    const close = (got: number[], want: number[]) => got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 12));
    close(score({ algorithm: { type: 'linear_lower_is_better' } }, [0.2, 0.6, 1.0, undefined]), [1, 0.5, 0, 0]);
    close(score({ algorithm: { type: 'linear_higher_is_better' } }, [0.2, 0.6, 1.0]), [0, 0.5, 1]);
    expect(score({ algorithm: { type: 'linear_lower_is_better' } }, [0.4, 0.4])).toEqual([1, 1]);
    const fixed = { type: 'linear_lower_is_better', normalization: { fixedRange: { min: 0, max: 0.5 } } };
    expect(score({ algorithm: fixed }, [0, 0.25, 0.9])).toEqual([1, 0.5, 0]);
  });

  it('reads core-metrics-extractor customMetrics when no producer is named', () => {
    const { endpoints } = makePool([{}, {}]);
    endpoints[0].metrics = { ...endpoints[0].metrics!, custom: { 'custom.queue_depth': 3 } };
    endpoints[1].metrics = { ...endpoints[1].metrics!, custom: { 'custom.queue_depth': 9 } };
    const s = plugin('endpoint-attribute-scorer', { attributeKey: 'custom.queue_depth', algorithm: { type: 'linear_lower_is_better' } }) as unknown as { score: (s: unknown, e: readonly Endpoint[]) => Float64Array };
    expect([...s.score(undefined, endpoints)]).toEqual([1, 0]);
  });

});
