// Command-line flags. Names and defaults follow the GAIE EPP so existing Helm
// values and scripts keep working. Both `--flag=value` and `--flag value` are
// accepted, and Go-style single-dash long flags (`-grpc-port=9002`) too.
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { parseBytes, parseDuration } from './units.ts';

export interface Options {
  grpcPort: number;
  grpcHealthPort: number;
  metricsPort: number;
  secureServing: boolean;
  certPath: string;
  endpoints: string;
  endpointsFile: string;
  poolName: string;
  poolNamespace: string;
  poolGroup: string;
  endpointSelector: string;
  endpointTargetPorts: number[];
  refreshMetricsIntervalMs: number;
  metricsStalenessThresholdMs: number;
  metricsScrapeTimeoutMs: number;
  modelServerMetricsPath: string;
  modelServerMetricsScheme: 'http' | 'https';
  modelServerMetricsPort: number;
  modelServerMetricsHttpsInsecureSkipVerify: boolean;
  maxRequestBodyBytes: number;
  maxBufferedRequestBytes: number;
  fallbackEndpoints: number;
  disableEndpointSubsetFilter: boolean;
  configFile: string;
  configText: string;
  emitEndpointScores: boolean;
  haEnableLeaderElection: boolean;
  drainTimeoutMs: number;
  shutdownDelayMs: number;
  allowClientModelRewrite: boolean;
  streamIdleTimeoutMs: number;
  maxConcurrentStreams: number;
  maxStreamsPerConnection: number;
  connectionIdleTimeoutMs: number;
  maxConfigBytes: number;
  endpointsFileMaxShrink: number;
  endpointsFileSettleMs: number;
  metricsBindAddress: string;
  grpcHealthBindAddress: string;
  metricsEndpointAuth: boolean;
  metricsEndpointAuthTokenFile: string;
  enableGrpcStreamMetrics: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  help: boolean;
  version: boolean;
}

type Kind = 'int' | 'duration' | 'bool' | 'string' | 'bytes' | 'ports' | 'fraction';

interface FlagSpec {
  name: string;
  key: keyof Options;
  kind: Kind;
  def: string;
  help: string;
  choices?: readonly string[];
}

