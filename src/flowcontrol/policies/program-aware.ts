// program-aware-fairness: fairness between programs (fairness ids) by the
// service they have had, not by turns. Strategy "las" (least attained
// service): each program's attained service is prompt tokens + 2 × completion
// tokens of its finished requests, halving every lasHalfLifeSeconds of wall
// time; the band serves the flow scoring highest on
//   lasWeightService · (1 - normalised service) + lasWeightHeadWait · normalised head wait,
// both normalised over the flows with queued requests (0.5 when all equal).
// Programs idle (nothing in flight) for evictionTtlSeconds are forgotten.
//
// Wiring: the controller tells the policy of each dispatch from a band it
// governs (dispatched()); the host reports each finished request with its
// token usage (completed()) — llm-d's PreRequest and ResponseBody hooks.
import { Gauge, type Registry } from 'prom-client';
import { bounded } from '../../observability/bounded.ts';
import { ConfigError } from '../../scheduling/params.ts';
import { definePlugin } from '../../scheduling/registry.ts';
import type { BandView, FairnessPolicy, FlowQueueView, FlowRequest } from '../types.ts';

export const PROGRAM_AWARE_FAIRNESS = 'program-aware-fairness';
/** Programs tracked at most; past it, idle ones are forgotten early and new ones share "other". */
export const MAX_PROGRAMS = 10_000;
const OVERFLOW_PROGRAM = 'other';
const INPUT_TOKEN_WEIGHT = 1;
const OUTPUT_TOKEN_WEIGHT = 2;

export interface ProgramAwareParams {
  strategy: 'las';
  lasWeightService: number;
  lasWeightHeadWait: number;
  /** 0: no decay. */
  lasHalfLifeSeconds: number;
  /** 0: programs are never forgotten (bounded by MAX_PROGRAMS). */
  evictionTtlSeconds: number;
  evictionSweepSeconds: number;
}

interface Program {
  inFlight: number;
  dispatched: number;
  waitCount: number;
  /** Running mean of queue wait, ms. */
  avgWaitMs: number;
  lastCompletion: number;
  service: number;
  /** Up to when decay is folded into `service`. */
  decayAnchor: number;
}

/** The plugin's series, shared by every instance on one registry (names must be unique there). */
interface ProgramGauges {
  readonly fairnessIndex: Gauge<string>;
  readonly avgWait: Gauge<'program_id'>;
  readonly attained: Gauge<'program_id'>;
}
const gaugesByRegistry = new WeakMap<Registry, ProgramGauges>();

/** The plugin's series on `registry` (registered once per registry). */
export function programAwareGauges(registry: Registry): ProgramGauges {
  let g = gaugesByRegistry.get(registry);
  if (!g) {
    const registers = [registry];
    g = {
      fairnessIndex: new Gauge({ name: 'llm_d_epp_program_aware_jains_fairness_index', help: "[ALPHA] Jain's fairness index over the programs' average queue wait (1 = equal waits).", registers, aggregator: 'average' }),
      avgWait: new Gauge({ name: 'llm_d_epp_program_aware_avg_wait_time_milliseconds', help: '[ALPHA] Running mean of flow-control queue wait per program, in milliseconds.', labelNames: ['program_id'], registers, aggregator: 'average' }),
      attained: new Gauge({ name: 'llm_d_epp_program_aware_attained_service_tokens', help: '[ALPHA] Time-decayed attained service per program, in weighted tokens (input + 2 × output).', labelNames: ['program_id'], registers, aggregator: 'sum' }),
    };
    gaugesByRegistry.set(registry, g);
  }
  return g;
}

export interface ProgramAwareOptions {
  now?: () => number;
  /** Where the plugin's gauges live (llm-epp's /metrics registry); none: not exported. */
  registry?: Registry;
  /** The label value for a program id (the shared fairness-id cap); default: the id, bounded in length. */
  label?: (id: string) => string;
}

export class ProgramAwareFairness implements FairnessPolicy {
  readonly type = PROGRAM_AWARE_FAIRNESS;
  readonly flowControl = 'fairness' as const;
  readonly name: string;
  readonly params: ProgramAwareParams;
  readonly #programs = new Map<string, Program>();
  readonly #now: () => number;
  readonly #gauges: ProgramGauges | undefined;
  readonly #label: (id: string) => string;
  #sweep: ReturnType<typeof setInterval> | undefined;
  // Per-pick scratch: each active flow's service and head wait.
  #service = new Float64Array(16);
  #wait = new Float64Array(16);
  // Sums over programs with at least one measured wait, for Jain's index in O(1).
  #waitSum = 0;
  #waitSqSum = 0;
  #waitN = 0;

