// Flow control's series under llm-d Router v0.10's names and labels, their
// deprecated twins, the fairness_id cap, series removal when a flow is
// forgotten, and the stale-endpoints gauge of the dispatch gate.
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FlowController } from '../src/flowcontrol/controller.ts';
import { parseFlowControl } from '../src/flowcontrol/config.ts';
import { poolGate } from '../src/flowcontrol/gate.ts';
import { FlowControlMetrics } from '../src/flowcontrol/metrics.ts';
import type { FlowRequest } from '../src/flowcontrol/types.ts';
import { LabelValues } from '../src/observability/bounded.ts';
import { UtilizationDetector } from '../src/scheduling/saturation/utilization-detector.ts';
import { makePool } from './helpers/scheduling.ts';

beforeEach(() => {
  vi.useFakeTimers({ now: 5_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

function setup(opts: { fairnessLimit?: number } = {}) {
  const registry = new Registry();
  const fairness = new LabelValues(opts.fairnessLimit ?? 1000);
  const metrics = new FlowControlMetrics(registry, { poolName: 'pool-a', fairnessLabel: (id) => fairness.value(id) });
  const gate = { saturation: 0, empty: false };
  const fc = new FlowController(parseFlowControl({ priorityBands: [{ priority: 5 }] }, new Map()), {
    gate: { saturation: () => gate.saturation, poolEmpty: () => gate.empty },
    metrics,
    now: () => Date.now(),
  });
  const req = (id: string, over: Partial<FlowRequest> = {}): FlowRequest => ({ id, fairnessId: 'tenant', priority: 0, byteSize: 300, receivedAt: Date.now(), model: 'm', targetModel: 'm-v2', ...over });
  return { registry, metrics, gate, fc, req };
}

describe('flow control metrics', () => {
  it("uses llm-d's names and labels, and serves each deprecated inference_extension_ twin", async () => {
    const { registry, gate, fc, req } = setup();
    fc.enqueue(req('a'));
    gate.saturation = 1.5;
    fc.enqueue(req('b'));
    fc.enqueue(req('c', { priority: 5, fairnessId: 'other-tenant' }));
    const text = await registry.metrics();
    const flow = 'fairness_id="tenant",priority="0",inference_pool="pool-a",model_name="m",target_model_name="m-v2"';
    expect(text).toContain(`llm_d_epp_flow_control_queue_size{${flow}} 1`);
    expect(text).toContain(`llm_d_epp_flow_control_queue_bytes{${flow}} 300`);
    expect(text).toContain('llm_d_epp_flow_control_requests_total{outcome="Dispatched",priority="0",inference_pool="pool-a"} 1');
    expect(text).toContain('llm_d_epp_flow_control_request_queue_duration_seconds_bucket{le="0.0001",fairness_id="tenant",priority="0",outcome="Dispatched",inference_pool="pool-a",model_name="m",target_model_name="m-v2"} 1');
    expect(text).toContain('llm_d_epp_flow_control_request_queue_duration_seconds_bucket{le="60",');
    expect(text).toMatch(/llm_d_epp_flow_control_request_enqueue_duration_seconds_count\{fairness_id="tenant",priority="0",outcome="NotYetFinalized"\} 1/);
    expect(text).toContain('llm_d_epp_flow_control_pool_saturation{inference_pool="pool-a"} 1.5');
    expect(text).toMatch(/llm_d_epp_flow_control_dispatch_cycle_duration_seconds_count \d+/);
    expect(text).toContain(`inference_extension_flow_control_queue_size{${flow}} 1`);
    expect(text).toContain('inference_extension_flow_control_pool_saturation{inference_pool="pool-a"} 1.5');
    expect(text).toContain('inference_extension_flow_control_request_queue_duration_seconds_count{fairness_id="tenant",priority="0",outcome="Dispatched"');
    expect(text).toContain('# HELP inference_extension_flow_control_queue_bytes [ALPHA] [Deprecated: Use llm_d_epp_flow_control_queue_bytes]');
    expect(text).not.toContain('inference_extension_flow_control_requests_total');
    // Dispatched: the gauges go back to 0 and the outcome is counted once.
    gate.saturation = 0;
    fc.dispatchNow();
    const after = await registry.metrics();
    expect(after).toContain(`llm_d_epp_flow_control_queue_size{${flow}} 0`);
    expect(after).toContain(`llm_d_epp_flow_control_queue_bytes{${flow}} 0`);
    expect(after).toContain('llm_d_epp_flow_control_requests_total{outcome="Dispatched",priority="0",inference_pool="pool-a"} 2');
    expect(after).toContain('llm_d_epp_flow_control_requests_total{outcome="Dispatched",priority="5",inference_pool="pool-a"} 1');
  });

  it('counts rejections and evictions by outcome', async () => {
    const { registry, gate, fc, req } = setup();
    gate.saturation = 1;
    const ac = new AbortController();
    fc.enqueue(req('a', { signal: ac.signal }));
    ac.abort();
    fc.enqueue(req('b'));
    await vi.advanceTimersByTimeAsync(60_000);
    fc.enqueue(req('c'));
    fc.shutdown();
    fc.enqueue(req('d'));
    const text = await registry.metrics();
    for (const outcome of ['EvictedContextCancelled', 'EvictedTTL', 'EvictedOther', 'RejectedOther']) {
      expect(text).toContain(`llm_d_epp_flow_control_requests_total{outcome="${outcome}",priority="0",inference_pool="pool-a"} 1`);
    }
  });

  it('fairness_id is capped: past the cap, new ids are reported as "other"', async () => {
    const { registry, fc, req } = setup({ fairnessLimit: 2 });
    for (const id of ['t1', 't2', 't3', 't4']) fc.enqueue(req(id, { fairnessId: id }));
    const text = await registry.metrics();
    expect(text).toContain('fairness_id="t1"');
    expect(text).toContain('fairness_id="t2"');
    expect(text).not.toContain('fairness_id="t3"');
    expect(text).toContain('llm_d_epp_flow_control_request_queue_duration_seconds_count{fairness_id="other",priority="0",outcome="Dispatched",inference_pool="pool-a",model_name="m",target_model_name="m-v2"} 2');
  });

  it("a flow's series are removed when the flow is forgotten; the shared \"other\" series stay", async () => {
    const { registry, gate, fc, req } = setup({ fairnessLimit: 1 });
    gate.saturation = 1;
    fc.enqueue(req('a', { fairnessId: 'gone' }));
    fc.enqueue(req('b', { fairnessId: 'overflowed' }));
    gate.saturation = 0;
    fc.dispatchNow();
    fc.enqueue(req('c', { fairnessId: 'gone', priority: 5 }));
    expect(await registry.metrics()).toContain('fairness_id="gone"');
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    const text = await registry.metrics();
    expect(text).not.toContain('fairness_id="gone"');
    expect(text).toContain('fairness_id="other"');
    // The counters without fairness_id are untouched.
    expect(text).toContain('llm_d_epp_flow_control_requests_total{outcome="Dispatched",priority="0",inference_pool="pool-a"} 2');
  });

  it('the pool gate: stale endpoints count as saturated, and are reported per detector', async () => {
    const registry = new Registry();
    const metrics = new FlowControlMetrics(registry, { poolName: 'p' });
    const { pool, endpoints } = makePool([{ waitingQueueSize: 0 }, { waitingQueueSize: 0 }]);
    const detector = new UtilizationDetector('utilization-detector', { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessThresholdMs: 200, headroom: 0 }, () => performance.now());
    const gate = poolGate(pool, detector, { stalenessMs: 200, staleEndpoints: (d, n) => metrics.recordStaleEndpoints(d, n) });
    expect(gate.saturation()).toBe(0);
    expect(gate.poolEmpty()).toBe(false);
    endpoints[1].metricsUpdatedAt = performance.now() - 10_000;
    expect(gate.saturation()).toBe(0.5);
    expect(await registry.metrics()).toContain('llm_d_epp_flow_control_stale_endpoints{detector="utilization-detector"} 1');
    pool.replaceAll([]);
    expect(gate.poolEmpty()).toBe(true);
    expect(gate.saturation()).toBe(1);
  });
});
