// Command-line flags. Names and defaults follow the GAIE EPP so existing Helm
// values and scripts keep working. Both `--flag=value` and `--flag value` are
// accepted, and Go-style single-dash long flags (`-grpc-port=9002`) too.
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { parseBytes, parseDuration } from './units.ts';
import { unknownCipherSuite } from './tls-ciphers.ts';

export interface Options {
  grpcPort: number;
  grpcHealthPort: number;
  metricsPort: number;
  secureServing: boolean;
  certPath: string;
  endpoints: string;
  endpointsFile: string;
  objectivesFile: string;
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
  allowExperimentalPlugins: boolean;
  tokenizerWorkers: number;
  workers: number;
  stateSync: string;
  tracing: boolean;
  tlsMinVersion: '' | 'VersionTLS10' | 'VersionTLS11' | 'VersionTLS12' | 'VersionTLS13';
  tlsCipherSuites: string[];
  enableCertReload: boolean;
  metricsCertDir: string;
  metricsClientCaFile: string;
  grpcMaxRecvMsgSize: number;
  grpcMaxSendMsgSize: number;
  refreshPrometheusMetricsIntervalMs: number;
  healthChecking: boolean;
  enablePprof: boolean;
  zapLogLevel: string;
  zapEncoder: string;
  zapDevel: boolean;
  zapStacktraceLevel: string;
  zapTimeEncoding: string;
  totalQueuedRequestsMetric: string;
  totalRunningRequestsMetric: string;
  kvCacheUsagePercentageMetric: string;
  loraInfoMetric: string;
  cacheInfoMetric: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** auto: text on a terminal, JSON otherwise (resolved by main). */
  logFormat: 'auto' | 'text' | 'json';
  checkConfig: boolean;
  help: boolean;
  version: boolean;
}

type Kind = 'int' | 'duration' | 'bool' | 'string' | 'bytes' | 'ports' | 'fraction' | 'list';

/** Sections of --help, in the order users look for them. */
export const GROUPS = {
  serve: 'Serving (ext_proc, TLS, health)',
  pool: 'Endpoints: where the model servers come from',
  scrape: 'Model-server metrics',
  config: 'Scheduling configuration',
  limits: 'Request and stream limits',
  observe: 'Observability: metrics, tracing, logs',
  ha: 'High availability and shutdown',
  llmd: 'Accepted for llm-d Router compatibility',
} as const;
type Group = keyof typeof GROUPS;

export interface FlagSpec {
  name: string;
  key: keyof Options;
  kind: Kind;
  def: string;
  help: string;
  group: Group;
  choices?: readonly string[];
  /** An llm-d Router flag llm-epp refuses when it is set (removed there too, or a Go-only facility); README's compatibility table reads it. */
  refused?: true;
}

