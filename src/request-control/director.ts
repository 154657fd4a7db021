// Request control: everything between a request the ext_proc stream has read
// and the endpoints it is sent to, and back. Parsing the body, the
// InferenceObjective and model rewrite (and the re-serialised body), which
// endpoints may serve it (fresh metrics, inside the gateway's subset hint),
// admission (sheddable requests while the pool is saturated), the data
// producers, the scheduling call and its metrics, the PreRequest hooks, the
// in-flight load it charges, and — on the way back — the ResponseReceived /
// ResponseComplete hooks and the request's metrics. The scheduler only ranks;
// the stream only speaks ext_proc.
import type { SharedState } from '../sync/shared-state.ts';
import { EppError, dropped } from '../errors.ts';
import type { FlowController } from '../flowcontrol/controller.ts';
import type { InFlightRequests } from '../flowcontrol/eviction.ts';
import { outcomeError } from '../flowcontrol/outcome.ts';
import type { FlowOutcome } from '../flowcontrol/types.ts';
import type { Logger } from '../log.ts';
import { bounded } from '../observability/bounded.ts';
import { bodyOf, type RequestBody } from '../openai/request-body.ts';
import { claimedApi, parseRequestBody } from '../openai/request.ts';
import type { ParserTable } from '../scheduling/parsers/request-parser.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import type { EndpointPool } from '../pool/datastore.ts';
import { hostOf, isFresh, type Endpoint } from '../pool/endpoint.ts';
import { CycleState } from '../scheduling/framework.ts';
import type { Scheduler, SchedulingRequest, SchedulingResult } from '../scheduling/types.ts';
import { estimateTokens } from '../units.ts';
import { SpanKind } from '@opentelemetry/api';
import { childSpan, endSpan, type RequestTrace } from '../observability/spans.ts';
import { DEFAULT_FAIRNESS_ID, type RequestPolicy, type RequestPolicyResult } from './policy.ts';
import type { RequestPlugins } from './request-plugins.ts';
import { RequestMetrics, countRejected } from './request-metrics.ts';

/** The signal of a request nobody cancels (tests, tools). */
const NEVER: AbortSignal = new AbortController().signal;

export interface DirectorOptions {
  metricsStalenessThresholdMs: number;
  fallbackEndpoints: number;
  disableEndpointSubsetFilter: boolean;
}

export interface DirectorDeps {
  pool: EndpointPool;
  scheduler: Scheduler;
  /** The configured plugins' request-control hooks and saturation detector; none when absent. */
  plugins?: RequestPlugins;
  /** InferenceObjectives and model rewrites; handleRequest() needs it. */
  policy?: RequestPolicy;
  /** The config's request parsers; absent: OpenAI paths, others read as completions. */
  parsers?: ParserTable;
  options: DirectorOptions;
  metrics: EppMetrics;
  log: Logger;
  /** Bytes of a non-streaming response kept to read its usage (default 4 MiB). */
  maxResponseUsageBytes?: number;
  /** Shared routing state (--workers, --state-sync): told of every load change this thread makes. */
  sync?: SharedState;
  /**
   * Flow control (the flowControl feature gate): requests wait here by
   * priority and fairness id before scheduling, instead of the legacy
   * admission (sheddable requests shed while saturated). Woken by the
   * director when a routed request completes.
   */
  flow?: FlowController;
  /** flowControl.enableEviction: the routed requests flow control may evict (sheddable ones). */
  inFlight?: InFlightRequests;
}

/** A request as the ext_proc stream has read it. */
export interface IncomingRequest {
  /** x-request-id (bounded), or one made up for it. */
  requestId: string;
  /** Request headers, keys lower-cased. */
  headers: ReadonlyMap<string, string>;
  path: string;
  /** The whole body; undefined when routing on headers alone. */
  body: RequestBody | Buffer | undefined;
  /** The gateway's subset hint (endpoint addresses), if it sent one. */
  subset: readonly string[] | undefined;
  /** performance.now() of the request's first message. */
  receivedAt: number;
  /** Set when the request is traced (its gateway.request span). */
  trace?: RequestTrace;
}