export const FLAGS: readonly FlagSpec[] = [
  { name: 'grpc-port', key: 'grpcPort', kind: 'int', def: '9002', help: 'ext_proc gRPC port (Envoy calls envoy.service.ext_proc.v3.ExternalProcessor/Process here; gRPC health is served here too).' },
  { name: 'grpc-health-port', key: 'grpcHealthPort', kind: 'int', def: '9003', help: 'Plaintext gRPC health port (grpc.health.v1: liveness, readiness, envoy.service.ext_proc.v3.ExternalProcessor).' },
  { name: 'metrics-port', key: 'metricsPort', kind: 'int', def: '9090', help: 'Prometheus metrics port (GET /metrics).' },
  { name: 'metrics-bind-address', key: 'metricsBindAddress', kind: 'string', def: '', help: 'Address the metrics server listens on (e.g. 127.0.0.1); empty = every interface.' },
  { name: 'grpc-health-bind-address', key: 'grpcHealthBindAddress', kind: 'string', def: '', help: 'Address the plaintext gRPC health server listens on; empty = every interface.' },
  { name: 'metrics-endpoint-auth', key: 'metricsEndpointAuth', kind: 'bool', def: 'false', help: 'Require a bearer token on /metrics: checked against --metrics-endpoint-auth-token-file, else with the Kubernetes TokenReview and SubjectAccessReview APIs (get on the non-resource URL /metrics), as llm-d Router does.' },
  { name: 'metrics-endpoint-auth-token-file', key: 'metricsEndpointAuthTokenFile', kind: 'string', def: '', help: 'File of accepted bearer tokens for --metrics-endpoint-auth, one per line; re-read when it changes.' },
  { name: 'enable-grpc-stream-metrics', key: 'enableGrpcStreamMetrics', kind: 'bool', def: 'false', help: 'Also export ext_proc gRPC stream metrics: streams in flight, how long each stream was held, and completions by gRPC status code (llm-d Router PR #1603).' },
  { name: 'secure-serving', key: 'secureServing', kind: 'bool', def: 'true', help: 'Serve ext_proc over TLS. Uses --cert-path, else a self-signed certificate made at start-up.' },
  { name: 'cert-path', key: 'certPath', kind: 'string', def: '', help: 'Directory holding tls.crt and tls.key for --secure-serving.' },
  { name: 'endpoints', key: 'endpoints', kind: 'string', def: '', help: 'Static pool: comma-separated model-server endpoints ip:port (IPv6 as [addr]:port).' },
  { name: 'endpoints-file', key: 'endpointsFile', kind: 'string', def: '', help: 'Pool from a YAML file (address, port, name, labels), reloaded when it changes.' },
  { name: 'endpoints-file-max-shrink', key: 'endpointsFileMaxShrink', kind: 'fraction', def: '0.5', help: 'An endpoints-file reload that empties the pool, or removes more than this fraction of its endpoints at once, is held back until the file has stayed the same for --endpoints-file-settle (a half-written file never empties the pool). 1 = only an empty file is held back.' },
  { name: 'endpoints-file-settle', key: 'endpointsFileSettleMs', kind: 'duration', def: '10s', help: 'How long a held-back endpoints file must stay unchanged before it is applied.' },
  { name: 'pool-name', key: 'poolName', kind: 'string', def: '', help: 'Kubernetes: the InferencePool whose selected Ready pods are the endpoints (one per target port), watched live.' },
  { name: 'pool-namespace', key: 'poolNamespace', kind: 'string', def: '', help: 'Namespace of the pool (or of --endpoint-selector pods); default: env NAMESPACE, then "default".' },
  { name: 'pool-group', key: 'poolGroup', kind: 'string', def: 'inference.networking.k8s.io', help: 'API group of the InferencePool (inference.networking.x-k8s.io for the v1alpha2 pools).' },
  { name: 'endpoint-selector', key: 'endpointSelector', kind: 'string', def: '', help: 'Kubernetes: a pod label selector (e.g. app=vllm) instead of an InferencePool; needs --endpoint-target-ports.' },
  { name: 'endpoint-target-ports', key: 'endpointTargetPorts', kind: 'ports', def: '', help: 'Ports of the --endpoint-selector pods, comma-separated (1-8).' },
  { name: 'refresh-metrics-interval', key: 'refreshMetricsIntervalMs', kind: 'duration', def: '50ms', help: 'How often every endpoint\'s /metrics is scraped.' },
  { name: 'metrics-staleness-threshold', key: 'metricsStalenessThresholdMs', kind: 'duration', def: '2s', help: 'Endpoints whose last successful scrape is older than this are not picked.' },
  { name: 'metrics-scrape-timeout', key: 'metricsScrapeTimeoutMs', kind: 'duration', def: '1s', help: 'Timeout of one scrape; a slow pod never delays the others.' },
  { name: 'model-server-metrics-path', key: 'modelServerMetricsPath', kind: 'string', def: '/metrics', help: 'Path of the model servers\' Prometheus page.' },
  { name: 'model-server-metrics-scheme', key: 'modelServerMetricsScheme', kind: 'string', def: 'http', choices: ['http', 'https'], help: 'Scheme used to scrape model servers.' },
  { name: 'model-server-metrics-port', key: 'modelServerMetricsPort', kind: 'int', def: '0', help: 'Port to scrape metrics on; 0 means the endpoint\'s own port.' },
  { name: 'model-server-metrics-https-insecure-skip-verify', key: 'modelServerMetricsHttpsInsecureSkipVerify', kind: 'bool', def: 'true', help: 'Skip certificate verification when scraping over https.' },
  { name: 'max-request-body-bytes', key: 'maxRequestBodyBytes', kind: 'bytes', def: '8388608', help: 'Largest request body accepted; larger bodies get 413. Accepts plain bytes or Ki/Mi/Gi suffixes.' },
  { name: 'max-buffered-request-bytes', key: 'maxBufferedRequestBytes', kind: 'bytes', def: '0', help: 'Cap on request body bytes held at once over all streams, from their first byte until the request ends; beyond it requests get 429, so a burst of large bodies cannot exhaust memory. 0 = a quarter of the V8 heap limit (1Gi on a 4 GiB heap).' },
  { name: 'max-concurrent-streams', key: 'maxConcurrentStreams', kind: 'int', def: '16384', help: 'ext_proc streams (requests) open at once over all connections; more are refused with RESOURCE_EXHAUSTED. 0 = no limit.' },
  { name: 'max-streams-per-connection', key: 'maxStreamsPerConnection', kind: 'int', def: '1024', help: 'HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS on each ext_proc connection (Envoy opens another connection when it is reached). 0 = no limit.' },
  { name: 'stream-idle-timeout', key: 'streamIdleTimeoutMs', kind: 'duration', def: '10m', help: 'An ext_proc stream with no message from the gateway for this long is ended with DEADLINE_EXCEEDED (keep it above the route timeout and the longest time to first token). 0 = never.' },
  { name: 'connection-idle-timeout', key: 'connectionIdleTimeoutMs', kind: 'duration', def: '5m', help: 'An ext_proc or health connection with no open stream for this long is closed. 0 = never.' },
  { name: 'fallback-endpoints', key: 'fallbackEndpoints', kind: 'int', def: '2', help: 'How many next-best distinct endpoints follow the primary in x-gateway-destination-endpoint.' },
  { name: 'disable-endpoint-subset-filter', key: 'disableEndpointSubsetFilter', kind: 'bool', def: 'false', help: 'Ignore the envoy.lb.subset_hint metadata sent by the gateway.' },
  { name: 'config-file', key: 'configFile', kind: 'string', def: '', help: 'EndpointPickerConfig YAML file (GAIE / llm-d format). Without it and --config-text, the GAIE default: queue-scorer 2, kv-cache-utilization-scorer 2, prefix-cache-scorer 3, max-score-picker.' },
  { name: 'config-text', key: 'configText', kind: 'string', def: '', help: 'EndpointPickerConfig YAML given inline.' },
  { name: 'max-config-bytes', key: 'maxConfigBytes', kind: 'bytes', def: '4Mi', help: 'Largest --config-file, --config-text or --endpoints-file accepted; a larger one is rejected before it is parsed.' },
  { name: 'emit-endpoint-scores', key: 'emitEndpointScores', kind: 'bool', def: 'false', help: 'Also return each candidate\'s total score in dynamic metadata envoy.lb / x-gateway-destination-endpoint-scores.' },
  { name: 'ha-enable-leader-election', key: 'haEnableLeaderElection', kind: 'bool', def: 'false', help: 'Active-passive HA on Kubernetes: replicas contend for a coordination.k8s.io Lease (llm-epp-<pool>) and only the leader reports readiness SERVING.' },
  { name: 'shutdown-delay', key: 'shutdownDelayMs', kind: 'duration', def: '10s', help: 'On SIGTERM/SIGINT: health answers NOT_SERVING at once, and ext_proc keeps accepting and serving new streams for this long, so gateways health-checking llm-epp move away before it stops accepting.' },
  { name: 'drain-timeout', key: 'drainTimeoutMs', kind: 'duration', def: '30s', help: 'After --shutdown-delay: stop accepting, let open streams finish for up to this long, then close what is left and exit.' },
  { name: 'allow-client-model-rewrite', key: 'allowClientModelRewrite', kind: 'bool', def: 'false', help: 'Honour x-gateway-model-name-rewrite / x-llm-d-model-name-rewrite request headers. Off: a client cannot pick the model or adapter that InferenceModelRewrites decide; turn on only when the gateway strips these headers from clients and sets them itself.' },
  { name: 'log-level', key: 'logLevel', kind: 'string', def: 'info', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'Log level (debug logs one line per routed request). -v=4 is debug, -v=5 trace, as in the GAIE EPP.' },
  { name: 'help', key: 'help', kind: 'bool', def: 'false', help: 'Print this help and exit.' },
  { name: 'version', key: 'version', kind: 'bool', def: 'false', help: 'Print the version and exit.' },
];

