// In-flight accounting is per request and idempotent: pick() charges one
// endpoint once; responseComplete() gives it back exactly once however often
// it is called, and a served endpoint reported after that moves nothing.
import { describe, expect, it } from 'vitest';
import { Director } from '../src/request-control/director.ts';
import { RequestPlugins } from '../src/request-control/request-plugins.ts';
import { createLogger } from '../src/log.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { DEFAULT_CONFIG, loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import { context, makePool, request } from './helpers/scheduling.ts';

const silent = createLogger('silent');

describe('director in-flight accounting', () => {
  it('charges once, releases once, and ignores a served endpoint reported after completion', () => {
    const { pool, endpoints } = makePool([{ name: 'a' }, { name: 'b' }]);
    const metrics = new EppMetrics(pool, { poolName: 'p', stalenessThresholdMs: 60_000, version: 'test', processMetrics: false });
    const scheduler = new PipelineScheduler(loadConfig(parseConfigText(DEFAULT_CONFIG, 'default'), createRegistry(), context(pool), 'default'), silent, metrics);
    const d = new Director({
      pool,
      scheduler,
      plugins: new RequestPlugins(scheduler.config.plugins.values(), scheduler.timer, scheduler.config.saturationDetector),
      options: { metricsStalenessThresholdMs: 60_000, fallbackEndpoints: 1, disableEndpointSubsetFilter: false },
      metrics,
      log: silent,
    });
    const total = () => endpoints.reduce((s, e) => s + e.inFlight, 0);
    const tokens = () => endpoints.reduce((s, e) => s + e.inFlightTokens, 0);

    const r = d.pick(request({ model: 'm', prompt: 'x'.repeat(400) }), undefined);
    expect(total()).toBe(1);
    expect(tokens()).toBe(100);
    const other = endpoints.find((e) => e !== r.primary)!;
    d.responseReceived(r, other.key);
    expect(other.inFlight).toBe(1);
    d.responseComplete(r);
    d.responseComplete(r);
    d.responseComplete(r);
    expect(total()).toBe(0);
    expect(tokens()).toBe(0);
    d.responseReceived(r, r.primary.key);
    expect(total()).toBe(0);

    // A second request keeps its own charge whatever happens to the first.
    const r2 = d.pick(request({ model: 'm', prompt: 'y' }), undefined);
    d.responseComplete(r);
    expect(total()).toBe(1);
    d.responseComplete(r2);
    expect(total()).toBe(0);
  });
});