export class Director {
  readonly #pool: EndpointPool;
  readonly #scheduler: Scheduler;
  readonly #plugins: RequestPlugins | undefined;
  readonly #sync: SharedState | undefined;
  readonly #opts: DirectorOptions;
  readonly #metrics: EppMetrics;
  readonly #policy: RequestPolicy | undefined;
  readonly #parsers: ParserTable | undefined;
  readonly #log: Logger;
  readonly #flow: FlowController | undefined;
  readonly #inFlight: InFlightRequests | undefined;
  readonly #recording: { metrics: EppMetrics; log: Logger; maxResponseUsageBytes: number };

  constructor(deps: DirectorDeps) {
    this.#pool = deps.pool;
    this.#scheduler = deps.scheduler;
    this.#plugins = deps.plugins;
    this.#sync = deps.sync;
    this.#opts = deps.options;
    this.#metrics = deps.metrics;
    this.#policy = deps.policy;
    this.#parsers = deps.parsers;
    this.#log = deps.log;
    this.#flow = deps.flow;
    this.#inFlight = deps.inFlight;
    this.#recording = { metrics: deps.metrics, log: deps.log, maxResponseUsageBytes: deps.maxResponseUsageBytes ?? 4 << 20 };
  }

  /**
   * Everything the request path decides, in order: parse the body, resolve
   * objective and rewrite (re-serialising the body only when the model
   * changes), pick endpoints, record the request. Throws EppError (400, 429,
   * 503) carrying the model it named, for the error metric.
   */
  handleRequest(incoming: IncomingRequest, signal: AbortSignal = NEVER): Routing | Promise<Routing> {
    if (!incoming.trace) return this.#handle(incoming, undefined, signal);
    // gateway.request_orchestration, as llm-d Router names request control's span.
    const { span, trace } = childSpan(incoming.trace, 'gateway.request_orchestration', SpanKind.SERVER);
    const ok = (routing: Routing) => {
      span.setAttributes({ 'llm_d.epp.endpoint': routing.primary.key, 'gen_ai.request.model': bounded(routing.request.targetModel) });
      endSpan(span);
      return routing;
    };
    const failed = (e: unknown): never => {
      endSpan(span, e);
      throw e;
    };
    try {
      const r = this.#handle(incoming, trace, signal);
      return r instanceof Promise ? r.then(ok, failed) : ok(r);
    } catch (e) {
      return failed(e);
    }
  }

