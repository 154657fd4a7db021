// The configured scheduler: data producers, then the profiles the profile
// handler asks for (filters → weighted scorers → picker), then PreRequest
// hooks on the primary result. Every plugin call is timed into
// inference_extension_plugin_duration_seconds.
import type { Logger } from '../log.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import {
  CycleState,
  isDataProducer,
  isPreRequest,
  isRequestDone,
  isResponseHeaders,
  type DataProducer,
  type Plugin,
  type PreRequest,
  type ProfileHandler,
  type ProfileResult,
  type RequestDone,
  type SaturationDetector,
  type ResponseHeaders,
  type SchedulerProfile,
  type ScoredEndpoint,
} from './framework.ts';
import type { Scheduler, SchedulingRequest, SchedulingResult } from './types.ts';

export interface PipelineConfig {
  readonly plugins: ReadonlyMap<string, Plugin>;
  readonly profiles: ReadonlyMap<string, SchedulerProfile>;
  readonly profileHandler: ProfileHandler;
  /** Admission: sheddable requests are rejected while this reports ≥ 1. */
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
  readonly #producers: DataProducer[];
  readonly #preRequest: PreRequest[];
  readonly #requestDone: RequestDone[];
  readonly #responseHeaders: ResponseHeaders[];
  readonly #metrics: EppMetrics | undefined;
  readonly #log: Logger;

  constructor(config: C, log: Logger, metrics?: EppMetrics) {
    this.config = config;
    this.#log = log;
    this.#metrics = metrics;
    const plugins = [...config.plugins.values()];
    this.#producers = plugins.filter(isDataProducer);
    this.#preRequest = plugins.filter(isPreRequest);
    this.#requestDone = plugins.filter(isRequestDone);
    this.#responseHeaders = plugins.filter(isResponseHeaders);
  }

  saturation(candidates: readonly Endpoint[]): number {
    const d = this.config.saturationDetector;
    return d ? this.#timed('SaturationDetector', d, () => d.saturation(candidates)) : 0;
  }

  schedule(request: SchedulingRequest, candidates: readonly Endpoint[], maxEndpoints: number): SchedulingResult {
    const state = new CycleState(request);
    for (const p of this.#producers) this.#guarded('PrepareData', p, () => p.produce(state, candidates), undefined);

    const results = new Map<string, ProfileRun>();
    const handler = this.config.profileHandler;
    for (let round = 0; round < MAX_PROFILE_ROUNDS; round++) {
      const next = this.#timed('ProfileHandler', handler, () => handler.pickProfiles(state, this.config.profiles, results));
      if (next.length === 0) break;
      for (const profile of next) results.set(profile.name, this.#runProfile(profile, state, candidates, maxEndpoints));
    }
    const primaryName = handler.primaryProfile(state, results);
    const primary = results.get(primaryName) ?? EMPTY;
    if (primary.endpoints.length === 0) return { endpoints: [], cycle: state };
    const chosen = primary.endpoints[0];
    for (const p of this.#preRequest) this.#guarded('PreRequest', p, () => p.preRequest(state, chosen, results), undefined);
    return {
      endpoints: primary.endpoints,
      scores: () => scoreMap(primary),
      cycle: state,
      explain: () => explain(primaryName, primary),
    };
  }

  requestDone(_request: SchedulingRequest, result: SchedulingResult, primary: Endpoint): void {
    const state = result.cycle as CycleState | undefined;
    if (!state) return;
    for (const p of this.#requestDone) {
      try {
        p.requestDone(state, primary);
      } catch (err) {
        this.#log.error({ err, plugin: p.name }, 'requestDone hook failed');
      }
    }
  }

  responseHeaders(_request: SchedulingRequest, result: SchedulingResult, served: Endpoint): [string, string][] {
    const state = result.cycle as CycleState | undefined;
    if (!state || this.#responseHeaders.length === 0) return [];
    const out: [string, string][] = [];
    for (const p of this.#responseHeaders) out.push(...p.responseHeaders(state, served));
    return out;
  }

  #runProfile(profile: SchedulerProfile, state: CycleState, candidates: readonly Endpoint[], maxEndpoints: number): ProfileRun {
    let eps = candidates;
    for (const f of profile.filters) {
      // A failing filter passes everything through rather than failing the request.
      const before = eps;
      eps = this.#guarded('Filter', f, () => f.filter(state, before), before);
      if (eps.length === 0) return EMPTY;
    }
    const n = eps.length;
    const totals = new Float64Array(n);
    const perScorer: ProfileRun['perScorer'] = [];
    for (const { scorer, weight } of profile.scorers) {
      // A failing scorer scores 0 everywhere.
      const raw = this.#guarded('Scorer', scorer, () => scorer.score(state, eps), new Float64Array(n));
      const clamped = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const s = raw[i];
        // Clamp to [0, 1]; a NaN from a plugin counts as 0 rather than poisoning the sum.
        const c = s > 1 ? 1 : s >= 0 ? s : 0;
        clamped[i] = c;
        totals[i] += weight * c;
      }
      perScorer.push({ name: scorer.name, weight, scores: clamped });
    }
    const scored: ScoredEndpoint[] = new Array(n);
    for (let i = 0; i < n; i++) scored[i] = { endpoint: eps[i], score: totals[i] };
    const max = profile.picker.maxEndpoints ?? maxEndpoints;
    const endpoints = this.#timed('Picker', profile.picker, () => profile.picker.pick(state, scored, max));
    return { endpoints, totals, perScorer, candidates: eps };
  }

  /** Run a plugin call; on an exception log it and use `fallback`: one bad plugin must not fail every request. */
  #guarded<T>(point: string, plugin: Plugin, fn: () => T, fallback: T): T {
    try {
      return this.#timed(point, plugin, fn);
    } catch (err) {
      this.#log.error({ err, plugin: plugin.name, type: plugin.type, extensionPoint: point }, 'scheduling plugin failed; continuing without it');
      return fallback;
    }
  }

  #timed<T>(point: string, plugin: Plugin, fn: () => T): T {
    const m = this.#metrics;
    if (!m) return fn();
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.#histogram(point, plugin).observe((performance.now() - t0) / 1000);
    }
  }

  // One labelled child per (extension point, plugin): prom-client would
  // otherwise hash the label set on every observation.
  readonly #children = new Map<string, { observe(v: number): void }>();

  #histogram(point: string, plugin: Plugin): { observe(v: number): void } {
    const key = `${point}\0${plugin.name}`;
    let child = this.#children.get(key);
    if (!child) {
      child = this.#metrics!.pluginDuration.labels({ extension_point: point, plugin_type: plugin.type, plugin_name: plugin.name });
      this.#children.set(key, child);
    }
    return child;
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
