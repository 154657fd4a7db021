// In-flight accounting is per request and idempotent: pick() charges one
// endpoint once; done() gives it back exactly once however often it is
// called, and served() after done() moves nothing.
import { describe, expect, it } from 'vitest';
import { Director } from '../src/director.ts';
import { createLogger } from '../src/log.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import { createRegistry } from '../src/scheduling/builtin-plugins.ts';
import { DEFAULT_CONFIG, loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import { context, makePool, request } from './helpers/scheduling.ts';

const silent = createLogger('silent');

describe('director in-flight accounting', () => {
  it('charges once, releases once, and ignores served() after done()', () => {
    const { pool, endpoints } = makePool([{ name: 'a' }, { name: 'b' }]);
    const metrics = new EppMetrics(pool, { poolName: 'p', stalenessThresholdMs: 60_000, version: 'test', processMetrics: false });
    const scheduler = new PipelineScheduler(loadConfig(parseConfigText(DEFAULT_CONFIG, 'default'), createRegistry(), context(pool), 'default'), silent, metrics);
    const d = new Director(pool, scheduler, { metricsStalenessThresholdMs: 60_000, fallbackEndpoints: 1, disableEndpointSubsetFilter: false }, metrics, silent);
    const total = () => endpoints.reduce((s, e) => s + e.inFlight, 0);
    const tokens = () => endpoints.reduce((s, e) => s + e.inFlightTokens, 0);

    const r = d.pick(request({ model: 'm', prompt: 'x'.repeat(400) }), undefined);
    expect(total()).toBe(1);
    expect(tokens()).toBe(100);
    const other = endpoints.find((e) => e !== r.primary)!;
    d.served(r, other.key);
    expect(other.inFlight).toBe(1);
    d.done(r);
    d.done(r);
    d.done(r);
    expect(total()).toBe(0);
    expect(tokens()).toBe(0);
    d.served(r, r.primary.key);
    expect(total()).toBe(0);

    // A second request keeps its own charge whatever happens to the first.
    const r2 = d.pick(request({ model: 'm', prompt: 'y' }), undefined);
    d.done(r);
    expect(total()).toBe(1);
    d.done(r2);
    expect(total()).toBe(0);
  });
});