  #handle(incoming: IncomingRequest, trace: RequestTrace | undefined, signal: AbortSignal): Routing | Promise<Routing> {
    let body = incoming.body !== undefined ? bodyOf(incoming.body) : undefined;
    const parsed = body !== undefined ? this.#parse(body, incoming.path) : undefined;
    const model = parsed?.model ?? '';
    const pol = this.#policy?.resolve(incoming.headers, model);
    const targetModel = (pol?.targetModel || model);
    const rewritten = parsed !== undefined && targetModel !== model;
    if (rewritten) {
      parsed.body.model = targetModel;
      try {
        body = bodyOf(Buffer.from(JSON.stringify(parsed.body)));
      } catch (e) {
        throw e instanceof RangeError ? tagged(new EppError('BadRequest', 'request body is nested too deeply'), model, targetModel, pol) : e;
      }
    }
    const request: SchedulingRequest = {
      requestId: incoming.requestId,
      model,
      targetModel,
      parsed,
      headers: incoming.headers,
      priority: pol?.priority ?? 0,
      fairnessId: pol?.fairnessId ?? DEFAULT_FAIRNESS_ID,
      trace,
    };
    const failed = (e: unknown): never => {
      throw tagged(asEppError(e), model, targetModel, pol);
    };
    const routed = (routing: Routing): Routing => {
      this.#routed(routing, incoming.receivedAt, parsed?.api, parsed?.stream, pol?.rewriteName);
      return routing;
    };
    try {
      const r = this.route(request, incoming.subset, incoming.receivedAt, body, rewritten, signal);
      return r instanceof Promise ? r.then(routed, failed) : routed(r);
    } catch (e) {
      return failed(e);
    }
  }

  /** The request was routed: its metrics and the debug log line. */
  #routed(routing: Routing, receivedAt: number, api: string | undefined, stream: boolean | undefined, rewriteName: string | undefined): void {
    const { request, body } = routing;
    routing.metrics.routed(body?.length ?? 0, rewriteName);
    if (this.#log.isLevelEnabled('debug')) {
      const { endpoints } = routing;
      this.#log.debug(
        {
          requestId: request.requestId,
          model: bounded(request.model),
          api,
          stream,
          bodyBytes: body?.length ?? 0,
          endpoint: endpoints[0].key,
          fallbacks: endpoints.slice(1).map((e) => e.key),
          queue: endpoints[0].metrics?.waitingQueueSize,
          kvCache: endpoints[0].metrics?.kvCacheUsage,
          scheduler: this.#scheduler.name,
          scores: routing.result.explain?.(),
          latencyMs: +(performance.now() - receivedAt).toFixed(3),
        },
        'request routed',
      );
    }
  }

  /** llm-epp answered the request itself (an EppError): count it against the model it named. */
  rejected(routing: Routing | undefined, err: EppError): void {
    const model = routing?.request.model ?? err.model ?? '';
    const r = routing?.request;
    countRejected(this.#metrics, model, r?.targetModel ?? err.targetModel ?? model, r?.fairnessId ?? err.fairnessId ?? DEFAULT_FAIRNESS_ID, r?.priority ?? err.priority ?? 0, err.code);
    if (routing) this.responseComplete(routing, false);
  }

  get scheduler(): Scheduler {
    return this.#scheduler;
  }

  /** Endpoints with fresh metrics, narrowed to the subset hint (matched by IP) when one is given. */
  candidates(subset: readonly string[] | undefined): Endpoint[] {
    const now = performance.now();
    const stale = this.#opts.metricsStalenessThresholdMs;
    let allowed: Set<string> | undefined;
    if (subset !== undefined && !this.#opts.disableEndpointSubsetFilter) {
      allowed = new Set();
      for (const s of subset) allowed.add(hostOf(s.trim()));
    }
    const out: Endpoint[] = [];
    for (const ep of this.#pool.list()) {
      if (!isFresh(ep, now, stale)) continue;
      if (allowed && !allowed.has(ep.address)) continue;
      out.push(ep);
    }
    return out;
  }

  /** The body as the configured parser for its path reads it; undefined for a passthrough parser. */
  #parse(body: RequestBody, path: string) {
    if (!this.#parsers) return parseRequestBody(body, path);
    const api = this.#parsers.resolve(claimedApi(path));
    if (api === null) return undefined;
    if (api === undefined) throw new EppError('BadRequest', 'no configured request parser reads this path (requestHandler.parsers)');
    return parseRequestBody(body, path, api);
  }

  /**
   * Pick the primary endpoint and up to --fallback-endpoints next-best ones,
   * synchronously: for configurations whose producers never wait (tests and
   * tools; the request path uses route()). Throws EppError 503 when nothing
   * can serve the request, 429 when a sheddable request meets a saturated pool.
   */
  pick(request: SchedulingRequest, subset: readonly string[] | undefined, receivedAt = performance.now(), body?: Buffer, rewritten = false): Routing {
    const r = this.route(request, subset, receivedAt, body && bodyOf(body), rewritten, NEVER);
    if (r instanceof Promise) throw new Error('Director.pick(): a configured producer waits (prepare()); use route()');
    return r;
  }

  /**
   * pick(), letting the async producers (tokenization, a burst window) wait
   * first: a Promise only when one of them does. `signal` aborts the wait
   * when the client goes away: the request then charges nothing.
   */
  route(request: SchedulingRequest, subset: readonly string[] | undefined, receivedAt: number, body: RequestBody | undefined, rewritten: boolean, signal: AbortSignal): Routing | Promise<Routing> {
    const flow = this.#flow;
    if (flow === undefined) return this.#schedule(request, subset, receivedAt, body, rewritten, signal, true);
    // Flow control first (llm-d's admission controller): the request may wait for capacity, even
    // while the pool has no endpoints (scale from zero); the candidates are read once it goes.
    const outcome = flow.enqueue({
      id: request.requestId,
      fairnessId: request.fairnessId,
      priority: request.priority,
      byteSize: body?.length ?? 0,
      receivedAt,
      headers: request.headers,
      model: request.model,
      targetModel: request.targetModel,
      signal,
    });
    if (outcome instanceof Promise) return outcome.then((o) => this.#admitted(o, request, subset, receivedAt, body, rewritten, signal));
    return this.#admitted(outcome, request, subset, receivedAt, body, rewritten, signal);
  }

  /** Flow control's answer: an error, or scheduling now (the request counts as dispatched until it completes). */
  #admitted(outcome: FlowOutcome, request: SchedulingRequest, subset: readonly string[] | undefined, receivedAt: number, body: RequestBody | undefined, rewritten: boolean, signal: AbortSignal): Routing | Promise<Routing> {
    const err = outcomeError(outcome);
    if (err) throw err;
    const flow = this.#flow!;
    // Dispatched but not routed after all (no candidates, the client went away): over at once.
    const unrouted = (e: unknown): never => {
      flow.completed(request.fairnessId, request.priority);
      throw e;
    };
    let r: Routing | Promise<Routing>;
    try {
      r = this.#schedule(request, subset, receivedAt, body, rewritten, signal, false);
    } catch (e) {
      return unrouted(e);
    }
    return r instanceof Promise ? r.then((routing) => this.#flowRouted(routing), unrouted) : this.#flowRouted(r);
  }

  #flowRouted(routing: Routing): Routing {
    const inFlight = this.#inFlight;
    if (inFlight) {
      const { requestId, priority } = routing.request;
      // Eviction ends the request through its stream, on a later turn (after the eviction is recorded).
      routing.untrack = inFlight.track(requestId, priority, performance.now(), () => {
        routing.evicted = true;
        setImmediate(() => routing.onEvict?.());
      });
    }
    return routing;
  }

  /** Candidates, legacy admission (without flow control), the producers' wait, then the decision. */
  #schedule(request: SchedulingRequest, subset: readonly string[] | undefined, receivedAt: number, body: RequestBody | undefined, rewritten: boolean, signal: AbortSignal, legacyAdmission: boolean): Routing | Promise<Routing> {
    const candidates = this.candidates(subset);
    if (candidates.length === 0) {
      this.#failure(request);
      if (this.#pool.list().length === 0) throw noEndpoints('no endpoints in the pool');
      if (subset !== undefined && !this.#opts.disableEndpointSubsetFilter) {
        throw noEndpoints('failed to find endpoint candidates: no ready endpoint in the subset hint');
      }
      throw noEndpoints('no ready endpoints: every endpoint\'s metrics are missing or stale');
    }
    // GAIE's admission without flow control: sheddable requests (priority < 0)
    // are dropped with 429 while the pool is saturated.
    if (legacyAdmission && request.priority < 0 && (this.#plugins?.saturation(candidates) ?? 0) >= 1) {
      this.#failure(request);
      throw new EppError('ResourceExhausted', 'the pool is saturated: sheddable request (priority < 0) rejected');
    }
    const state = new CycleState(request);
    const wait = this.#plugins?.prepare(state, candidates, signal);
    if (!wait) return this.#decide(state, candidates, receivedAt, body, rewritten);
    return wait.then(() => {
      if (signal.aborted) throw new EppError('ServiceUnavailable', 'the client went away while the request was being prepared');
      // Endpoints may have left the pool (or gone stale) while the producers waited.
      const still = candidates.filter((ep) => this.#pool.get(ep.key) === ep);
      if (still.length === 0) {
        this.#failure(request);
        throw noEndpoints('every candidate endpoint left the pool while the request was being prepared');
      }
      return this.#decide(state, still, receivedAt, body, rewritten);
    });
  }

  #failure(request: SchedulingRequest): void {
    this.#metrics.schedulerAttempts.inc({ status: 'failure', target_model_name: this.#metrics.modelLabel(request.targetModel), endpoint_name: '', namespace: '', port: '' });
  }

  /** Producers, profiles, PreRequest hooks, and the in-flight charge. */
  #decide(state: CycleState, candidates: Endpoint[], receivedAt: number, body: RequestBody | undefined, rewritten: boolean): Routing {
    const request = state.request;
    const max = 1 + this.#opts.fallbackEndpoints;
    const start = performance.now();
    let result: SchedulingResult;
    try {
      this.#plugins?.produce(state, candidates);
      // Admission plugins read what the producers wrote (llm-d runs them after the producers).
      const denied = this.#plugins?.admit(request.priority, candidates);
      if (denied !== undefined) {
        this.#failure(request);
        throw dropped(new EppError('ResourceExhausted', `request cannot be admitted: ${denied}`), 'rejected-saturated');
      }
      result = this.#scheduler.schedule(state, candidates, max);
    } finally {
      // Failed decisions count too, as in GAIE.
      this.#metrics.schedulerE2E.observe({}, (performance.now() - start) / 1000);
    }
    if (result.endpoints.length === 0) {
      this.#failure(request);
      throw new EppError('ServiceUnavailable', 'failed to find target endpoint: no candidate passed the scheduling filters');
    }
    const primary = result.endpoints[0];
    this.#plugins?.preRequest(state, primary, result.profiles);
    this.#metrics.schedulerAttempts.inc({ status: 'success', target_model_name: this.#metrics.modelLabel(request.targetModel), endpoint_name: primary.name, namespace: primary.namespace, port: String(primary.port) });
    const promptTokens = estimateTokens(request.parsed?.routingText.length ?? 0);
    const tokens = this.#plugins ? this.#plugins.chargedTokens(state, primary, promptTokens) : promptTokens;
    charge(primary, tokens, 1);
    primary.dispatched++;
    this.#sync?.loadChanged(primary);
    const metrics = new RequestMetrics(this.#recording, request, receivedAt);
    const destinations = result.rewrite?.destinations ?? result.endpoints.map((e) => e.key);
    const upstreamHeaders = result.rewrite?.headers ?? [];
    return {
      request,
      state,
      result,
      endpoints: result.endpoints,
      destinations,
      upstreamHeaders,
      primary,
      tokens,
      charged: primary,
      released: false,
      metrics,
      body,
      rewritten,
      untrack: undefined,
      evicted: false,
      onEvict: undefined,
    };
  }

  /**
   * The response's headers arrived (`status`, SSE or not). The gateway may
   * report which endpoint served it (it may have retried down the fallback
   * list): the request's in-flight load moves there. Returns headers the
   * plugins add for the client.
   */
  responseReceived(routing: Routing, servedKey: string | undefined, status = '', eventStream = false): [string, string][] {
    routing.metrics.responseHeaders(status, servedKey, eventStream);
    const ep = servedKey ? this.#pool.get(servedKey) : undefined;
    if (ep && !routing.released && ep !== routing.charged) {
      charge(routing.charged, routing.tokens, -1);
      charge(ep, routing.tokens, 1);
      this.#sync?.loadChanged(routing.charged);
      this.#sync?.loadChanged(ep);
      routing.charged = ep;
    }
    return this.#plugins?.responseReceived(routing.state, ep ?? routing.primary) ?? [];
  }

  /** Response body bytes on their way to the client (after they were passed on). */
  responseStreaming(routing: Routing, chunk: Buffer): void {
    routing.metrics.responseBody(chunk);
  }

  /** llm-epp spent `ms` handling one response message of this request. */
  responseHandled(routing: Routing, ms: number): void {
    routing.metrics.handled(ms);
  }

  /**
   * The routed request is over: `finished` when its response passed whole,
   * false when it was cancelled, reset or failed. Releases what pick() took;
   * only the first call counts.
   */
  responseComplete(routing: Routing, finished = true): void {
    if (routing.released) return;
    routing.released = true;
    charge(routing.charged, routing.tokens, -1);
    this.#sync?.loadChanged(routing.charged);
    this.#plugins?.responseComplete(routing.state, routing.charged);
    const usage = routing.metrics.end(finished, routing.primary.key);
    routing.untrack?.();
    const flow = this.#flow;
    // With flow control every routed request went through it: capacity freed (queued requests may
    // go), and the tokens it used, for program-aware fairness.
    if (flow) {
      if (routing.evicted) flow.evictionConfirmed(routing.request.requestId);
      flow.completed(routing.request.fairnessId, routing.request.priority, usage?.promptTokens, usage?.completionTokens);
    }
  }
}

/** A bug (not an EppError) becomes a 500 whose cause is kept for the log. */
export function asEppError(e: unknown): EppError {
  if (e instanceof EppError) return e;
  const wrapped = new EppError('Internal', 'internal error');
  wrapped.cause = e;
  return wrapped;
}

/** The model an EppError's request named, for its error metric. */
function tagged(err: EppError, model: string, targetModel: string, pol: RequestPolicyResult | undefined): EppError {
  err.model ??= model || undefined;
  err.targetModel ??= targetModel || undefined;
  err.fairnessId ??= pol?.fairnessId;
  err.priority ??= pol?.priority;
  return err;
}

/** 503 with llm-d's dropped reason: nothing can serve the request. */
function noEndpoints(message: string): EppError {
  return dropped(new EppError('ServiceUnavailable', message), 'rejected-no-endpoints');
}

/** Add (+1) or remove (−1) one request and its prompt tokens from an endpoint's in-flight load. */
function charge(ep: Endpoint, tokens: number, sign: 1 | -1): void {
  ep.inFlight = Math.max(0, ep.inFlight + sign);
  ep.inFlightTokens = Math.max(0, ep.inFlightTokens + sign * tokens);
}

/** One routed request: what pick() took and responseComplete() gives back. */
export interface Routing {
  readonly request: SchedulingRequest;
  /** The request's plugin state, from the producers through the response hooks. */
  readonly state: CycleState;
  readonly result: SchedulingResult;
  /** Primary first, then fallbacks. */
  readonly endpoints: readonly Endpoint[];
  /** host:port the gateway sends to, aligned with `endpoints` (their keys unless the profile handler rewrote them). */
  readonly destinations: readonly string[];
  /** Headers to set on the upstream request (e.g. x-data-parallel-host-port). */
  readonly upstreamHeaders: readonly (readonly [string, string])[];
  readonly primary: Endpoint;
  readonly tokens: number;
  /** Where the in-flight load is counted: the primary, or the endpoint that served it. */
  charged: Endpoint;
  /** responseComplete() has run: the charge is given back exactly once. */
  released: boolean;
  /** The request's metrics and debug lines, from routing to the end of its response. */
  readonly metrics: RequestMetrics;
  /** The body to forward: the original bytes, or re-serialised after a model rewrite. */
  readonly body: RequestBody | undefined;
  /** The model was rewritten (the body changed, and responses get the client's name back). */
  readonly rewritten: boolean;
  /** Stop tracking it for in-flight eviction (flowControl.enableEviction). */
  untrack: (() => void) | undefined;
  /** Flow control evicted it (its stream is being ended with 429). */
  evicted: boolean;
  /** How its stream ends it when flow control evicts it; set by the stream. */
  onEvict: (() => void) | undefined;
}