export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

function convert(spec: FlagSpec, raw: string): unknown {
  switch (spec.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new FlagError(`--${spec.name}: "${raw}" is not an integer`);
      const n = Number(raw);
      if (n < 0) throw new FlagError(`--${spec.name}: must not be negative`);
      return n;
    }
    case 'duration':
      try {
        return parseDuration(raw);
      } catch (e) {
        throw new FlagError(`--${spec.name}: ${(e as Error).message}`);
      }
    case 'bytes':
      try {
        return parseBytes(raw);
      } catch (e) {
        throw new FlagError(`--${spec.name}: ${(e as Error).message}`);
      }
    case 'bool': {
      const v = raw.toLowerCase();
      if (['true', '1', 't', 'yes'].includes(v)) return true;
      if (['false', '0', 'f', 'no'].includes(v)) return false;
      throw new FlagError(`--${spec.name}: "${raw}" is not a boolean`);
    }
    case 'ports': {
      const parts = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
      const ports = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
      if (ports.some((p) => !(p >= 1 && p <= 65535))) throw new FlagError(`--${spec.name}: "${raw}" is not a list of ports`);
      if (ports.length > 8) throw new FlagError(`--${spec.name}: at most 8 ports`);
      return ports;
    }
    case 'fraction': {
      const n = Number(raw.trim());
      if (raw.trim() === '' || !(n >= 0 && n <= 1)) throw new FlagError(`--${spec.name}: "${raw}" is not a number from 0 to 1`);
      return n;
    }
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new FlagError(`--${spec.name}: "${raw}" is not one of ${spec.choices.join(', ')}`);
      }
      return raw;
  }
}