export const FLAGS: readonly FlagSpec[] = [
  { name: 'grpc-port', group: 'serve', key: 'grpcPort', kind: 'int', def: '9002', help: 'ext_proc gRPC port (Envoy calls envoy.service.ext_proc.v3.ExternalProcessor/Process here; gRPC health is served here too).' },
  { name: 'grpc-health-port', group: 'serve', key: 'grpcHealthPort', kind: 'int', def: '9003', help: 'Plaintext gRPC health port (grpc.health.v1: liveness, readiness, envoy.service.ext_proc.v3.ExternalProcessor).' },
  { name: 'metrics-port', group: 'observe', key: 'metricsPort', kind: 'int', def: '9090', help: 'Prometheus metrics port (GET /metrics).' },
  { name: 'metrics-bind-address', group: 'observe', key: 'metricsBindAddress', kind: 'string', def: '', help: 'Address the metrics server listens on (e.g. 127.0.0.1); empty = every interface.' },
  { name: 'grpc-health-bind-address', group: 'serve', key: 'grpcHealthBindAddress', kind: 'string', def: '', help: 'Address the plaintext gRPC health server listens on; empty = every interface.' },
  { name: 'metrics-endpoint-auth', group: 'observe', key: 'metricsEndpointAuth', kind: 'bool', def: 'false', help: 'Require a bearer token on /metrics: checked against --metrics-endpoint-auth-token-file, else with the Kubernetes TokenReview and SubjectAccessReview APIs (get on the non-resource URL /metrics), as llm-d Router does.' },
  { name: 'metrics-endpoint-auth-token-file', group: 'observe', key: 'metricsEndpointAuthTokenFile', kind: 'string', def: '', help: 'File of accepted bearer tokens for --metrics-endpoint-auth, one per line; re-read when it changes.' },
  { name: 'enable-grpc-stream-metrics', group: 'observe', key: 'enableGrpcStreamMetrics', kind: 'bool', def: 'false', help: 'Also export ext_proc gRPC stream metrics: streams in flight, how long each stream was held, and completions by gRPC status code (llm-d Router PR #1603).' },
  { name: 'secure-serving', group: 'serve', key: 'secureServing', kind: 'bool', def: 'true', help: 'Serve ext_proc over TLS. Uses --cert-path, else a self-signed certificate made at start-up.' },
  { name: 'cert-path', group: 'serve', key: 'certPath', kind: 'string', def: '', help: 'Directory holding tls.crt and tls.key for --secure-serving.' },
  { name: 'endpoints', group: 'pool', key: 'endpoints', kind: 'string', def: '', help: 'Static pool: comma-separated model-server endpoints ip:port (IPv6 as [addr]:port).' },
  { name: 'endpoints-file', group: 'pool', key: 'endpointsFile', kind: 'string', def: '', help: 'Pool from a YAML file (address, port, name, labels), reloaded when it changes.' },
  { name: 'endpoints-file-max-shrink', group: 'pool', key: 'endpointsFileMaxShrink', kind: 'fraction', def: '0.5', help: 'An endpoints-file reload that empties the pool, or removes more than this fraction of its endpoints at once, is held back until the file has stayed the same for --endpoints-file-settle (a half-written file never empties the pool). 1 = only an empty file is held back.' },
  { name: 'endpoints-file-settle', group: 'pool', key: 'endpointsFileSettleMs', kind: 'duration', def: '10s', help: 'How long a held-back endpoints file must stay unchanged before it is applied.' },
  { name: 'objectives-file', group: 'pool', key: 'objectivesFile', kind: 'string', def: '', help: 'InferenceObjective (and InferenceModelRewrite) manifests from a YAML file instead of the Kubernetes API, reloaded when it changes: priorities (and flow control\'s bands) outside Kubernetes. One or more documents, each a manifest or a List; spec.poolRef is not checked. Not with --pool-name, which watches them in the cluster.' },
  { name: 'pool-name', group: 'pool', key: 'poolName', kind: 'string', def: '', help: 'Kubernetes: the InferencePool whose selected Ready pods are the endpoints (one per target port), watched live.' },
  { name: 'pool-namespace', group: 'pool', key: 'poolNamespace', kind: 'string', def: '', help: 'Namespace of the pool (or of --endpoint-selector pods); default: env NAMESPACE, then "default".' },
  { name: 'pool-group', group: 'pool', key: 'poolGroup', kind: 'string', def: 'inference.networking.k8s.io', help: 'API group of the InferencePool (inference.networking.x-k8s.io for the v1alpha2 pools).' },
  { name: 'endpoint-selector', group: 'pool', key: 'endpointSelector', kind: 'string', def: '', help: 'Kubernetes: a pod label selector (e.g. app=vllm) instead of an InferencePool; needs --endpoint-target-ports.' },
  { name: 'endpoint-target-ports', group: 'pool', key: 'endpointTargetPorts', kind: 'ports', def: '', help: 'Ports of the --endpoint-selector pods, comma-separated (1-8).' },
  { name: 'refresh-metrics-interval', group: 'scrape', key: 'refreshMetricsIntervalMs', kind: 'duration', def: '50ms', help: 'How often every endpoint\'s /metrics is scraped.' },
  { name: 'metrics-staleness-threshold', group: 'scrape', key: 'metricsStalenessThresholdMs', kind: 'duration', def: '2s', help: 'Endpoints whose last successful scrape is older than this are not picked.' },
  { name: 'metrics-scrape-timeout', group: 'scrape', key: 'metricsScrapeTimeoutMs', kind: 'duration', def: '1s', help: 'Timeout of one scrape; a slow pod never delays the others.' },
  { name: 'model-server-metrics-path', group: 'scrape', key: 'modelServerMetricsPath', kind: 'string', def: '/metrics', help: 'Path of the model servers\' Prometheus page.' },
  { name: 'model-server-metrics-scheme', group: 'scrape', key: 'modelServerMetricsScheme', kind: 'string', def: 'http', choices: ['http', 'https'], help: 'Scheme used to scrape model servers.' },
  { name: 'model-server-metrics-port', group: 'scrape', key: 'modelServerMetricsPort', kind: 'int', def: '0', help: 'Port to scrape metrics on; 0 means the endpoint\'s own port.' },
  { name: 'model-server-metrics-https-insecure-skip-verify', group: 'scrape', key: 'modelServerMetricsHttpsInsecureSkipVerify', kind: 'bool', def: 'true', help: 'Skip certificate verification when scraping over https.' },
  { name: 'max-request-body-bytes', group: 'limits', key: 'maxRequestBodyBytes', kind: 'bytes', def: '8388608', help: 'Largest request body accepted; larger bodies get 413. Accepts plain bytes or Ki/Mi/Gi suffixes.' },
  { name: 'max-buffered-request-bytes', group: 'limits', key: 'maxBufferedRequestBytes', kind: 'bytes', def: '0', help: 'Cap on request body bytes held at once over all streams, from their first byte until the request ends; beyond it requests get 429, so a burst of large bodies cannot exhaust memory. 0 = a quarter of the V8 heap limit (1Gi on a 4 GiB heap).' },
  { name: 'max-concurrent-streams', group: 'limits', key: 'maxConcurrentStreams', kind: 'int', def: '16384', help: 'ext_proc streams (requests) open at once over all connections; more are refused with RESOURCE_EXHAUSTED. 0 = no limit.' },
  { name: 'max-streams-per-connection', group: 'limits', key: 'maxStreamsPerConnection', kind: 'int', def: '1024', help: 'HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS on each ext_proc connection (Envoy opens another connection when it is reached). 0 = no limit.' },
  { name: 'stream-idle-timeout', group: 'limits', key: 'streamIdleTimeoutMs', kind: 'duration', def: '10m', help: 'An ext_proc stream with no message from the gateway for this long is ended with DEADLINE_EXCEEDED (keep it above the route timeout and the longest time to first token). 0 = never.' },
  { name: 'connection-idle-timeout', group: 'limits', key: 'connectionIdleTimeoutMs', kind: 'duration', def: '5m', help: 'An ext_proc or health connection with no open stream for this long is closed. 0 = never.' },
  { name: 'fallback-endpoints', group: 'config', key: 'fallbackEndpoints', kind: 'int', def: '2', help: 'How many next-best distinct endpoints follow the primary in x-gateway-destination-endpoint.' },
  { name: 'disable-endpoint-subset-filter', group: 'config', key: 'disableEndpointSubsetFilter', kind: 'bool', def: 'false', help: 'Ignore the envoy.lb.subset_hint metadata sent by the gateway.' },
  { name: 'config-file', group: 'config', key: 'configFile', kind: 'string', def: '', help: 'EndpointPickerConfig YAML file (GAIE / llm-d format). Without it and --config-text, the GAIE default: queue-scorer 2, kv-cache-utilization-scorer 2, prefix-cache-scorer 3, max-score-picker.' },
  { name: 'config-text', group: 'config', key: 'configText', kind: 'string', def: '', help: 'EndpointPickerConfig YAML given inline.' },
  { name: 'max-config-bytes', group: 'config', key: 'maxConfigBytes', kind: 'bytes', def: '4Mi', help: 'Largest --config-file, --config-text or --endpoints-file accepted; a larger one is rejected before it is parsed.' },
  { name: 'emit-endpoint-scores', group: 'config', key: 'emitEndpointScores', kind: 'bool', def: 'false', help: 'Also return each candidate\'s total score in dynamic metadata envoy.lb / x-gateway-destination-endpoint-scores.' },
  { name: 'workers', group: 'serve', key: 'workers', kind: 'int', def: '0', help: 'Request threads serving ext_proc on the one port (connections spread over them by the kernel); discovery, scraping, health and /metrics stay on the control thread, and the workers share routing state (prefix index, in-flight load, sessions). 0: the CPUs available to the container (its cgroup CPU limit, rounded up); 1: everything on one thread.' },
  { name: 'state-sync', group: 'ha', key: 'stateSync', kind: 'string', def: '', help: 'Share routing state with the other replicas through Redis or Valkey: redis://[user:password@]host:port[/db][?key=<stream>&history=<entries>] (rediss:// for TLS). Each replica publishes its prefix-index insertions, in-flight load and session bindings, applies the others\', and warms from the recent history before it reports ready. Redis going away degrades to independent replicas (logged, llm_epp_state_sync_connected 0), never an outage.' },
  { name: 'ha-enable-leader-election', group: 'ha', key: 'haEnableLeaderElection', kind: 'bool', def: 'false', help: 'Active-passive HA on Kubernetes: replicas contend for a coordination.k8s.io Lease (llm-epp-<pool>) and only the leader reports readiness SERVING.' },
  { name: 'shutdown-delay', group: 'ha', key: 'shutdownDelayMs', kind: 'duration', def: '10s', help: 'On SIGTERM/SIGINT: health answers NOT_SERVING at once, and ext_proc keeps accepting and serving new streams for this long, so gateways health-checking llm-epp move away before it stops accepting.' },
  { name: 'drain-timeout', group: 'ha', key: 'drainTimeoutMs', kind: 'duration', def: '30s', help: 'After --shutdown-delay: stop accepting, let open streams finish for up to this long, then close what is left and exit.' },
  { name: 'allow-client-model-rewrite', group: 'config', key: 'allowClientModelRewrite', kind: 'bool', def: 'false', help: 'Honour x-gateway-model-name-rewrite / x-llm-d-model-name-rewrite request headers. Off: a client cannot pick the model or adapter that InferenceModelRewrites decide; turn on only when the gateway strips these headers from clients and sets them itself.' },
  { name: 'log-level', group: 'observe', key: 'logLevel', kind: 'string', def: 'info', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'Log level (debug logs one line per routed request). -v=4 is debug, -v=5 trace, as in the GAIE EPP.' },
  { name: 'allow-experimental-plugins', group: 'config', key: 'allowExperimentalPlugins', kind: 'bool', def: 'false', help: 'Allow alpha plugins in an llm-d.ai/v1alpha1 config (as llm-d Router v0.10 does); without it an alpha plugin type is refused at load, naming the flag.' },
  { name: 'tokenizer-workers', group: 'config', key: 'tokenizerWorkers', kind: 'int', def: '0', help: 'Worker threads of a token-producer\'s in-process tokenizer (local.path): long prompts are tokenized there, never on the request thread. 0: the CPUs available to the container minus one, at most 4 (at least 1).' },
  { name: 'tracing', group: 'observe', key: 'tracing', kind: 'bool', def: 'false', help: 'Emit OpenTelemetry spans for each request and its scoring, exported over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER[_ARG], OTEL_SERVICE_NAME); a W3C traceparent from the request headers is continued. llm-d Router defaults to true; llm-epp to false, so nothing is sent to a collector that is not there.' },
  { name: 'tls-min-version', group: 'serve', key: 'tlsMinVersion', kind: 'string', def: '', choices: ['', 'VersionTLS10', 'VersionTLS11', 'VersionTLS12', 'VersionTLS13'], help: 'Lowest TLS version the ext_proc port accepts (Go names, as llm-d Router takes them). Default: TLS 1.2.' },
  { name: 'tls-cipher-suites', group: 'serve', key: 'tlsCipherSuites', kind: 'list', def: '', help: 'Comma-separated TLS 1.2 cipher suites for the ext_proc port, by their Go / IANA names (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256). TLS 1.3 suites are not configurable. Default: Node\'s list.' },
  { name: 'enable-cert-reload', group: 'serve', key: 'enableCertReload', kind: 'bool', def: 'false', help: 'Watch --cert-path and serve a renewed tls.crt / tls.key to new connections without a restart (a broken pair is logged and the old one kept).' },
  { name: 'metrics-cert-dir', group: 'observe', key: 'metricsCertDir', kind: 'string', def: '', help: 'Directory with tls.crt and tls.key: serve /metrics over HTTPS (renewed files are picked up). Needs --metrics-client-ca-file or --metrics-endpoint-auth.' },
  { name: 'metrics-client-ca-file', group: 'observe', key: 'metricsClientCaFile', kind: 'string', def: '', help: 'PEM CA bundle: /metrics requires a client certificate it signed (mTLS). Needs --metrics-cert-dir.' },
  { name: 'grpc-max-recv-msg-size', group: 'limits', key: 'grpcMaxRecvMsgSize', kind: 'bytes', def: '0', help: 'Largest single gRPC message accepted from the gateway (e.g. 10MiB, 25MB); a larger one is answered 413. 0 = the response-usage cap plus 1 MiB of framing room.' },
  { name: 'grpc-max-send-msg-size', group: 'limits', key: 'grpcMaxSendMsgSize', kind: 'bytes', def: '0', help: 'Largest single gRPC message llm-epp sends (a rewritten body travels in one). 0 = the same as the receive default.' },
  { name: 'refresh-prometheus-metrics-interval', group: 'observe', key: 'refreshPrometheusMetricsIntervalMs', kind: 'duration', def: '5s', help: 'How often a pool summary (endpoints, fresh ones, mean and largest queue and KV-cache use) is written to the debug log, as llm-d Router\'s metrics logger does. Pool gauges themselves are computed whenever /metrics is read.' },
  { name: 'health-checking', group: 'llmd', key: 'healthChecking', kind: 'bool', def: 'false', help: 'llm-d Router: register gRPC health on the ext_proc port. llm-epp always serves it there (Envoy health-checks the EPP cluster on that port), so either value is accepted.' },
  { name: 'enable-pprof', group: 'llmd', refused: true, key: 'enablePprof', kind: 'bool', def: 'false', help: 'llm-d Router: Go pprof handlers. Not supported (Node.js has no pprof): --enable-pprof=true is refused; profile with NODE_OPTIONS=--cpu-prof or --heap-prof instead.' },
  { name: 'zap-log-level', group: 'llmd', key: 'zapLogLevel', kind: 'string', def: '', help: 'llm-d Router\'s log level flag: debug, info, error, panic, or a verbosity number (as -v). Sets the level when --log-level is not given.' },
  { name: 'zap-encoder', group: 'llmd', key: 'zapEncoder', kind: 'string', def: 'json', choices: ['json', 'console'], help: 'llm-d Router\'s log encoding: json (llm-epp\'s --log-format=json) or console (--log-format=text). --log-format wins when both are given.' },
  { name: 'zap-devel', group: 'llmd', key: 'zapDevel', kind: 'bool', def: 'false', help: 'llm-d Router\'s development logging defaults. Accepted; llm-epp\'s format does not change (use --log-level=debug for more detail).' },
  { name: 'zap-stacktrace-level', group: 'llmd', key: 'zapStacktraceLevel', kind: 'string', def: '', choices: ['', 'info', 'error', 'panic'], help: 'llm-d Router: the level from which stack traces are logged. Accepted; llm-epp logs the stack of every error it logs.' },
  { name: 'zap-time-encoding', group: 'llmd', key: 'zapTimeEncoding', kind: 'string', def: '', choices: ['', 'iso8601', 'rfc3339', 'rfc3339nano', 'epoch', 'millis', 'nano'], help: 'llm-d Router\'s timestamp format. llm-epp writes ISO 8601 (RFC 3339) times: iso8601, rfc3339 and rfc3339nano are accepted, the numeric ones refused.' },
  { name: 'total-queued-requests-metric', group: 'llmd', refused: true, key: 'totalQueuedRequestsMetric', kind: 'string', def: '', help: 'Removed in llm-d Router; refused: set queuedRequestsSpec in core-metrics-extractor engineConfigs.' },
  { name: 'total-running-requests-metric', group: 'llmd', refused: true, key: 'totalRunningRequestsMetric', kind: 'string', def: '', help: 'Removed in llm-d Router; refused: set runningRequestsSpec in core-metrics-extractor engineConfigs.' },
  { name: 'kv-cache-usage-percentage-metric', group: 'llmd', refused: true, key: 'kvCacheUsagePercentageMetric', kind: 'string', def: '', help: 'Removed in llm-d Router; refused: set kvUsageSpec in core-metrics-extractor engineConfigs.' },
  { name: 'lora-info-metric', group: 'llmd', refused: true, key: 'loraInfoMetric', kind: 'string', def: '', help: 'Removed in llm-d Router; refused: set loraSpec in core-metrics-extractor engineConfigs.' },
  { name: 'cache-info-metric', group: 'llmd', refused: true, key: 'cacheInfoMetric', kind: 'string', def: '', help: 'Removed in llm-d Router; refused: set cacheInfoSpec in core-metrics-extractor engineConfigs.' },
  { name: 'log-format', group: 'observe', key: 'logFormat', kind: 'string', def: 'auto', choices: ['auto', 'text', 'json'], help: 'Log lines as JSON (pino; what log collectors want) or as readable text; auto: text when stdout is a terminal, JSON otherwise.' },
  { name: 'check-config', group: 'config', key: 'checkConfig', kind: 'bool', def: 'false', help: 'Validate the EndpointPickerConfig (--config-file or --config-text, else the default) as llm-epp would load it, print what it configures, and exit: 0 when valid, 1 with the error.' },
  { name: 'help', group: 'observe', key: 'help', kind: 'bool', def: 'false', help: 'Print this help and exit.' },
  { name: 'version', group: 'observe', key: 'version', kind: 'bool', def: 'false', help: 'Print the version and exit.' },
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
    case 'list':
      return raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
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
  if (values['log-level'] === undefined && opts.zapLogLevel) {
    const z = opts.zapLogLevel.toLowerCase();
    if (/^\d+$/.test(z)) verbosity = Number(z);
    else if (z === 'debug' || z === 'info' || z === 'error') opts.logLevel = z;
    else if (z === 'panic') opts.logLevel = 'fatal';
    else throw new FlagError(`--zap-log-level: "${opts.zapLogLevel.slice(0, 40)}" is not debug, info, error, panic or a verbosity number`);
  }
  if (values['log-format'] === undefined && values['zap-encoder'] !== undefined) opts.logFormat = opts.zapEncoder === 'console' ? 'text' : 'json';
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
  // Without a flag source the config may still bring one (dataLayer.discovery: file-discovery); the app checks that after loading it.
  if (sources.length === 0 && !o.configFile && !o.configText && !o.checkConfig && !o.help && !o.version) {
    throw new FlagError(NO_ENDPOINT_SOURCE);
  }
  if (o.objectivesFile && o.poolName) throw new FlagError('--objectives-file and --pool-name both give the InferenceObjectives (--pool-name watches them in the cluster): keep one');
  validateLlmdFlags(o);
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
  if (o.workers < 0 || o.workers > 256) throw new FlagError(`--workers: ${o.workers} is not 0 (the container's CPUs) or 1-256`);
  if (o.stateSync) {
    const why = stateSyncUrlProblem(o.stateSync);
    if (why) throw new FlagError(`--state-sync: ${why}`);
  }
}

