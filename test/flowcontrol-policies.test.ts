// The policies on their own, against llm-d Router v0.10's formulas: usage
// limits (static, priority-holdback, soft-reflective-ceiling), least
// attained service (program-aware-fairness), the SLO header parser, and the
// probabilistic admitter.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { PriorityHoldbackPolicy } from '../src/flowcontrol/policies/priority-holdback.ts';
import { ProbabilisticAdmitter } from '../src/flowcontrol/policies/probabilistic-admitter.ts';
import { isAdmitter } from '../src/scheduling/framework.ts';
import { MAX_PROGRAMS, ProgramAwareFairness, type ProgramAwareParams } from '../src/flowcontrol/policies/program-aware.ts';
import { RoundRobinFairnessPolicy } from '../src/flowcontrol/policies/round-robin.ts';
import { MAX_SLO_MS, ttftSloMs } from '../src/flowcontrol/policies/slo-deadline.ts';
import { SoftReflectiveCeilingPolicy } from '../src/flowcontrol/policies/soft-reflective-ceiling.ts';
import { StaticUsageLimitPolicy } from '../src/flowcontrol/policies/static-usage-limit.ts';
import { FcfsOrderingPolicy } from '../src/flowcontrol/policies/fcfs.ts';
import type { BandView, FlowQueueView, QueuedRequest } from '../src/flowcontrol/types.ts';
import { makePool } from './helpers/scheduling.ts';

function limits(policy: { computeLimit(s: number, p: readonly number[], c: number[]): void }, saturation: number, priorities: number[]): number[] {
  const c = priorities.map(() => 1);
  policy.computeLimit(saturation, priorities, c);
  return c.map((x) => Math.round(x * 1e9) / 1e9);
}

describe('usage limit policies', () => {
  it('static-usage-limit-policy: one threshold for every band', () => {
    expect(limits(new StaticUsageLimitPolicy('s', 0.8), 0.5, [5, 0, -1])).toEqual([0.8, 0.8, 0.8]);
    expect(limits(new StaticUsageLimitPolicy(), 0.5, [0])).toEqual([1]);
  });

  it('priority-holdback-policy, rank: equal steps from maxCeiling down to minCeiling; one band is never held back', () => {
    const p = new PriorityHoldbackPolicy('h', 0.4, 0.9, 'rank');
    expect(limits(p, 0, [100, 10, 0, -1, -50])).toEqual([0.9, 0.775, 0.65, 0.525, 0.4]);
    expect(limits(p, 0, [3])).toEqual([0.9]);
    expect(limits(p, 0, [])).toEqual([]);
  });

  it('priority-holdback-policy, value: proportional to the priority numbers', () => {
    const p = new PriorityHoldbackPolicy('h', 0.2, 1, 'value');
    expect(limits(p, 0, [10, 5, 0, -10])).toEqual([1, 0.8, 0.6, 0.2]);
    // All equal: no differentiation.
    expect(limits(p, 0, [4, 4])).toEqual([1, 1]);
  });

  it('soft-reflective-ceiling-policy: open below the reflective ceiling, closed at saturation ≥ 1, else open 1 in round(s/(1-s))', () => {
    const p = new SoftReflectiveCeilingPolicy();
    // Three bands at s = 0.2: reflective ceilings 1, 0.9, 0.8 — all above s: open.
    expect(limits(p, 0.2, [2, 1, 0])).toEqual([1, 1, 1]);
    // s ≥ 1: the top band keeps ceiling 1 (and is itself gated by s ≥ 1), the rest are closed.
    expect(limits(p, 1.2, [2, 1, 0])).toEqual([1, 0, 0]);
    // One band: always 1.
    expect(limits(p, 0.7, [0])).toEqual([1]);
    // s = 0.75 with two bands: band 1's reflective ceiling is 0.25 ≤ s, so it alternates with period round(0.75/0.25) = 3.
    const q = new SoftReflectiveCeilingPolicy();
    const open = Array.from({ length: 12 }, () => limits(q, 0.75, [1, 0])[1]);
    expect(open.filter((c) => c === 1)).toHaveLength(4);
    expect(open).toEqual([0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1]);
    // At s = 0.5 the period is 1: always open.
    expect(Array.from({ length: 4 }, () => limits(q, 0.5, [1, 0])[1])).toEqual([1, 1, 1, 1]);
  });

  it('soft-reflective-ceiling-policy: every gated band opens on the same opportunity (one shared tick)', () => {
    const p = new SoftReflectiveCeilingPolicy();
    let opened = 0;
    for (let i = 0; i < 20; i++) {
      const c = limits(p, 0.8, [3, 2, 1, 0]);
      const gated = c.slice(1).filter((_, j) => 1 - ((j + 1) * 0.8) / 3 <= 0.8);
      expect(new Set(gated).size).toBeLessThanOrEqual(1);
      if (gated[0] === 1) opened++;
    }
    // Period round(0.8 / 0.2) = 4: the gated bands open together on 5 of the 20 opportunities.
    expect(opened).toBe(5);
  });
});

