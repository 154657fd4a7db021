// In-flight eviction (flowControl.enableEviction): victim order, sizing and
// stop-and-wait pacing, and the controller triggering it when queued
// higher-priority work is held back by saturation.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FlowController } from '../src/flowcontrol/controller.ts';
import { parseFlowControl } from '../src/flowcontrol/config.ts';
import { InFlightRequests, Reclamation } from '../src/flowcontrol/eviction.ts';
import type { FlowControlObserver } from '../src/flowcontrol/metrics.ts';
import type { FlowRequest } from '../src/flowcontrol/types.ts';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Only what eviction reports. */
function observer() {
  const seen = { issued: [] as [number, number][], ended: [] as string[], pending: [] as number[], targets: [] as number[] };
  const o: FlowControlObserver = {
    queued() {},
    unqueued() {},
    finished() {},
    enqueued() {},
    dispatchCycle() {},
    poolSaturation() {},
    flowCollected() {},
    revocationsIssued: (p, n) => void seen.issued.push([p, n]),
    revocationEnded: (outcome) => void seen.ended.push(outcome),
    reclaimTarget: (t) => void seen.targets.push(t),
    pendingReclaim: (p) => void seen.pending.push(p),
  };
  return { o, seen };
}

describe('in-flight requests as eviction victims', () => {
  it('only sheddable requests (priority < 0); lowest priority first, then the most recently dispatched', () => {
    const inflight = new InFlightRequests();
    const ended: string[] = [];
    const track = (id: string, priority: number, at: number) => inflight.track(id, priority, at, () => ended.push(id));
    track('std', 0, 1);
    const doneOld = track('old-1', -1, 2);
    track('new-1', -1, 5);
    track('very-low', -10, 3);
    expect(inflight.stats()).toEqual({ inFlight: 4, evictable: 3 });
    expect(inflight.peekVictimPriority()).toBe(-10);
    expect(inflight.evict(2, 0)).toEqual(['very-low', 'new-1']);
    expect(ended).toEqual(['very-low', 'new-1']);
    // The bound: nothing at or above it.
    expect(inflight.evict(5, -1)).toEqual([]);
    doneOld();
    doneOld();
    expect(inflight.stats()).toEqual({ inFlight: 3, evictable: 0 });
    expect(inflight.peekVictimPriority()).toBeUndefined();
  });
});

describe('reclamation sizing and pacing', () => {
  it('n = max(1, ceil((s - c - pending) / (s / inFlight))), at most 2; then no decision until confirmed and 500 ms later', () => {
    const inflight = new InFlightRequests();
    for (let i = 0; i < 10; i++) inflight.track(`r${i}`, -1, i, () => {});
    const { o, seen } = observer();
    const r = new Reclamation(inflight, o);
    // s = 2, c = 1, 10 in flight: credit 0.2, deficit 1 → 5, capped at 2.
    expect(r.gateOpen(0)).toBe(true);
    expect(r.reclaim(2, 1, 0, 0)).toEqual(['r9', 'r8']);
    expect(seen.issued).toEqual([[0, 2]]);
    expect(r.pending).toBeCloseTo(0.4, 9);
    expect(r.gateOpen(1)).toBe(false);
    expect(r.confirm('r9', 100)).toBe(true);
    expect(r.confirm('nope', 100)).toBe(false);
    expect(r.gateOpen(200)).toBe(false);
    r.confirm('r8', 300);
    expect(r.gateOpen(799)).toBe(false);
    expect(r.gateOpen(800)).toBe(true);
    expect(r.pending).toBe(0);
    expect(seen.ended).toEqual(['confirmed', 'confirmed']);
    // A small deficit still evicts one.
    expect(r.reclaim(1.01, 1, 0, 900)).toHaveLength(1);
  });

  it('an eviction never confirmed counts as confirmed after 10 s', () => {
    const inflight = new InFlightRequests();
    inflight.track('a', -1, 0, () => {});
    const { o, seen } = observer();
    const r = new Reclamation(inflight, o);
    r.reclaim(1.5, 1, 0, 0);
    expect(r.gateOpen(9_999)).toBe(false);
    expect(r.gateOpen(10_000)).toBe(false);
    expect(seen.ended).toEqual(['timed_out']);
    expect(r.gateOpen(10_500)).toBe(true);
  });
});

describe('the controller evicts for blocked higher-priority work', () => {
  function setup(section: Record<string, unknown> = {}) {
    const inflight = new InFlightRequests();
    const ended: string[] = [];
    const gate = { saturation: 0, reads: 0 };
    const fc = new FlowController(parseFlowControl({ enableEviction: true, ...section }, new Map()), {
      gate: {
        saturation: () => {
          gate.reads++;
          return gate.saturation;
        },
        poolEmpty: () => false,
      },
      evictor: inflight,
      now: () => Date.now(),
    });
    const req = (id: string, priority: number): FlowRequest => ({ id, fairnessId: 'f', priority, byteSize: 1, receivedAt: Date.now() });
    const track = (id: string, priority: number) => inflight.track(id, priority, Date.now(), () => ended.push(id));
    return { inflight, ended, gate, fc, req, track };
  }

  it('a queued priority-0 request held at saturation evicts an in-flight sheddable request, once per pacing window', async () => {
    const { ended, gate, fc, req, track } = setup();
    track('std', 0);
    track('shed-a', -1);
    vi.advanceTimersByTime(1);
    track('shed-b', -1);
    vi.advanceTimersByTime(1);
    track('shed-c', -1);
    gate.saturation = 1.2;
    const p = fc.enqueue(req('waiting', 0));
    expect(p).toBeInstanceOf(Promise);
    // credit 1.2 / 4 = 0.3, deficit 0.2 → one eviction, the newest sheddable one.
    expect(ended).toEqual(['shed-c']);
    fc.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(ended).toEqual(['shed-c']);
    fc.evictionConfirmed('shed-c');
    await vi.advanceTimersByTimeAsync(499);
    expect(ended).toEqual(['shed-c']);
    // The grace ends: the controller wakes itself and decides again.
    await vi.advanceTimersByTimeAsync(1);
    expect(ended).toEqual(['shed-c', 'shed-b']);
    gate.saturation = 0.5;
    fc.wake();
    await vi.advanceTimersByTimeAsync(0);
    expect((await p).outcome).toBe('Dispatched');
    // Nothing queued, the last eviction unconfirmed: its timeout is the only timer; no decision runs meanwhile.
    const reads = gate.reads;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(gate.reads).toBe(reads);
    fc.evictionConfirmed('shed-b');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(gate.reads).toBe(reads);
    fc.shutdown();
  });

  it('no eviction for demand at or below the victims\' priority, nor with eviction off', () => {
    const { ended, gate, fc, req, track } = setup({ priorityBands: [{ priority: -1 }] });
    track('shed', -1);
    gate.saturation = 2;
    fc.enqueue(req('also-shed', -1));
    expect(ended).toEqual([]);
    fc.shutdown();
    expect(() => new FlowController(parseFlowControl({ enableEviction: true }, new Map()), { gate: { saturation: () => 0, poolEmpty: () => false } })).toThrow(
      'flowControl.enableEviction is on but the host gave the flow controller no in-flight evictor',
    );
  });
});