const BY_NAME = new Map(FLAGS.map((f) => [f.name, f]));

/**
 * Parse argv (without node and script). Booleans take `--x`, `--x=false` or
 * `--x false`; `-v N` sets the log level from a Go-style verbosity.
 */
export function parseFlags(argv: readonly string[]): Options {
  const normalised: string[] = [];
  let verbosity: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    // Go's flag package accepts -name as well as --name.
    if (/^-[a-z][a-z0-9-]+/.test(arg)) arg = '-' + arg;
    const vm = /^--?v(?:=(\d+))?$/.exec(arg);
    if (vm) {
      const value = vm[1] ?? argv[++i];
      if (value === undefined || !/^\d+$/.test(value)) throw new FlagError('-v: expects a number, e.g. -v=4');
      verbosity = Number(value);
      continue;
    }
    if (arg === '-h') arg = '--help';
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/s.exec(arg);
    if (m) {
      const spec = BY_NAME.get(m[1]);
      if (spec?.kind === 'bool') {
        let value = m[2];
        if (value === undefined && /^(true|false)$/i.test(argv[i + 1] ?? '')) value = argv[++i];
        normalised.push(`--${m[1]}=${value ?? 'true'}`);
        continue;
      }
    }
    normalised.push(arg);
  }

  const options: Record<string, { type: 'string' }> = {};
  for (const f of FLAGS) options[f.name] = { type: 'string' };
  let values: Record<string, string | undefined>;
  try {
    const parsed = parseArgs({ args: normalised, options, strict: true, allowPositionals: false });
    values = parsed.values as Record<string, string | undefined>;
  } catch (e) {
    throw new FlagError((e as Error).message.replace(/\. To specify.*$/s, ''));
  }

  const out: Record<string, unknown> = {};
  for (const f of FLAGS) out[f.key] = convert(f, values[f.name] ?? f.def);
  const opts = out as unknown as Options;
  if (verbosity !== undefined && values['log-level'] === undefined) {
    opts.logLevel = verbosity >= 5 ? 'trace' : verbosity >= 4 ? 'debug' : 'info';
  }
  validate(opts);
  return opts;
}