/** What is wrong with a --state-sync URL, or undefined. */
export function stateSyncUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${text.slice(0, 200)}" is not a URL; expected redis://host:port`;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return `scheme "${url.protocol.slice(0, -1).slice(0, 20)}" is not redis or rediss`;
  if (!url.hostname) return 'no host';
  const db = url.pathname.replace(/^\//, '');
  if (db && !/^\d{1,2}$/.test(db)) return `database "${db.slice(0, 40)}" is not a number`;
  for (const k of url.searchParams.keys()) if (k !== 'key' && k !== 'history') return `unknown parameter "${k.slice(0, 40)}" (known: key, history)`;
  const history = url.searchParams.get('history');
  if (history !== null && !/^\d{1,7}$/.test(history)) return `history "${history.slice(0, 40)}" is not a number of entries (0-9999999)`;
  const key = url.searchParams.get('key');
  if (key !== null && (key.length === 0 || key.length > 200)) return 'key must be 1-200 characters';
  return undefined;
}

/** The flags llm-d Router v0.10 has and llm-epp implements differently or refuses, checked as it would. */
function validateLlmdFlags(o: Options): void {
  for (const [flag, value] of [
    ['total-queued-requests-metric', o.totalQueuedRequestsMetric],
    ['total-running-requests-metric', o.totalRunningRequestsMetric],
    ['kv-cache-usage-percentage-metric', o.kvCacheUsagePercentageMetric],
    ['lora-info-metric', o.loraInfoMetric],
    ['cache-info-metric', o.cacheInfoMetric],
  ] as const) {
    if (value) throw new FlagError(`--${flag} is deprecated and cannot be used; configure metrics via engineConfigs of core-metrics-extractor in the EndpointPickerConfig instead`);
  }
  if (o.enablePprof) throw new FlagError('--enable-pprof: pprof is a Go facility llm-epp (Node.js) does not have; profile with NODE_OPTIONS=--cpu-prof or --heap-prof instead');
  if (['epoch', 'millis', 'nano'].includes(o.zapTimeEncoding)) {
    throw new FlagError(`--zap-time-encoding=${o.zapTimeEncoding}: llm-epp writes ISO 8601 (RFC 3339) timestamps only; use iso8601, rfc3339 or rfc3339nano`);
  }
  for (const name of o.tlsCipherSuites) {
    const err = unknownCipherSuite(name);
    if (err) throw new FlagError(`--tls-cipher-suites: ${err}`);
  }
  if ((o.tlsMinVersion || o.tlsCipherSuites.length || o.enableCertReload) && !o.secureServing) {
    throw new FlagError('--tls-min-version, --tls-cipher-suites and --enable-cert-reload apply to --secure-serving, which is off');
  }
  if (o.enableCertReload && !o.certPath) throw new FlagError('--enable-cert-reload needs --cert-path (a self-signed certificate is never renewed)');
  if (o.metricsClientCaFile && !o.metricsCertDir) throw new FlagError('--metrics-client-ca-file requires --metrics-cert-dir');
  if (o.metricsCertDir && !o.metricsClientCaFile && !o.metricsEndpointAuth) {
    throw new FlagError('--metrics-cert-dir enables metrics TLS without authentication; set --metrics-client-ca-file or --metrics-endpoint-auth');
  }
  if (o.refreshPrometheusMetricsIntervalMs <= 0) throw new FlagError('--refresh-prometheus-metrics-interval must be positive');
}

/** Said when nothing gives the endpoints (flags here; the app again once a config without file-discovery is loaded). */
export const NO_ENDPOINT_SOURCE = 'no endpoint source: give --pool-name (Kubernetes), --endpoint-selector, --endpoints ip:port,... or --endpoints-file FILE (or a config whose dataLayer.discovery is file-discovery)';

export function helpText(): string {
  const lines = ['Usage: llm-epp [flags]'];
  for (const [group, title] of Object.entries(GROUPS)) {
    lines.push('', `${title}:`);
    for (const f of FLAGS) {
      if (f.group !== group) continue;
      const def = f.kind === 'bool' ? ` (default ${f.def})` : f.def ? ` (default "${f.def}")` : '';
      lines.push(`  --${f.name}${f.kind === 'bool' ? '' : ' VALUE'}`);
      lines.push(`      ${f.help}${def}`);
    }
    if (group === 'observe') lines.push('  -v N', '      Go-style verbosity: 4 = debug, 5 = trace.');
  }
  return lines.join('\n');
}