  constructor(name: string, params: ProgramAwareParams, opts: ProgramAwareOptions = {}) {
    this.name = name;
    this.params = params;
    this.#now = opts.now ?? (() => performance.now());
    this.#gauges = opts.registry ? programAwareGauges(opts.registry) : undefined;
    this.#label = opts.label ?? ((id) => bounded(id));
  }

  newState(): unknown {
    return undefined;
  }

  /** Programs tracked now. */
  get size(): number {
    return this.#programs.size;
  }

  /** A program's attained service with decay folded in up to `now`. */
  service(id: string, now = this.#now()): number {
    const p = this.#programs.get(id);
    return p ? this.#decayed(p, now) : 0;
  }

  /** Jain's fairness index over the programs' average waits (1 when fewer than two have waited). */
  fairnessIndex(): number {
    if (this.#waitN <= 1 || this.#waitSqSum === 0) return 1;
    return (this.#waitSum * this.#waitSum) / (this.#waitN * this.#waitSqSum);
  }

  pick(band: BandView, now: number): FlowQueueView | undefined {
    const flows = band.activeFlows;
    const n = flows.length;
    if (this.#service.length < n) {
      this.#service = new Float64Array(Math.max(n, 2 * this.#service.length));
      this.#wait = new Float64Array(this.#service.length);
    }
    const service = this.#service;
    const wait = this.#wait;
    let minService = 0;
    let maxService = 0;
    let minWait = 0;
    let maxWait = 0;
    let first = true;
    // Ranges over the flows with a head request, then scores (reused buffers: no per-pick allocation).
    for (let i = 0; i < n; i++) {
      const head = flows[i].peek();
      if (head === undefined) {
        service[i] = Number.NaN;
        continue;
      }
      const s = this.service(flows[i].fairnessId, now);
      const w = Math.floor(now - head.enqueuedAt);
      service[i] = s;
      wait[i] = w;
      if (first) {
        minService = maxService = s;
        minWait = maxWait = w;
        first = false;
      } else {
        if (s < minService) minService = s;
        if (s > maxService) maxService = s;
        if (w < minWait) minWait = w;
        if (w > maxWait) maxWait = w;
      }
    }
    if (first) return undefined;
    const { lasWeightService: ws, lasWeightHeadWait: ww } = this.params;
    let best: FlowQueueView | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      if (Number.isNaN(service[i])) continue;
      const score = ws * (1 - normalise(service[i], minService, maxService)) + ww * normalise(wait[i], minWait, maxWait);
      // Strictly greater: ties go to the first flow in fairness-id order.
      if (score > bestScore) {
        bestScore = score;
        best = flows[i];
      }
    }
    this.#gauges?.fairnessIndex.set(this.fairnessIndex());
    return best;
  }

  dispatched(request: FlowRequest, waitMs: number, now: number): void {
    const id = this.#id(request.fairnessId, now);
    const p = this.#program(id, now);
    p.inFlight++;
    p.dispatched++;
    const wait = Math.floor(waitMs);
    if (p.waitCount > 0) {
      this.#waitSum -= p.avgWaitMs;
      this.#waitSqSum -= p.avgWaitMs * p.avgWaitMs;
    } else {
      this.#waitN++;
    }
    p.waitCount++;
    p.avgWaitMs += (wait - p.avgWaitMs) / p.waitCount;
    this.#waitSum += p.avgWaitMs;
    this.#waitSqSum += p.avgWaitMs * p.avgWaitMs;
    this.#gauges?.avgWait.set({ program_id: this.#label(id) }, p.avgWaitMs);
  }

  /**
   * A request dispatched from this policy's band finished (or failed: usage
   * unknown, 0 tokens). Its program's in-flight count goes down and its
   * attained service up.
   */
  completed(fairnessId: string, promptTokens = 0, completionTokens = 0, now = this.#now()): void {
    // A program never leaves while it has requests in flight; one folded into "other" finishes there.
    const id = this.#programs.has(fairnessId) ? fairnessId : OVERFLOW_PROGRAM;
    const p = this.#programs.get(id);
    if (!p) return;
    p.inFlight = Math.max(0, p.inFlight - 1);
    p.lastCompletion = now;
    p.service = this.#decayed(p, now) + INPUT_TOKEN_WEIGHT * Math.max(0, promptTokens) + OUTPUT_TOKEN_WEIGHT * Math.max(0, completionTokens);
    this.#gauges?.attained.set({ program_id: this.#label(id) }, p.service);
  }

  /** Forget programs with nothing in flight and no completion for evictionTtlSeconds (or `ttlMs`). */
  evictIdle(now = this.#now(), ttlMs = this.params.evictionTtlSeconds * 1000): number {
    let n = 0;
    for (const [id, p] of this.#programs) {
      if (p.inFlight !== 0 || now - p.lastCompletion <= ttlMs) continue;
      this.#forget(id, p);
      n++;
    }
    if (this.#programs.size === 0) this.#stopSweep();
    return n;
  }

  stop(): Promise<void> {
    this.#stopSweep();
    return Promise.resolve();
  }

  #decayed(p: Program, now: number): number {
    const halfLife = this.params.lasHalfLifeSeconds;
    const elapsed = now - p.decayAnchor;
    if (elapsed > 0) {
      if (halfLife > 0) p.service *= Math.pow(2, -elapsed / 1000 / halfLife);
      p.decayAnchor = now;
    }
    return p.service;
  }

  /** The id a program is tracked under: its own, or "other" once MAX_PROGRAMS are tracked. */
  #id(id: string, now: number): string {
    if (this.#programs.has(id) || this.#programs.size < MAX_PROGRAMS) return id;
    this.evictIdle(now, 0);
    return this.#programs.size < MAX_PROGRAMS ? id : OVERFLOW_PROGRAM;
  }

  #program(id: string, now: number): Program {
    let p = this.#programs.get(id);
    if (!p) {
      p = { inFlight: 0, dispatched: 0, waitCount: 0, avgWaitMs: 0, lastCompletion: now, service: 0, decayAnchor: now };
      this.#programs.set(id, p);
      this.#startSweep();
    }
    return p;
  }

