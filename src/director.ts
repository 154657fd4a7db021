// Request control between the ext_proc stream and the scheduler: which
// endpoints may serve a request (ready, inside the gateway's subset hint),
// the scheduling call and its metrics, and per-endpoint in-flight accounting.
import { EppError } from './errors.ts';
import type { Logger } from './log.ts';
import type { EppMetrics } from './observability/metrics.ts';
import type { EndpointPool } from './pool/datastore.ts';
import { hostOf, type Endpoint } from './pool/endpoint.ts';
import type { Scheduler, SchedulingRequest, SchedulingResult } from './scheduling/types.ts';

export interface DirectorOptions {
  metricsStalenessThresholdMs: number;
  fallbackEndpoints: number;
  disableEndpointSubsetFilter: boolean;
}

export class Director {
  readonly #pool: EndpointPool;
  readonly #scheduler: Scheduler;
  readonly #opts: DirectorOptions;
  readonly #metrics: EppMetrics;
  readonly #log: Logger;

  constructor(pool: EndpointPool, scheduler: Scheduler, opts: DirectorOptions, metrics: EppMetrics, log: Logger) {
    this.#pool = pool;
    this.#scheduler = scheduler;
    this.#opts = opts;
    this.#metrics = metrics;
    this.#log = log;
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
      if (ep.metrics === undefined || now - ep.metricsUpdatedAt > stale) continue;
      if (allowed && !allowed.has(ep.address)) continue;
      out.push(ep);
    }
    return out;
  }

  /**
   * Pick the primary endpoint and up to --fallback-endpoints next-best ones.
   * Throws EppError 503 when nothing can serve the request.
   */
  pick(request: SchedulingRequest, subset: readonly string[] | undefined): Routing {
    const candidates = this.candidates(subset);
    if (candidates.length === 0) {
      this.#metrics.schedulerAttempts.inc({ status: 'failure', target_model_name: this.#metrics.modelLabel(request.targetModel), pod_name: '', namespace: '', port: '' });
      if (this.#pool.list().length === 0) throw new EppError('ServiceUnavailable', 'no endpoints in the pool');
      if (subset !== undefined && !this.#opts.disableEndpointSubsetFilter) {
        throw new EppError('ServiceUnavailable', 'failed to find endpoint candidates: no ready endpoint in the subset hint');
      }
      throw new EppError('ServiceUnavailable', 'no ready endpoints: every endpoint\'s metrics are missing or stale');
    }
    // GAIE's admission without flow control: sheddable requests (priority < 0)
    // are dropped with 429 while the pool is saturated.
    if (request.priority < 0 && this.#scheduler.saturation !== undefined && this.#scheduler.saturation(candidates) >= 1) {
      this.#metrics.schedulerAttempts.inc({ status: 'failure', target_model_name: this.#metrics.modelLabel(request.targetModel), pod_name: '', namespace: '', port: '' });
      throw new EppError('ResourceExhausted', 'the pool is saturated: sheddable request (priority < 0) rejected');
    }
    const max = 1 + this.#opts.fallbackEndpoints;
    const start = performance.now();
    let result: SchedulingResult;
    try {
      result = this.#scheduler.schedule(request, candidates, max);
    } finally {
      // Failed decisions count too, as in GAIE.
      this.#metrics.schedulerE2E.observe((performance.now() - start) / 1000);
    }
    if (result.endpoints.length === 0) {
      this.#metrics.schedulerAttempts.inc({ status: 'failure', target_model_name: this.#metrics.modelLabel(request.targetModel), pod_name: '', namespace: '', port: '' });
      throw new EppError('ServiceUnavailable', 'failed to find target endpoint: no candidate passed the scheduling filters');
    }
    const primary = result.endpoints[0];
    this.#metrics.schedulerAttempts.inc({
      status: 'success',
      target_model_name: this.#metrics.modelLabel(request.targetModel),
      pod_name: primary.name,
      namespace: primary.namespace,
      port: String(primary.port),
    });
    // Prompt tokens estimated at 4 characters each, as the prefix index does.
    const tokens = Math.ceil((request.parsed?.routingText.length ?? 0) / 4);
    charge(primary, tokens, 1);
    primary.dispatched++;
    return { request, result, endpoints: result.endpoints, primary, tokens, charged: primary, released: false };
  }

  /**
   * The gateway reports which endpoint served the request (it may have retried
   * down the fallback list): the request's in-flight load moves there.
   */
  served(routing: Routing, servedKey: string): void {
    const ep = this.#pool.get(servedKey);
    if (routing.released || !ep || ep === routing.charged) return;
    charge(routing.charged, routing.tokens, -1);
    charge(ep, routing.tokens, 1);
    routing.charged = ep;
  }

  /** The routed request finished (or was abandoned): release what pick() took. Only the first call counts. */
  done(routing: Routing): void {
    if (routing.released) return;
    routing.released = true;
    const { primary } = routing;
    charge(routing.charged, routing.tokens, -1);
    try {
      this.#scheduler.requestDone?.(routing.request, routing.result, primary);
    } catch (err) {
      this.#log.error({ err, requestId: routing.request.requestId }, 'scheduler requestDone failed');
    }
  }

  /** Response headers the scheduler wants the client to get (e.g. a session token). */
  responseHeaders(routing: Routing, servedKey: string | undefined): [string, string][] {
    const served = (servedKey && this.#pool.get(servedKey)) || routing.primary;
    try {
      return this.#scheduler.responseHeaders?.(routing.request, routing.result, served) ?? [];
    } catch (err) {
      this.#log.error({ err, requestId: routing.request.requestId }, 'scheduler responseHeaders failed');
      return [];
    }
  }
}

/** Add (+1) or remove (−1) one request and its prompt tokens from an endpoint's in-flight load. */
function charge(ep: Endpoint, tokens: number, sign: 1 | -1): void {
  ep.inFlight = Math.max(0, ep.inFlight + sign);
  ep.inFlightTokens = Math.max(0, ep.inFlightTokens + sign * tokens);
}

/** One routed request: what pick() took and done() gives back. */
export interface Routing {
  readonly request: SchedulingRequest;
  readonly result: SchedulingResult;
  /** Primary first, then fallbacks. */
  readonly endpoints: readonly Endpoint[];
  readonly primary: Endpoint;
  readonly tokens: number;
  /** Where the in-flight load is counted: the primary, or the endpoint that served it. */
  charged: Endpoint;
  /** done() has run: the charge is given back exactly once. */
  released: boolean;
}
