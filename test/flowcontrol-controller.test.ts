// The flow controller end to end with fake timers and a gate the test sets:
// fast path, ordering within a band, strict priority across bands, fairness
// across flows, queue-wait budgets (429 with endpoints, 503 without, scale
// from zero), capacity shedding and displacement, cancellation, shutdown,
// usage-limit gating, event-driven dispatch and garbage collection.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FlowController, type FlowControllerDeps } from '../src/flowcontrol/controller.ts';
import { parseFlowControl } from '../src/flowcontrol/config.ts';
import type { FlowControlObserver } from '../src/flowcontrol/metrics.ts';
import { DISPATCHED, EVICTED_CANCELLED, EVICTED_DISPLACED, EVICTED_NO_ENDPOINTS, EVICTED_SHUTTING_DOWN, EVICTED_TTL, REJECTED_CANCELLED, REJECTED_CAPACITY, REJECTED_NO_ENDPOINTS, REJECTED_SHUTTING_DOWN, outcomeError } from '../src/flowcontrol/outcome.ts';
import { EdfOrderingPolicy } from '../src/flowcontrol/policies/edf.ts';
import { PriorityHoldbackPolicy } from '../src/flowcontrol/policies/priority-holdback.ts';
import { ProgramAwareFairness } from '../src/flowcontrol/policies/program-aware.ts';
import { RoundRobinFairnessPolicy } from '../src/flowcontrol/policies/round-robin.ts';
import { SloDeadlineOrderingPolicy } from '../src/flowcontrol/policies/slo-deadline.ts';
import type { FlowOutcome, FlowRequest, QueueOutcome } from '../src/flowcontrol/types.ts';
import type { Plugin } from '../src/scheduling/framework.ts';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const SEC = 1000;
const MIN = 60 * SEC;