/** A band view over plain flows for the fairness policies. */
function band(flows: { id: string; heads: number[] }[], state: unknown): BandView {
  const ordering = new FcfsOrderingPolicy();
  let seq = 0;
  const views: FlowQueueView[] = flows.map((f) => {
    const items: QueuedRequest[] = f.heads.map((t) => ({ request: { id: `${f.id}-${t}`, fairnessId: f.id, priority: 0, byteSize: 1, receivedAt: t }, enqueuedAt: t, ttl: 0, seq: seq++ }));
    return { fairnessId: f.id, priority: 0, length: items.length, byteSize: items.length, peek: () => items[0] };
  });
  views.sort((a, b) => (a.fairnessId < b.fairnessId ? -1 : 1));
  return { priority: 0, ordering, activeFlows: views, fairnessState: state };
}

describe('fairness policies', () => {
  it('round-robin cycles through flows in id order, skipping empty ones, and resumes after the last served', () => {
    const rr = new RoundRobinFairnessPolicy();
    const state = rr.newState();
    const b = band([{ id: 'c', heads: [1] }, { id: 'a', heads: [1] }, { id: 'b', heads: [] }], state);
    const picks = Array.from({ length: 4 }, () => rr.pick(b)?.fairnessId);
    expect(picks).toEqual(['a', 'c', 'a', 'c']);
    // The last-served flow vanished: continue after its place.
    const b2 = band([{ id: 'a', heads: [1] }, { id: 'b', heads: [1] }, { id: 'd', heads: [1] }], state);
    expect(rr.pick(b2)?.fairnessId).toBe('d');
    expect(rr.pick(band([], state))).toBeUndefined();
  });

  const las = (over: Partial<ProgramAwareParams> = {}): ProgramAwareParams => ({ strategy: 'las', lasWeightService: 0.8, lasWeightHeadWait: 0.2, lasHalfLifeSeconds: 60, evictionTtlSeconds: 3600, evictionSweepSeconds: 300, ...over });

  it('program-aware (las): least attained service wins; on equal service, the longest head wait', () => {
    let now = 10_000;
    const pa = new ProgramAwareFairness('pa', las({ lasHalfLifeSeconds: 0 }), { now: () => now });
    const b = band([{ id: 'x', heads: [9_000] }, { id: 'y', heads: [5_000] }], undefined);
    // Cold start, equal service: y's head has waited longer.
    expect(pa.pick(b, now)?.fairnessId).toBe('y');
    pa.dispatched({ id: 'r', fairnessId: 'y', priority: 0, byteSize: 1, receivedAt: 0 }, 5000, now);
    pa.completed('y', 100, 50);
    expect(pa.service('y')).toBe(200);
    // y now has more service: x goes first despite waiting less.
    expect(pa.pick(b, now)?.fairnessId).toBe('x');
  });

  it('program-aware (las): attained service halves every lasHalfLifeSeconds', () => {
    let now = 0;
    const pa = new ProgramAwareFairness('pa', las({ lasHalfLifeSeconds: 60 }), { now: () => now });
    pa.dispatched({ id: 'r', fairnessId: 'p', priority: 0, byteSize: 1, receivedAt: 0 }, 0, now);
    pa.completed('p', 1000, 500);
    expect(pa.service('p')).toBe(2000);
    now += 60_000;
    expect(pa.service('p')).toBeCloseTo(1000, 6);
    now += 120_000;
    expect(pa.service('p')).toBeCloseTo(250, 6);
  });

  it("program-aware: Jain's index over average waits, gauges per program, idle programs forgotten with their series", async () => {
    let now = 0;
    const registry = new Registry();
    const pa = new ProgramAwareFairness('pa', las({ evictionTtlSeconds: 10 }), { now: () => now, registry });
    const req = (id: string) => ({ id, fairnessId: id, priority: 0, byteSize: 1, receivedAt: 0 });
    pa.dispatched(req('a'), 100, now);
    pa.dispatched(req('b'), 300, now);
    // Jain: (100 + 300)² / (2 × (100² + 300²)) = 0.8
    expect(pa.fairnessIndex()).toBeCloseTo(0.8, 9);
    pa.completed('a', 10, 10);
    pa.completed('b', 10, 10);
    const text = await registry.metrics();
    expect(text).toContain('llm_d_epp_program_aware_avg_wait_time_milliseconds{program_id="b"} 300');
    expect(text).toContain('llm_d_epp_program_aware_attained_service_tokens{program_id="a"} 30');
    now = 10_001;
    expect(pa.evictIdle()).toBe(2);
    expect(pa.size).toBe(0);
    expect(await registry.metrics()).not.toContain('program_id="a"');
    await pa.stop();
  });

  it('program-aware: a program with requests in flight is not forgotten; tracked programs are capped', () => {
    const pa = new ProgramAwareFairness('pa', las({ evictionTtlSeconds: 1 }), { now: () => 0 });
    const req = (id: string) => ({ id, fairnessId: id, priority: 0, byteSize: 1, receivedAt: 0 });
    pa.dispatched(req('busy'), 0, 0);
    expect(pa.evictIdle(1_000_000)).toBe(0);
    for (let i = 0; i < MAX_PROGRAMS + 50; i++) pa.dispatched(req(`p${i}`), 0, 0);
    expect(pa.size).toBeLessThanOrEqual(MAX_PROGRAMS + 1);
    void pa.stop();
  });
});