function validate(o: Options): void {
  if (o.help || o.version) return;
  if (o.configFile && o.configText) throw new FlagError('--config-file and --config-text are mutually exclusive');
  const sources = [o.endpoints && '--endpoints', o.endpointsFile && '--endpoints-file', o.poolName && '--pool-name', o.endpointSelector && '--endpoint-selector'].filter(Boolean);
  if (sources.length > 1) throw new FlagError(`give one endpoint source, not ${sources.join(' and ')}`);
  if (sources.length === 0) {
    throw new FlagError('no endpoint source: give --pool-name (Kubernetes), --endpoint-selector, --endpoints ip:port,... or --endpoints-file FILE');
  }
  if (o.endpointSelector && o.endpointTargetPorts.length === 0) throw new FlagError('--endpoint-selector needs --endpoint-target-ports');
  if (!o.poolNamespace) o.poolNamespace = process.env.NAMESPACE || 'default';
  if (o.haEnableLeaderElection && !o.poolName && !o.endpointSelector) {
    throw new FlagError('--ha-enable-leader-election needs a Kubernetes source (--pool-name or --endpoint-selector)');
  }
  for (const key of ['grpcPort', 'grpcHealthPort', 'metricsPort'] as const) {
    if (o[key] > 65535) throw new FlagError(`${key}: ${o[key]} is not a port`);
  }
  if (o.modelServerMetricsPort > 65535) throw new FlagError('--model-server-metrics-port is not a port');
  if (o.refreshMetricsIntervalMs <= 0) throw new FlagError('--refresh-metrics-interval must be positive');
  if (o.metricsScrapeTimeoutMs <= 0) throw new FlagError('--metrics-scrape-timeout must be positive');
  if (o.maxRequestBodyBytes <= 0) throw new FlagError('--max-request-body-bytes must be positive');
  if (o.maxBufferedRequestBytes === 0) o.maxBufferedRequestBytes = Math.max(o.maxRequestBodyBytes, Math.floor(getHeapStatistics().heap_size_limit / 4));
  if (o.maxConfigBytes <= 0) throw new FlagError('--max-config-bytes must be positive');
  if (o.metricsEndpointAuthTokenFile && !o.metricsEndpointAuth) throw new FlagError('--metrics-endpoint-auth-token-file needs --metrics-endpoint-auth');
  if (o.maxBufferedRequestBytes < o.maxRequestBodyBytes) throw new FlagError('--max-buffered-request-bytes must be at least --max-request-body-bytes');
  if (o.metricsStalenessThresholdMs <= o.refreshMetricsIntervalMs) {
    throw new FlagError('--metrics-staleness-threshold must be longer than --refresh-metrics-interval, or every endpoint is always stale');
  }
  if (!o.modelServerMetricsPath.startsWith('/')) throw new FlagError('--model-server-metrics-path must start with /');
}

export function helpText(): string {
  const lines = ['Usage: llm-epp [flags]', '', 'Flags:'];
  for (const f of FLAGS) {
    const def = f.kind === 'bool' ? ` (default ${f.def})` : f.def ? ` (default "${f.def}")` : '';
    lines.push(`  --${f.name}${f.kind === 'bool' ? '' : ' VALUE'}`);
    lines.push(`      ${f.help}${def}`);
  }
  lines.push('  -v N', '      Go-style verbosity: 4 = debug, 5 = trace.');
  return lines.join('\n');
}
