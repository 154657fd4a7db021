// Plugin interfaces, after the GAIE / llm-d EPP. Request control
// (src/request-control/) runs the data producers once per request, then the
// scheduler's profiles: each narrows the candidates with Filters, adds up
// weight × score from Scorers and lets a Picker rank what is left, while a
// ProfileHandler decides which profiles run. Request control then runs the
// PreRequest hooks on the outcome (e.g. to update the prefix index), and
// ResponseReceived / ResponseComplete on the way back. Plugins are created by
// type name from the registry (registry.ts) with their validated parameters.
import type { SharedState } from '../sync/shared-state.ts';
import type { Logger } from '../log.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import type { EndpointPool } from '../pool/datastore.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import type { SchedulingRequest } from './types.ts';

export interface Plugin {
  /** Registered type name, e.g. "queue-scorer". */
  readonly type: string;
  /** Instance name from the config (defaults to the type). */
  readonly name: string;
  /**
   * Per-request data this plugin reads. The config loader checks that a
   * configured DataProducer produces each one, and refuses the config otherwise.
   */
  readonly consumes?: readonly StateKey<unknown>[];
  /**
   * Once every declared plugin exists, before data dependencies are checked:
   * find the plugins this one works with by name (a scorer its producer), in
   * whatever order the config declared them, as llm-d Router orders plugins by
   * their references. `create` makes a default plugin of a type (once).
   */
  link?(plugins: ReadonlyMap<string, Plugin>, create: (type: string) => Plugin): void;
  /** Checks against the other configured plugins, once all exist (throw ConfigError). */
  checkConfig?(plugins: ReadonlyMap<string, Plugin>): void;
  /** Once the pool is loaded, before llm-epp serves: bind sockets, start workers (a rejection refuses start-up). */
  start?(): Promise<void>;
  /** At shutdown, after the last stream ended: close what start() opened (never rejects). */
  stop?(): Promise<void>;
}

/**
 * A typed slot of a request's CycleState. Producers declare the keys they
 * write, consumers the keys they read; keys are compared by identity, so a
 * key is a module constant (or made once per plugin instance).
 */
export interface StateKey<T> {
  readonly name: string;
  /** Producer types that write it, for the config error when none is configured. */
  readonly producedBy: string;
  /** Plugin type the config loader creates when a plugin consumes the key and no producer is configured (llm-d's default producers). */
  readonly defaultProducer?: string;
  /** Carries T for the compiler; never set. */
  readonly __value?: T;
}

export function stateKey<T>(name: string, producedBy: string, defaultProducer?: string): StateKey<T> {
  return Object.freeze({ name, producedBy, defaultProducer });
}

/** Per-request scratch space shared by the plugins of one scheduling cycle. */
export class CycleState {
  readonly request: SchedulingRequest;
  readonly #data = new Map<StateKey<unknown>, unknown>();

  constructor(request: SchedulingRequest) {
    this.request = request;
  }

  get<T>(key: StateKey<T>): T | undefined {
    // set() is the only writer and takes a T for this key.
    return this.#data.get(key) as T | undefined;
  }

  set<T>(key: StateKey<T>, value: T): void {
    this.#data.set(key, value);
  }
}

/** Runs before the profiles: computes request data that scorers/filters read. */
export interface DataProducer extends Plugin {
  /** The state keys produce() writes. */
  readonly produces: readonly StateKey<unknown>[];
  produce(state: CycleState, candidates: readonly Endpoint[]): void;
}

/**
 * A producer whose data takes time to arrive (tokenization by a render
 * service or a worker thread, a burst window): request control awaits
 * prepare() before any produce() runs, in the producers' dependency order.
 * prepare() returns undefined when it has nothing to wait for (e.g. the
 * tokens were cached), so a request that needs no waiting stays synchronous.
 * It resolves (never rejects for an expected failure such as a render
 * timeout: it records the failure and lets produce() fall back); `signal`
 * aborts when the client goes away.
 */
export interface AsyncDataProducer extends DataProducer {
  prepare(state: CycleState, candidates: readonly Endpoint[], signal: AbortSignal): Promise<void> | undefined;
}

