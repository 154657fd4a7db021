// A model-server endpoint (one pod and one target port) and the live state
// kept on it. Every field has one writer: the datastore (identity, name,
// labels), the metrics collector (metrics and scrape bookkeeping: a new,
// never mutated metrics object per scrape) and request control's director
// (the load counters). Everyone else reads.
import { isIP } from 'node:net';

export interface LoraInfo {
  maxActiveModels: number;
  activeModels: string[];
  waitingModels: string[];
}

/** What a model server reports about itself, as the collector reads it from its metrics page. */
export interface ModelServerMetrics {
  waitingQueueSize: number;
  runningRequests: number;
  /** Fraction 0..1 as reported by the engine (not clamped). */
  kvCacheUsage: number;
  lora?: LoraInfo;
  /** Tokens per KV block (vLLM block_size, SGLang page_size). */
  cacheBlockSize?: number;
  /** KV blocks on the GPU (vLLM num_gpu_blocks, SGLang num_pages). */
  cacheNumGpuBlocks?: number;
  /** core-metrics-extractor customMetrics: attribute key → value. */
  custom?: Readonly<Record<string, number>>;
}

export interface EndpointSpec {
  address: string;
  port: number;
  /** Display name, e.g. the pod name; defaults to the key. */
  name?: string;
  /** Namespace of the pod (session tokens name namespace/name); defaults to "default". */
  namespace?: string;
  labels?: Record<string, string>;
  /** IP of the node the pod runs on (Kubernetes status.hostIP), for node-level exporters such as DCGM. */
  nodeAddress?: string;
}

export interface Endpoint {
  /** `ip:port`, IPv6 in brackets: the value written to x-gateway-destination-endpoint. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  name: string;
  namespace: string;
  labels: Record<string, string>;
  nodeAddress: string | undefined;
  /**
   * Scalar attributes from data sources beyond the model server's own page
   * (e.g. GPUUtilization from dcgm-extractor), keyed "producer/attribute";
   * each key has one writer, its source's collector. Absent: not known now.
   */
  readonly attributes: Map<string, number>;
  /** Latest scraped metrics (collector); undefined until the first successful scrape. */
  metrics: Readonly<ModelServerMetrics> | undefined;
  /** performance.now() of the last successful scrape (0 = never). */
  metricsUpdatedAt: number;
  /** Last scrape error, cleared by a successful scrape. */
  scrapeError: string | undefined;
  /** Requests routed here whose response has not finished (director). */
  inFlight: number;
  /** Estimated prompt tokens of those requests. */
  inFlightTokens: number;
  /** Requests routed here since start (monotonic). */
  dispatched: number;
  /** `dispatched` when the last successful scrape was sent: later requests are not in its metrics. */
  dispatchedAtScrape: number;
}

/** Go net.JoinHostPort: IPv6 addresses in brackets. */
export function joinHostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Parse "ip:port" or "[v6]:port". Throws with a readable message. */
export function parseHostPort(text: string): { address: string; port: number } {
  const s = text.trim();
  let address: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') throw new Error(`"${text}": expected [ipv6]:port`);
    address = s.slice(1, close);
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) throw new Error(`"${text}": expected ip:port`);
    address = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (address.includes(':')) throw new Error(`"${text}": IPv6 addresses must be written [addr]:port`);
  }
  return { address: checkAddress(address, text), port: checkPort(portText, text) };
}

export function checkAddress(address: string, context: string): string {
  if (isIP(address) === 0) throw new Error(`"${context}": "${address}" is not an IP address`);
  // Zone ids (fe80::1%eth0) cannot be written in an ip:port destination or URL.
  if (address.includes('%')) throw new Error(`"${context}": "${address}": IPv6 zone ids are not supported`);
  return address;
}

export function checkPort(port: unknown, context: string): number {
  const n = typeof port === 'number' ? port : /^\d+$/.test(String(port)) ? Number(port) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`"${context}": port "${String(port)}" is not in 1-65535`);
  return n;
}

export function createEndpoint(spec: EndpointSpec): Endpoint {
  const key = joinHostPort(spec.address, spec.port);
  return {
    key,
    address: spec.address,
    port: spec.port,
    name: spec.name ?? key,
    namespace: spec.namespace ?? 'default',
    labels: { ...(spec.labels ?? {}) },
    nodeAddress: spec.nodeAddress,
    attributes: new Map(),
    metrics: undefined,
    metricsUpdatedAt: 0,
    scrapeError: undefined,
    inFlight: 0,
    inFlightTokens: 0,
    dispatched: 0,
    dispatchedAtScrape: 0,
  };
}

/**
 * The one rule for "this endpoint's metrics can be trusted": scraped at least
 * once, and the last successful scrape no older than `stalenessMs`.
 */
export function isFresh(ep: Endpoint, now: number, stalenessMs: number): boolean {
  return ep.metrics !== undefined && now - ep.metricsUpdatedAt <= stalenessMs;
}

/**
 * Waiting requests as the endpoint last reported them, plus the requests routed
 * to it since that scrape was sent. Between scrapes (50 ms by default) the
 * reported queue cannot see llm-epp's own latest picks; without this, every
 * request inside one scrape window goes to the same "least loaded" endpoint.
 */
export function queueDepth(ep: Endpoint): number {
  return (ep.metrics?.waitingQueueSize ?? 0) + Math.max(0, ep.dispatched - ep.dispatchedAtScrape);
}

/** The IP part of "ip:port", "[v6]:port" or a bare IP; the subset hint is matched by IP only. */
export function hostOf(hostPort: string): string {
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    return close > 0 ? hostPort.slice(1, close) : hostPort;
  }
  if (isIP(hostPort) !== 0) return hostPort;
  const colon = hostPort.lastIndexOf(':');
  return colon < 0 ? hostPort : hostPort.slice(0, colon);
}
