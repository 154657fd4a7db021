// The configured scheduler: the profiles the profile handler asks for, each
// filters → weighted scorers → picker, over the candidates request control
// hands it with the request's CycleState (already filled by the data
// producers). Nothing else: admission, producers and the request hooks are
// request control's (src/request-control/). Every plugin call is timed into
// inference_extension_plugin_duration_seconds.
import type { Logger } from '../log.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import type { Span } from '@opentelemetry/api';
import { bounded } from '../observability/bounded.ts';
import { childSpan, type RequestTrace } from '../observability/spans.ts';
import type { CycleState, Plugin, ProfileHandler, ProfileResult, SaturationDetector, SchedulerProfile, ScoredEndpoint, Scorer } from './framework.ts';
import { PluginTimer } from './plugin-timer.ts';
import type { Scheduler, SchedulingResult } from './types.ts';

export interface PipelineConfig {
  readonly plugins: ReadonlyMap<string, Plugin>;
  readonly profiles: ReadonlyMap<string, SchedulerProfile>;
  readonly profileHandler: ProfileHandler;
  /** Admission (request control's): sheddable requests are rejected while this reports ≥ 1. */
  readonly saturationDetector?: SaturationDetector;
}

interface ProfileRun extends ProfileResult {
  /** Per-scorer clamped scores aligned with `candidates`, for explanations. */
  readonly perScorer: { name: string; weight: number; scores: Float64Array }[];
  readonly candidates: readonly Endpoint[];
}

const MAX_PROFILE_ROUNDS = 8;
const EMPTY: ProfileRun = { endpoints: [], totals: new Float64Array(0), perScorer: [], candidates: [] };

function scoreMap(run: ProfileResult): Map<Endpoint, number> {
  const m = new Map<Endpoint, number>();
  for (let i = 0; i < run.candidates.length; i++) m.set(run.candidates[i], run.totals[i]);
  return m;
}

export class PipelineScheduler<C extends PipelineConfig = PipelineConfig> implements Scheduler {
  readonly name = 'pipeline';
  readonly config: C;
  readonly timer: PluginTimer;

  constructor(config: C, log: Logger, metrics?: EppMetrics, timer: PluginTimer = new PluginTimer(metrics, log)) {
    this.config = config;
    this.timer = timer;
  }

  schedule(state: CycleState, candidates: readonly Endpoint[], maxEndpoints: number): SchedulingResult {
    const results = new Map<string, ProfileRun>();
    const handler = this.config.profileHandler;
    for (let round = 0; round < MAX_PROFILE_ROUNDS; round++) {
      const next = this.timer.timed('ProfileHandler', handler, () => handler.pickProfiles(state, this.config.profiles, results));
      if (next.length === 0) break;
      for (const profile of next) results.set(profile.name, this.#runProfile(profile, state, candidates, maxEndpoints));
    }
    const primaryName = handler.primaryProfile(state, results);
    const primary = results.get(primaryName) ?? EMPTY;
    if (primary.endpoints.length === 0) return { endpoints: [], profiles: results };
    return {
      endpoints: primary.endpoints,
      rewrite: handler.rewriteDestination?.(state, primary.endpoints),
      profiles: results,
      scores: () => scoreMap(primary),
      explain: () => explain(primaryName, primary),
    };
  }

  #runProfile(profile: SchedulerProfile, state: CycleState, candidates: readonly Endpoint[], maxEndpoints: number): ProfileRun {
    let eps = candidates;
    for (const f of profile.filters) {
      // A failing filter passes everything through rather than failing the request.
      const before = eps;
      eps = this.timer.guarded('Filter', f, () => f.filter(state, before), before);
      if (eps.length === 0) return EMPTY;
    }
    const n = eps.length;
    const totals = new Float64Array(n);
    const perScorer: ProfileRun['perScorer'] = [];
    const traced = state.request.trace;
    const scoring = traced ? scoringSpan(traced, state, profile.scorers.length, n) : undefined;
    for (const { scorer, weight } of profile.scorers) {
      const span = scoring && childSpan(scoring.trace, `llm_d.epp.scorer.${scorer.type}`).span;
      // A failing scorer scores 0 everywhere.
      const raw = this.timer.guarded('Scorer', scorer, () => scorer.score(state, eps), new Float64Array(n));
      const clamped = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const s = raw[i];
        // Clamp to [0, 1]; a NaN from a plugin counts as 0 rather than poisoning the sum.
        const c = s > 1 ? 1 : s >= 0 ? s : 0;
        clamped[i] = c;
        totals[i] += weight * c;
      }
      perScorer.push({ name: scorer.name, weight, scores: clamped });
      if (span) endScorerSpan(span, scorer, weight, clamped);
    }
    scoring?.span.end();
    const scored: ScoredEndpoint[] = new Array(n);
    for (let i = 0; i < n; i++) scored[i] = { endpoint: eps[i], score: totals[i] };
    const max = profile.picker.maxEndpoints ?? maxEndpoints;
    const endpoints = this.timer.timed('Picker', profile.picker, () => profile.picker.pick(state, scored, max));
    return { endpoints, totals, perScorer, candidates: eps };
  }
}

/** Per-plugin scores of the chosen endpoint and the best other one. */
function explain(profile: string, run: ProfileRun): Record<string, unknown> {
  const describe = (ep: Endpoint | undefined) => {
    if (!ep) return undefined;
    const i = run.candidates.indexOf(ep);
    const plugins: Record<string, number> = {};
    for (const s of run.perScorer) plugins[s.name] = +s.scores[i].toFixed(4);
    return { endpoint: ep.key, total: +(run.totals[i] ?? 0).toFixed(4), plugins };
  };
  const chosen = run.endpoints[0];
  let runnerUp: Endpoint | undefined;
  let best = -Infinity;
  run.candidates.forEach((ep, i) => {
    if (ep !== chosen && run.totals[i] > best) {
      best = run.totals[i];
      runnerUp = ep;
    }
  });
  return { profile, chosen: describe(chosen), runnerUp: describe(runnerUp), candidates: run.candidates.length };
}

/** llm_d.epp.scoring: one profile's scoring, as llm-d Router names it and its attributes. */
function scoringSpan(parent: RequestTrace, state: CycleState, scorers: number, candidates: number): { span: Span; trace: RequestTrace } {
  const s = childSpan(parent, 'llm_d.epp.scoring');
  s.span.setAttributes({
    'llm_d.epp.scorer.count': scorers,
    'llm_d.epp.scoring.candidate_endpoints': candidates,
    'gen_ai.request.model': bounded(state.request.targetModel),
    'gen_ai.request.id': state.request.requestId,
  });
  return s;
}

/** llm_d.epp.scorer.<type>: the scorer, its weight and the scores it gave. */
function endScorerSpan(span: Span, scorer: Scorer, weight: number, scores: Float64Array): void {
  let max = 0;
  let sum = 0;
  for (const v of scores) {
    if (v > max) max = v;
    sum += v;
  }
  span.setAttributes({
    'llm_d.epp.scorer.type': scorer.type,
    'llm_d.epp.scorer.name': scorer.name,
    'llm_d.epp.scorer.weight': weight,
    'llm_d.epp.scorer.candidate_endpoints': scores.length,
    'llm_d.epp.scorer.endpoints_scored': scores.length,
    'llm_d.epp.scorer.score.max': max,
    'llm_d.epp.scorer.score.avg': scores.length ? sum / scores.length : 0,
  });
  span.end();
}