export interface Filter extends Plugin {
  /** Return the endpoints to keep (may be the same array). */
  filter(state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[];
}

export type ScorerCategory = 'affinity' | 'distribution' | 'balance';

export interface Scorer extends Plugin {
  readonly category: ScorerCategory;
  /** One score per endpoint, aligned with `endpoints`; the framework clamps to [0, 1]. */
  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array;
}

export interface ScoredEndpoint {
  readonly endpoint: Endpoint;
  /** Σ weight × clamped score. */
  readonly score: number;
}

export interface Picker extends Plugin {
  /** Endpoints in preference order, distinct, at most `max` (≥ 1). */
  pick(state: CycleState, scored: readonly ScoredEndpoint[], max: number): Endpoint[];
  /** maxNumOfEndpoints when configured; otherwise the server decides (1 + --fallback-endpoints). */
  readonly maxEndpoints: number | undefined;
}

export interface ProfileResult {
  readonly endpoints: readonly Endpoint[];
  /** The endpoints that passed the filters, and their total scores (aligned). */
  readonly candidates: readonly Endpoint[];
  readonly totals: Float64Array;
}

export interface ProfileHandler extends Plugin {
  /** Profiles to run next given the results so far; empty = done. */
  pickProfiles(state: CycleState, profiles: ReadonlyMap<string, SchedulerProfile>, results: ReadonlyMap<string, ProfileResult>): SchedulerProfile[];
  /** Name of the profile whose result routes the request. */
  primaryProfile(state: CycleState, results: ReadonlyMap<string, ProfileResult>): string;
  /** The configured profiles, once, at load (throw ConfigError when this handler cannot run them). */
  checkProfiles?(profiles: ReadonlyMap<string, SchedulerProfile>): void;
  /**
   * Where the picked endpoints are actually sent, and headers for the
   * upstream request (data-parallel-profile-handler sends to the pod's primary
   * port and names the rank's port in a header). Absent: the endpoints' keys.
   */
  rewriteDestination?(state: CycleState, endpoints: readonly Endpoint[]): DestinationRewrite;
}

export interface DestinationRewrite {
  /** host:port per picked endpoint, same order. */
  readonly destinations: readonly string[];
  /** Headers set on the request forwarded upstream. */
  readonly headers: readonly (readonly [string, string])[];
}

/** After the pick, before the request is forwarded. */
export interface PreRequest extends Plugin {
  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void;
}

/** The response's headers arrived from `served`; returns headers to add for the client (e.g. x-session-token). */
export interface ResponseReceived extends Plugin {
  responseReceived(state: CycleState, served: Endpoint): [string, string][];
}

/**
 * Admission after the producers, before scheduling (llm-d's AdmitRequest,
 * e.g. probabilistic-admitter): a reason to refuse the request, or undefined
 * to admit it.
 */
export interface Admitter extends Plugin {
  admit(priority: number, candidates: readonly Endpoint[]): string | undefined;
}

/** The routed request finished (response complete, cancelled or failed). */
export interface ResponseComplete extends Plugin {
  responseComplete(state: CycleState, served: Endpoint): void;
}

export interface WeightedScorer {
  readonly scorer: Scorer;
  readonly weight: number;
}

export interface SchedulerProfile {
  readonly name: string;
  readonly filters: readonly Filter[];
  readonly scorers: readonly WeightedScorer[];
  readonly picker: Picker;
}

/**
 * Pool saturation for admission: ≥ 1 means saturated, and sheddable requests
 * (priority < 0) are rejected with 429 (GAIE's admission without flow control).
 */
export interface SaturationDetector extends Plugin {
  saturation(endpoints: readonly Endpoint[]): number;
  /** Metrics older than this count the endpoint as saturated (its own threshold); absent: --metrics-staleness-threshold. */
  readonly stalenessMs?: number;
}

/** What a plugin factory may use. */
export interface PluginContext {
  readonly pool: EndpointPool;
  readonly log: Logger;
  readonly metrics: EppMetrics | undefined;
  readonly random: () => number;
  /** Plugins already created, by name (a scorer may depend on a producer). */
  readonly plugins: ReadonlyMap<string, Plugin>;
  /** --allow-experimental-plugins: alpha plugins may be created. */
  readonly allowExperimental?: boolean;
  /** --tokenizer-workers: worker threads of an in-process tokenizer. */
  readonly tokenizerWorkers?: number;
  /** Routing state shared with the other workers and replicas (--workers, --state-sync); absent when alone. */
  readonly sync?: SharedState;
}

export function isFilter(p: Plugin): p is Filter {
  return typeof (p as Filter).filter === 'function';
}
export function isScorer(p: Plugin): p is Scorer {
  return typeof (p as Scorer).score === 'function';
}
export function isPicker(p: Plugin): p is Picker {
  return typeof (p as Picker).pick === 'function';
}
export function isProfileHandler(p: Plugin): p is ProfileHandler {
  return typeof (p as ProfileHandler).pickProfiles === 'function';
}
export function isDataProducer(p: Plugin): p is DataProducer {
  return typeof (p as DataProducer).produce === 'function' && Array.isArray((p as DataProducer).produces);
}
export function isAsyncDataProducer(p: Plugin): p is AsyncDataProducer {
  return isDataProducer(p) && typeof (p as AsyncDataProducer).prepare === 'function';
}
export function isAdmitter(p: Plugin): p is Admitter {
  return typeof (p as Admitter).admit === 'function';
}
export function isPreRequest(p: Plugin): p is PreRequest {
  return typeof (p as PreRequest).preRequest === 'function';
}
export function isResponseReceived(p: Plugin): p is ResponseReceived {
  return typeof (p as ResponseReceived).responseReceived === 'function';
}
export function isResponseComplete(p: Plugin): p is ResponseComplete {
  return typeof (p as ResponseComplete).responseComplete === 'function';
}
export function isSaturationDetector(p: Plugin): p is SaturationDetector {
  return typeof (p as SaturationDetector).saturation === 'function';
}