  #forget(id: string, p: Program): void {
    this.#programs.delete(id);
    if (p.waitCount > 0) {
      this.#waitSum -= p.avgWaitMs;
      this.#waitSqSum -= p.avgWaitMs * p.avgWaitMs;
      this.#waitN--;
    }
    if (this.#gauges) {
      const label = this.#label(id);
      // "other" is shared by every capped-out id: its series stays.
      if (label !== OVERFLOW_PROGRAM) {
        this.#gauges.avgWait.remove({ program_id: label });
        this.#gauges.attained.remove({ program_id: label });
      }
    }
  }

  #startSweep(): void {
    if (this.#sweep !== undefined || this.params.evictionTtlSeconds <= 0) return;
    this.#sweep = setInterval(() => this.evictIdle(), this.params.evictionSweepSeconds * 1000);
    this.#sweep.unref?.();
  }

  #stopSweep(): void {
    if (this.#sweep === undefined) return;
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }
}

function normalise(v: number, min: number, max: number): number {
  return max === min ? 0.5 : (v - min) / (max - min);
}

export const programAwareFairness = definePlugin({
  type: PROGRAM_AWARE_FAIRNESS,
  description: 'Flow control fairness between programs (fairness ids) by attained service: the flow with the least decayed service (prompt + 2 × completion tokens), weighed with its head request\'s wait, is served next.',
  params: {
    strategy: { type: 'string', default: 'las', doc: 'Scoring strategy; only "las" (least attained service).' },
    lasWeightService: { type: 'number', default: 0.8, min: 0, doc: 'Weight of the inverted attained-service signal.' },
    lasWeightHeadWait: { type: 'number', default: 0.2, min: 0, doc: 'Weight of the head request\'s queue wait.' },
    lasHalfLifeSeconds: { type: 'number', default: 60, min: 0, doc: 'Half-life of attained service in wall-clock seconds; 0 disables decay.' },
    evictionTtlSeconds: { type: 'number', default: 3600, min: 0, doc: 'A program with nothing in flight and no completion for this long is forgotten; 0 never.' },
    evictionSweepSeconds: { type: 'number', default: 300, exclusiveMin: 0, doc: 'How often idle programs are looked for.' },
  },
  create: (name, p, ctx) => {
    if (p.strategy !== 'las' && p.strategy !== '') throw new ConfigError(`plugin "${name}" (${PROGRAM_AWARE_FAIRNESS}): parameter "strategy": unknown scoring strategy "${p.strategy}": only "las" is supported`);
    const metrics = ctx.metrics;
    return new ProgramAwareFairness(
      name,
      { strategy: 'las', lasWeightService: p.lasWeightService, lasWeightHeadWait: p.lasWeightHeadWait, lasHalfLifeSeconds: p.lasHalfLifeSeconds, evictionTtlSeconds: p.evictionTtlSeconds, evictionSweepSeconds: p.evictionSweepSeconds },
      metrics ? { registry: metrics.registry, label: (id) => metrics.fairnessLabel(id) } : {},
    );
  },
});
