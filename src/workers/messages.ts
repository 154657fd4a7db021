// What the control thread and the request workers (--workers) tell each other.
// The control thread owns discovery, scraping, Kubernetes watches, leader
// election, health and /metrics; each worker serves ext_proc on the shared
// port and decides on a mirror of the pool that the control thread keeps
// current. Shared routing state between workers travels separately, on the
// sync channel (src/sync/).
import type { EndpointPool } from '../pool/datastore.ts';
import type { Endpoint, EndpointSpec, ModelServerMetrics } from '../pool/endpoint.ts';
import type { ModelRewrite, ObjectiveSpec } from '../request-control/policy.ts';
import type { Options } from '../flags.ts';

/** One endpoint's scraped state, with its scrape time as wall-clock ms (threads have their own performance.now origin). */
export interface EndpointState {
  key: string;
  metrics: Readonly<ModelServerMetrics> | undefined;
  /** performance.timeOrigin + metricsUpdatedAt of the control thread; 0 = never. */
  updatedAt: number;
  scrapeError: string | undefined;
  dispatchedAtScrape: number;
  attributes: [string, number][];
}

export interface HealthStatus {
  ready: boolean;
  draining: boolean;
  /** Other services' statuses (pool-sync). */
  services: [string, 'SERVING' | 'NOT_SERVING'][];
}

/** What a worker starts with (workerData): enough to serve its first request. */
export interface WorkerInit {
  index: number;
  options: Options;
  host: string;
  /** The ext_proc port every worker listens on (probed free by the control thread). */
  port: number;
  syncChannel: string;
  origin: string;
  pool: EndpointSpec[];
  states: EndpointState[];
  objectives: ObjectiveSpec[];
  rewrites: ModelRewrite[];
  health: HealthStatus;
  poolName: string;
}

export type ToWorker =
  | { t: 'pool'; specs: EndpointSpec[] }
  | { t: 'states'; states: EndpointState[] }
  | { t: 'policy'; objectives: ObjectiveSpec[]; rewrites: ModelRewrite[] }
  | { t: 'health'; health: HealthStatus }
  | { t: 'metrics'; id: number }
  | { t: 'stop'; drainMs: number; delayMs: number };

export type FromWorker =
  | { t: 'listening'; port: number }
  | { t: 'failed'; message: string }
  | { t: 'metrics'; id: number; json: unknown[] }
  | { t: 'stopped' };

export function specOf(ep: Endpoint): EndpointSpec {
  return { address: ep.address, port: ep.port, name: ep.name, namespace: ep.namespace, labels: ep.labels, ...(ep.nodeAddress ? { nodeAddress: ep.nodeAddress } : {}) };
}

export function stateOf(ep: Endpoint): EndpointState {
  return {
    key: ep.key,
    metrics: ep.metrics,
    updatedAt: ep.metricsUpdatedAt > 0 ? performance.timeOrigin + ep.metricsUpdatedAt : 0,
    scrapeError: ep.scrapeError,
    dispatchedAtScrape: ep.dispatchedAtScrape,
    attributes: [...ep.attributes],
  };
}

/** Apply scraped states to this thread's endpoints (the worker side of stateOf); unknown keys are skipped. */
export function applyStates(pool: EndpointPool, states: readonly EndpointState[]): void {
  for (const s of states) {
    const ep = pool.get(s.key);
    if (ep) applyState(ep, s);
  }
}

function applyState(ep: Endpoint, s: EndpointState): void {
  ep.metrics = s.metrics;
  ep.metricsUpdatedAt = s.updatedAt > 0 ? s.updatedAt - performance.timeOrigin : 0;
  ep.scrapeError = s.scrapeError;
  ep.dispatchedAtScrape = s.dispatchedAtScrape;
  ep.attributes.clear();
  for (const [k, v] of s.attributes) ep.attributes.set(k, v);
}