describe('slo-deadline header', () => {
  it('accepts a non-negative decimal integer up to MaxInt64/1e6 ms, from x-llm-d-slo-ttft-ms or x-slo-ttft-ms', () => {
    const h = (v: Record<string, string>) => ttftSloMs(new Map(Object.entries(v)));
    expect(h({ 'x-llm-d-slo-ttft-ms': '250' })).toBe(250);
    expect(h({ 'x-llm-d-slo-ttft-ms': '+250' })).toBe(250);
    expect(h({ 'x-slo-ttft-ms': '40' })).toBe(40);
    expect(h({ 'x-llm-d-slo-ttft-ms': '10', 'x-slo-ttft-ms': '40' })).toBe(10);
    expect(h({ 'x-llm-d-slo-ttft-ms': '', 'x-slo-ttft-ms': '40' })).toBe(40);
    expect(h({ 'x-llm-d-slo-ttft-ms': String(MAX_SLO_MS) })).toBe(MAX_SLO_MS);
    for (const bad of [String(MAX_SLO_MS + 1), '-1', '1.5', '1e3', 'abc', ' ', '9'.repeat(40)]) expect(h({ 'x-llm-d-slo-ttft-ms': bad })).toBeUndefined();
    expect(ttftSloMs(undefined)).toBeUndefined();
  });
});

describe('probabilistic-admitter', () => {
  const params = { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, power: 5, k: 300 };

  it('never sheds priority ≥ 0, nor without candidates; sheds sheddable requests with p = min(s^5 · 300, 1)', () => {
    const { endpoints } = makePool([{ waitingQueueSize: 1, kvCacheUsage: 0.08 }]); // s = max(0.2, 0.1) = 0.2
    let r = 0.05;
    const a = new ProbabilisticAdmitter('pa', params, () => r);
    expect(isAdmitter(a)).toBe(true);
    expect(a.saturation(endpoints)).toBeCloseTo(0.2, 9);
    expect(a.probability(0.2)).toBeCloseTo(0.096, 9);
    expect(a.admit(0, endpoints)).toBeUndefined();
    expect(a.admit(-1, [])).toBeUndefined();
    // random 0.05 < 0.096: shed; 0.5: admitted.
    expect(a.admit(-1, endpoints)).toBe('probabilistic-admitter: rejected, saturation=0.200 prob=0.10');
    r = 0.5;
    expect(a.admit(-1, endpoints)).toBeUndefined();
    expect(a.probability(0.34)).toBe(1);
    expect(a.probability(0.05)).toBeLessThan(0.0001);
  });

  it('an endpoint without metrics counts as fully loaded', () => {
    const { endpoints } = makePool([{ waitingQueueSize: 0 }, { waitingQueueSize: 0 }]);
    endpoints[1].metrics = undefined;
    const a = new ProbabilisticAdmitter('pa', params, () => 0.99);
    expect(a.saturation(endpoints)).toBe(0.5);
    expect(a.admit(-1, endpoints)).toMatch(/^probabilistic-admitter: rejected/);
  });
});