describe('fast path and event-driven dispatch', () => {
  it('with nothing queued and the gate open, enqueue answers synchronously with the shared constant (no promise)', () => {
    const h = harness();
    const o = h.enqueue(h.req('a'));
    expect(o).toBe(DISPATCHED);
    expect(h.fc.stats().queued).toBe(0);
    expect(h.rec.ids()).toEqual(['a']);
  });

  it('a saturated pool queues the request; it goes on the first wake() after capacity frees, not before', async () => {
    const h = harness();
    h.gate.saturation = 1;
    const p = h.enqueue(h.req('a'));
    expect(p).toBeInstanceOf(Promise);
    expect(h.fc.stats().queued).toBe(1);
    h.fc.wake();
    await vi.advanceTimersByTimeAsync(10);
    expect(h.outcomes.has('a')).toBe(false);
    h.gate.saturation = 0.5;
    // No wake, no dispatch: nothing polls.
    await vi.advanceTimersByTimeAsync(5 * SEC);
    expect(h.outcomes.has('a')).toBe(false);
    h.fc.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(await p).toBe(DISPATCHED);
    expect(h.fc.stats().queued).toBe(0);
  });

  it('wake() costs nothing with nothing queued: the gate is not even read', () => {
    const h = harness();
    const before = h.gate.reads;
    for (let i = 0; i < 100; i++) h.fc.wake();
    expect(h.gate.reads).toBe(before);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('once the gate opens, one wake drains the queue, one dispatch per event-loop turn (never blocking the loop)', () => {
    // Event-loop turns made explicit: defer() queues, turn() runs what was queued before it.
    const deferred: (() => void)[] = [];
    const turn = () => {
      for (const f of deferred.splice(0)) f();
    };
    const h = harness({}, [], { timers: { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (t) => clearTimeout(t as ReturnType<typeof setTimeout>), defer: (fn) => void deferred.push(fn) } });
    h.gate.saturation = 1;
    for (let i = 0; i < 5; i++) h.enqueue(h.req(`r${i}`));
    h.gate.saturation = 0;
    h.fc.wake();
    h.fc.wake();
    expect(deferred).toHaveLength(1);
    for (let n = 1; n <= 5; n++) {
      turn();
      expect(h.rec.ids()).toHaveLength(n);
    }
    expect(h.rec.ids()).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    // Done: the chain stopped by itself.
    expect(deferred).toHaveLength(0);
    // Closing the gate mid-way stops the chain.
    h.gate.saturation = 1;
    for (let i = 5; i < 8; i++) h.enqueue(h.req(`r${i}`));
    h.gate.saturation = 0;
    h.fc.wake();
    turn();
    h.gate.saturation = 1;
    turn();
    expect(deferred).toHaveLength(0);
    expect(h.rec.ids()).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
    expect(h.fc.stats().queued).toBe(2);
  });

  it('an arrival while others wait makes a decision: a higher-priority request can go at once, synchronously', () => {
    const holdback = new PriorityHoldbackPolicy('hb', 0.2, 1, 'rank');
    const h = harness({ usageLimitPolicyPluginRef: 'hb', priorityBands: [{ priority: 10 }, { priority: -1 }] }, [holdback]);
    // Ceilings: band 10 → 1.0, band 0 → 0.6, band -1 → 0.2. Saturation 0.5: -1 is held back.
    h.gate.saturation = 0.5;
    expect(h.enqueue(h.req('low', { priority: -1 }))).toBeInstanceOf(Promise);
    expect(h.enqueue(h.req('high', { priority: 10 }))).toBe(DISPATCHED);
    expect(h.enqueue(h.req('mid', { priority: 0 }))).toBe(DISPATCHED);
    expect(h.fc.stats().queued).toBe(1);
    h.gate.saturation = 0.1;
    expect(h.fc.dispatchNow()).toBe(1);
    expect(h.rec.ids()).toEqual(['high', 'mid', 'low']);
  });
});

describe('ordering within a band', () => {
  it('fcfs: first come, first served', () => {
    const h = harness();
    h.gate.saturation = 1;
    for (const id of ['a', 'b', 'c', 'd']) {
      h.enqueue(h.req(id));
      vi.advanceTimersByTime(1);
    }
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    expect(h.rec.ids()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('edf: earliest enqueue + TTL first; without a TTL, last', () => {
    const edf = new EdfOrderingPolicy();
    const q = (seq: number, enqueuedAt: number, ttl: number) => ({ request: { id: String(seq), fairnessId: 'f', priority: 0, byteSize: 1, receivedAt: 0 }, enqueuedAt, ttl, seq });
    const items = [q(0, 100, 0), q(1, 100, 5000), q(2, 200, 1000), q(3, 50, 5000), q(4, 200, 1000)];
    const sorted = [...items].sort((a, b) => (edf.less(a, b) ? -1 : edf.less(b, a) ? 1 : 0)).map((x) => x.seq);
    // Deadlines: 1 → 5100, 2 → 1200, 3 → 5050, 4 → 1200 (after 2 by arrival order), 0 → none.
    expect(sorted).toEqual([2, 4, 3, 1, 0]);
    // Through the controller (one TTL for all, so EDF is arrival order): the same band, the same queue.
    const h = harness({ defaultPriorityBand: { orderingPolicyRef: 'edf-ordering-policy' } }, [edf]);
    h.gate.saturation = 1;
    for (const id of ['x', 'y', 'z']) {
      h.enqueue(h.req(id));
      vi.advanceTimersByTime(5);
    }
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    expect(h.rec.ids()).toEqual(['x', 'y', 'z']);
  });

  it('slo-deadline: arrival + x-llm-d-slo-ttft-ms first; missing, invalid and overflowing SLOs last, by arrival', () => {
    const slo = new SloDeadlineOrderingPolicy();
    const h = harness({ defaultPriorityBand: { orderingPolicyRef: 'slo-deadline-ordering-policy' } }, [slo]);
    h.gate.saturation = 1;
    const reqs: [string, Record<string, string>][] = [
      ['none', {}],
      ['slow', { 'x-llm-d-slo-ttft-ms': '5000' }],
      ['overflow', { 'x-llm-d-slo-ttft-ms': '99999999999999999999' }],
      ['fast', { 'x-llm-d-slo-ttft-ms': ' 100 ' }],
      ['legacy', { 'x-slo-ttft-ms': '1000' }],
      ['garbage', { 'x-llm-d-slo-ttft-ms': '12abc' }],
      ['negative', { 'x-llm-d-slo-ttft-ms': '-5' }],
      ['huge', { 'x-llm-d-slo-ttft-ms': '9223372036855' }],
    ];
    for (const [id, headers] of reqs) {
      h.enqueue(h.req(id, { headers: new Map(Object.entries(headers)) }));
      vi.advanceTimersByTime(1);
    }
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    expect(h.rec.ids()).toEqual(['fast', 'legacy', 'slow', 'none', 'overflow', 'garbage', 'negative', 'huge']);
  });
});

describe('priority and fairness', () => {
  it('strict priority across bands: the highest band with work goes first, whatever arrived first', () => {
    const h = harness({ priorityBands: [{ priority: 10 }, { priority: -5 }] });
    h.gate.saturation = 1;
    h.enqueue(h.req('sheddable', { priority: -5 }));
    h.enqueue(h.req('standard', { priority: 0 }));
    h.enqueue(h.req('critical', { priority: 10 }));
    h.enqueue(h.req('critical2', { priority: 10 }));
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    expect(h.rec.ids()).toEqual(['critical', 'critical2', 'standard', 'sheddable']);
  });

  it('head-of-line blocking: while the highest band with a ceiling is saturated, no lower band dispatches', () => {
    const h = harness({ priorityBands: [{ priority: 10 }] });
    h.gate.saturation = 1;
    h.enqueue(h.req('low', { priority: 0 }));
    expect(h.fc.dispatchNow()).toBe(0);
    expect(h.rec.ids()).toEqual([]);
  });

  it('round-robin: a flow with 1,000 queued requests delays a flow with one by at most one dispatch', () => {
    const rr = new RoundRobinFairnessPolicy();
    const h = harness({ defaultPriorityBand: { fairnessPolicyRef: 'round-robin-fairness-policy' } }, [rr]);
    h.gate.saturation = 1;
    for (let i = 0; i < 1000; i++) h.enqueue(h.req(`big-${i}`, { fairnessId: 'tenant-big' }));
    h.gate.saturation = 0;
    // Some of the big flow's requests already went; then the small flow's request arrives.
    h.fc.dispatchNow(3);
    h.gate.saturation = 1;
    h.enqueue(h.req('small', { fairnessId: 'tenant-small' }));
    h.gate.saturation = 0;
    const before = h.rec.ids().length;
    h.fc.dispatchNow(2);
    const next = h.rec.ids().slice(before);
    expect(next).toContain('small');
    expect(next.indexOf('small')).toBeLessThanOrEqual(1);
    // And the two flows alternate while both have work.
    h.gate.saturation = 1;
    for (let i = 0; i < 3; i++) h.enqueue(h.req(`small-${i}`, { fairnessId: 'tenant-small' }));
    h.gate.saturation = 0;
    const at = h.rec.ids().length;
    h.fc.dispatchNow(6);
    const flows = h.rec.ids().slice(at).map((id) => (id.startsWith('small') ? 's' : 'b'));
    expect(flows.join('')).toMatch(/^(sb|bs){3}$/);
  });

  it('global-strict (the default): one queue across flows, so the single request waits behind the thousand', () => {
    const h = harness();
    h.gate.saturation = 1;
    for (let i = 0; i < 1000; i++) h.enqueue(h.req(`big-${i}`, { fairnessId: 'tenant-big' }));
    h.enqueue(h.req('small', { fairnessId: 'tenant-small' }));
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    expect(h.rec.ids().indexOf('small')).toBe(1000);
  });

  it('program-aware fairness: the program that has had the least service goes first', () => {
    const pa = new ProgramAwareFairness('program-aware-fairness', { strategy: 'las', lasWeightService: 0.8, lasWeightHeadWait: 0.2, lasHalfLifeSeconds: 0, evictionTtlSeconds: 0, evictionSweepSeconds: 300 }, { now: () => Date.now() });
    const h = harness({ defaultPriorityBand: { fairnessPolicyRef: 'program-aware-fairness' } }, [pa]);
    // Program "heavy" has been served 10k tokens, "light" 100.
    expect(h.enqueue(h.req('warm-heavy', { fairnessId: 'heavy' }))).toBe(DISPATCHED);
    expect(h.enqueue(h.req('warm-light', { fairnessId: 'light' }))).toBe(DISPATCHED);
    pa.completed('heavy', 10_000, 0);
    pa.completed('light', 100, 0);
    h.gate.saturation = 1;
    h.enqueue(h.req('h1', { fairnessId: 'heavy' }));
    vi.advanceTimersByTime(10);
    h.enqueue(h.req('l1', { fairnessId: 'light' }));
    h.gate.saturation = 0;
    h.fc.dispatchNow(1);
    expect(h.rec.ids().at(-1)).toBe('l1');
  });
});

describe('queue-wait budgets', () => {
  it('defaultRequestTTL sheds a waiting request with 429 (rejected-ttl-expired) while the pool has endpoints', async () => {
    const h = harness({ defaultRequestTTL: '30s' });
    h.gate.saturation = 1;
    const p = h.enqueue(h.req('a'));
    await vi.advanceTimersByTimeAsync(30 * SEC - 1);
    expect(h.outcomes.has('a')).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const o = await p;
    expect(o).toBe(EVICTED_TTL);
    expect([outcomeError(o)!.status, o.reason, o.outcome]).toEqual([429, 'rejected-ttl-expired', 'EvictedTTL']);
    expect(h.fc.stats().queued).toBe(0);
  });

  it('the default budget is 60 s; "0s" disables it', async () => {
    const h = harness();
    h.gate.saturation = 1;
    h.enqueue(h.req('a'));
    await vi.advanceTimersByTimeAsync(60 * SEC);
    expect(h.outcomes.get('a')).toBe(EVICTED_TTL);
    const off = harness({ defaultRequestTTL: '0s' });
    off.gate.saturation = 1;
    off.enqueue(off.req('b'));
    await vi.advanceTimersByTimeAsync(10 * 60 * MIN);
    expect(off.outcomes.has('b')).toBe(false);
    expect(off.fc.stats().queued).toBe(1);
  });

  it('one timer for every waiting request, not one each', () => {
    const h = harness({ defaultRequestTTL: '30s' });
    h.gate.saturation = 1;
    for (let i = 0; i < 500; i++) {
      h.enqueue(h.req(`r${i}`, { fairnessId: `f${i % 7}` }));
      vi.advanceTimersByTime(1);
    }
    // The TTL timer and the idle-flow collection timer.
    expect(vi.getTimerCount()).toBeLessThanOrEqual(2);
  });

  it('with no endpoints, noEndpointRequestTTL applies and the request is shed with 503 (EvictedNoEndpoints)', async () => {
    const h = harness({ defaultRequestTTL: '10s', noEndpointRequestTTL: '2m' });
    h.gate.saturation = 1;
    h.gate.empty = true;
    const p = h.enqueue(h.req('a'));
    await vi.advanceTimersByTimeAsync(10 * SEC);
    expect(h.outcomes.has('a')).toBe(false);
    await vi.advanceTimersByTimeAsync(2 * MIN - 10 * SEC);
    const o = await p;
    expect(o).toBe(EVICTED_NO_ENDPOINTS);
    expect([outcomeError(o)!.status, o.reason]).toEqual([503, 'rejected-no-endpoints']);
  });

  it('scale from zero: requests wait in the empty pool and dispatch when endpoints appear; the budget restarts then', async () => {
    const h = harness({ defaultRequestTTL: '1m', noEndpointRequestTTL: '5m' });
    h.gate.saturation = 1;
    h.gate.empty = true;
    const first = h.enqueue(h.req('first'));
    h.enqueue(h.req('second'));
    // Two minutes later an endpoint comes up, but it is busy at once: the saturation budget starts now.
    await vi.advanceTimersByTimeAsync(2 * MIN);
    h.gate.empty = false;
    h.fc.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.fc.stats().poolEmpty).toBe(false);
    await vi.advanceTimersByTimeAsync(MIN - 1);
    expect(h.fc.stats().queued).toBe(2);
    // Capacity frees for one of them.
    h.gate.saturation = 0;
    h.fc.dispatchNow(1);
    h.gate.saturation = 1;
    expect(await first).toBe(DISPATCHED);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.outcomes.get('second')).toBe(EVICTED_TTL);
  });

  it('the whole wait is bounded by the longer budget, whatever the regime changes', async () => {
    const h = harness({ defaultRequestTTL: '1m', noEndpointRequestTTL: '5m' });
    h.gate.saturation = 1;
    h.gate.empty = true;
    h.enqueue(h.req('a'));
    await vi.advanceTimersByTimeAsync(4 * MIN + 30 * SEC);
    h.gate.empty = false;
    h.fc.wake();
    await vi.advanceTimersByTimeAsync(30 * SEC - 1);
    expect(h.outcomes.has('a')).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.outcomes.get('a')!.outcome).toBe('EvictedTTL');
  });
});

describe('capacity', () => {
  it('a full band sheds new requests with 429 (rejected-saturated), synchronously', () => {
    const h = harness({ defaultPriorityBand: { maxRequests: 2 } });
    h.gate.saturation = 1;
    h.enqueue(h.req('a'));
    h.enqueue(h.req('b'));
    const o = h.enqueue(h.req('c'));
    expect(o).toBe(REJECTED_CAPACITY);
    expect([outcomeError(REJECTED_CAPACITY)!.status, REJECTED_CAPACITY.reason]).toEqual([429, 'rejected-saturated']);
    expect(h.rec.ids('RejectedCapacity')).toEqual(['c']);
  });

  it('the band byte limit counts too', () => {
    const h = harness({ defaultPriorityBand: { maxBytes: '250' } });
    h.gate.saturation = 1;
    h.enqueue(h.req('a', { byteSize: 200 }));
    expect(h.enqueue(h.req('b', { byteSize: 51 }))).toBe(REJECTED_CAPACITY);
    expect(h.enqueue(h.req('c', { byteSize: 50 }))).toBeInstanceOf(Promise);
  });

  it('a full queue with no endpoints answers 503 (rejected-no-endpoints)', () => {
    const h = harness({ defaultPriorityBand: { maxRequests: 1 } });
    h.gate.saturation = 1;
    h.gate.empty = true;
    h.enqueue(h.req('a'));
    const o = h.enqueue(h.req('b'));
    expect(o).toBe(REJECTED_NO_ENDPOINTS);
    expect([outcomeError(REJECTED_NO_ENDPOINTS)!.status, REJECTED_NO_ENDPOINTS.reason]).toEqual([503, 'rejected-no-endpoints']);
  });

  it('overall limits: a higher-priority request displaces the lowest band\'s last-served request; equal priority is shed', async () => {
    const h = harness({ maxRequests: 3, priorityBands: [{ priority: 10 }, { priority: -1 }] });
    h.gate.saturation = 1;
    const low1 = h.enqueue(h.req('low1', { priority: -1 }));
    vi.advanceTimersByTime(1);
    const low2 = h.enqueue(h.req('low2', { priority: -1 }));
    vi.advanceTimersByTime(1);
    h.enqueue(h.req('std', { priority: 0 }));
    expect(h.fc.stats().queued).toBe(3);
    expect(h.enqueue(h.req('high', { priority: 10 }))).toBeInstanceOf(Promise);
    expect(await low2).toBe(EVICTED_DISPLACED);
    expect([outcomeError(EVICTED_DISPLACED)!.status, EVICTED_DISPLACED.outcome]).toEqual([429, 'EvictedOther']);
    expect(h.fc.stats().queued).toBe(3);
    // Another -1 request cannot displace its own band: shed.
    expect(h.enqueue(h.req('low3', { priority: -1 }))).toBe(REJECTED_CAPACITY);
    // A priority-0 request displaces low1; another priority-10 one then has nothing below 0 but std.
    expect(h.enqueue(h.req('std2', { priority: 0 }))).toBeInstanceOf(Promise);
    expect(await low1).toBe(EVICTED_DISPLACED);
    expect(h.enqueue(h.req('high2', { priority: 10 }))).toBeInstanceOf(Promise);
    expect(h.rec.ids('EvictedOther')).toEqual(['low2', 'low1', 'std2']);
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    expect(h.rec.ids()).toEqual(['high', 'high2', 'std']);
  });

  it('displacement by bytes takes as many as needed, and none when not enough is below', () => {
    const h = harness({ maxBytes: '1000', priorityBands: [{ priority: 10 }, { priority: -1 }] });
    h.gate.saturation = 1;
    for (let i = 0; i < 4; i++) h.enqueue(h.req(`low${i}`, { priority: -1, byteSize: 200 }));
    h.enqueue(h.req('std', { priority: 0, byteSize: 200 }));
    // 1000 used; 500 more for a priority-10 request needs three -1 requests (600 bytes) out.
    expect(h.enqueue(h.req('big', { priority: 10, byteSize: 500 }))).toBeInstanceOf(Promise);
    expect(h.rec.ids('EvictedOther')).toHaveLength(3);
    expect(h.fc.stats().bytes).toBe(900);
    // 600 more at priority 0 would need 500 out of band -1, which holds 200: nobody is displaced.
    expect(h.enqueue(h.req('std-big', { priority: 0, byteSize: 600 }))).toBe(REJECTED_CAPACITY);
    expect(h.rec.ids('EvictedOther')).toHaveLength(3);
  });
});

describe('cancellation and shutdown', () => {
  it('a request whose client goes away is removed from its queue at once, and counted', async () => {
    const h = harness();
    h.gate.saturation = 1;
    const ac = new AbortController();
    const p = h.enqueue(h.req('a', { signal: ac.signal }));
    h.enqueue(h.req('b'));
    expect(h.fc.stats().queued).toBe(2);
    ac.abort();
    expect(h.fc.stats().queued).toBe(1);
    expect(h.rec.queuedNow).toBe(1);
    const o = await p;
    expect(o).toBe(EVICTED_CANCELLED);
    expect([outcomeError(o)!.status, o.reason]).toEqual([503, 'rejected-context-cancelled']);
    expect(h.rec.ids('EvictedContextCancelled')).toEqual(['a']);
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    expect(h.rec.ids()).toEqual(['b']);
  });

  it('an already-cancelled request is refused without queueing', () => {
    const h = harness();
    const ac = new AbortController();
    ac.abort();
    expect(h.enqueue(h.req('a', { signal: ac.signal }))).toBe(REJECTED_CANCELLED);
    expect(h.fc.stats().queued).toBe(0);
  });

  it('a dispatched request no longer listens to its signal', async () => {
    const h = harness();
    h.gate.saturation = 1;
    const ac = new AbortController();
    const p = h.enqueue(h.req('a', { signal: ac.signal }));
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    ac.abort();
    expect(await p).toBe(DISPATCHED);
    expect(h.rec.ids('EvictedContextCancelled')).toEqual([]);
  });

  it('shutdown finalises every queued request at once (503, shutting down), refuses new ones and leaves no timer', async () => {
    const h = harness({ priorityBands: [{ priority: 5 }] });
    h.gate.saturation = 1;
    const ps = [h.enqueue(h.req('a')), h.enqueue(h.req('b', { priority: 5 })), h.enqueue(h.req('c', { fairnessId: 'x' }))];
    h.fc.shutdown();
    const all = await Promise.all(ps);
    expect(all.every((o) => o === EVICTED_SHUTTING_DOWN)).toBe(true);
    expect([outcomeError(EVICTED_SHUTTING_DOWN)!.status, EVICTED_SHUTTING_DOWN.reason]).toEqual([503, 'rejected-shutting-down']);
    expect(h.fc.stats().queued).toBe(0);
    expect(h.enqueue(h.req('d'))).toBe(REJECTED_SHUTTING_DOWN);
    expect(vi.getTimerCount()).toBe(0);
    h.fc.shutdown();
  });
});

describe('bands and flows are collected when idle', () => {
  it('an idle flow is forgotten after 5 minutes (and its metric series with it)', async () => {
    const h = harness();
    h.enqueue(h.req('a', { fairnessId: 'tenant' }));
    expect(h.fc.stats().flows).toBe(1);
    await vi.advanceTimersByTimeAsync(5 * MIN - 1);
    expect(h.fc.stats().flows).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.fc.stats().flows).toBe(0);
    expect(h.rec.collected).toEqual(['tenant/0']);
  });

  it('a flow in use is not forgotten; a band provisioned for an unknown priority goes 10 minutes after its last flow', async () => {
    const h = harness({ defaultRequestTTL: '0s' });
    h.gate.saturation = 1;
    h.enqueue(h.req('a', { priority: 7 }));
    expect(h.fc.priorities()).toEqual([7, 0]);
    await vi.advanceTimersByTimeAsync(20 * MIN);
    expect(h.fc.stats().flows).toBe(1);
    expect(h.rec.collected).toEqual([]);
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    await vi.advanceTimersByTimeAsync(5 * MIN);
    expect(h.rec.collected).toEqual(['default-flow/7']);
    expect(h.fc.priorities()).toEqual([7, 0]);
    await vi.advanceTimersByTimeAsync(10 * MIN);
    expect(h.fc.priorities()).toEqual([0]);
  });

  it('a band an InferenceObjective names is kept while named, even idle; once not named and idle it goes', async () => {
    const h = harness();
    h.fc.setDesiredPriorities([3, -2]);
    expect(h.fc.priorities()).toEqual([3, 0, -2]);
    await vi.advanceTimersByTimeAsync(60 * MIN);
    expect(h.fc.priorities()).toEqual([3, 0, -2]);
    h.gate.saturation = 1;
    h.enqueue(h.req('a', { priority: 3 }));
    // No longer named while it holds a request: kept until idle.
    h.fc.setDesiredPriorities([-2]);
    expect(h.fc.priorities()).toEqual([3, 0, -2]);
    h.gate.saturation = 0;
    h.fc.dispatchNow();
    await vi.advanceTimersByTimeAsync(5 * MIN + 10 * MIN);
    expect(h.fc.priorities()).toEqual([0, -2]);
    // Configured bands are never collected.
    h.fc.setDesiredPriorities([]);
    expect(h.fc.priorities()).toEqual([0]);
  });

  it('idle flows are bounded: a flood of distinct fairness ids does not grow memory without limit', () => {
    const h = harness();
    for (let i = 0; i < 12_000; i++) h.enqueue(h.req(`r${i}`, { fairnessId: `id-${i}` }));
    expect(h.fc.stats().flows).toBeLessThanOrEqual(10_000);
    expect(h.rec.collected.length).toBeGreaterThanOrEqual(2000);
  });
});

class Recorder implements FlowControlObserver {
  readonly finishedLog: { id: string; outcome: QueueOutcome; seconds: number }[] = [];
  readonly collected: string[] = [];
  queuedNow = 0;
  bytesNow = 0;
  cycles = 0;
  revocations: { issued: number; ended: string[] } = { issued: 0, ended: [] };

  queued(req: FlowRequest): void {
    this.queuedNow++;
    this.bytesNow += req.byteSize;
  }
  unqueued(req: FlowRequest): void {
    this.queuedNow--;
    this.bytesNow -= req.byteSize;
  }
  finished(req: FlowRequest, outcome: QueueOutcome, seconds: number): void {
    this.finishedLog.push({ id: req.id, outcome, seconds });
  }
  enqueued(): void {}
  dispatchCycle(): void {
    this.cycles++;
  }
  poolSaturation(): void {}
  flowCollected(fairnessId: string, priority: number): void {
    this.collected.push(`${fairnessId}/${priority}`);
  }
  revocationsIssued(_priority: number, n: number): void {
    this.revocations.issued += n;
  }
  revocationEnded(outcome: 'confirmed' | 'timed_out'): void {
    this.revocations.ended.push(outcome);
  }
  reclaimTarget(): void {}
  pendingReclaim(): void {}

  /** Ids that ended with `outcome`, in order. */
  ids(outcome: QueueOutcome = 'Dispatched'): string[] {
    return this.finishedLog.filter((f) => f.outcome === outcome).map((f) => f.id);
  }
}

interface Harness {
  readonly fc: FlowController;
  readonly rec: Recorder;
  /** The pool as the gate reports it. */
  gate: { saturation: number; empty: boolean; reads: number };
  req(id: string, opts?: Partial<Omit<FlowRequest, 'id'>>): FlowRequest;
  /** Enqueue; the outcome lands in `outcomes` when it settles. */
  enqueue(r: FlowRequest): FlowOutcome | Promise<FlowOutcome>;
  readonly outcomes: Map<string, FlowOutcome>;
}

/** A controller over `section` (a flowControl mapping) with `plugins` by name; run under vi.useFakeTimers(). */
function harness(section: Record<string, unknown> = {}, plugins: Plugin[] = [], deps: Partial<FlowControllerDeps> = {}): Harness {
  const map = new Map(plugins.map((p) => [p.name, p]));
  const config = parseFlowControl(section, map, 'test');
  const gate = { saturation: 0, empty: false, reads: 0 };
  const rec = new Recorder();
  const outcomes = new Map<string, FlowOutcome>();
  const fc = new FlowController(config, {
    gate: {
      saturation: () => {
        gate.reads++;
        return gate.saturation;
      },
      poolEmpty: () => gate.empty,
    },
    metrics: rec,
    now: () => Date.now(),
    ...deps,
  });
  return {
    fc,
    rec,
    gate,
    outcomes,
    req: (id, opts = {}) => ({ id, fairnessId: 'default-flow', priority: 0, byteSize: 100, receivedAt: Date.now(), ...opts }),
    enqueue(r) {
      const o = fc.enqueue(r);
      if (o instanceof Promise) void o.then((x) => outcomes.set(r.id, x));
      else outcomes.set(r.id, o);
      return o;
    },
  };
}
