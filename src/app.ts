// Wires llm-epp together: pool source → datastore → metrics collector →
// director + scheduler → ext_proc server, plus health and Prometheus.
// main.ts runs it from flags; tests run it in-process with port 0.
import type { Server } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Director } from './request-control/director.ts';
import { RequestPlugins } from './request-control/request-plugins.ts';
import { bind, createExtProcServer, createHealthServer, shutdown } from './extproc/server.ts';
import { NO_ENDPOINT_SOURCE, type Options } from './flags.ts';
import { HealthState } from './health.ts';
import { createLogger, type Logger } from './log.ts';
import { MetricsCollector } from './metrics/collector.ts';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Tracing } from './observability/tracing.ts';
import { DcgmPage } from './metrics/dcgm-page.ts';
import { isDcgmDataSource } from './scheduling/data-layer/dcgm-data-source.ts';
import { EppMetrics } from './observability/metrics.ts';
import { startMetricsServer, type MetricsServer } from './observability/metrics-server.ts';
import { Datastore } from './pool/datastore.ts';
import { FileSource } from './pool/file-source.ts';
import { parseEndpointList } from './pool/static-source.ts';
import { poolStats, poolSummary } from './pool/pool-stats.ts';
import { createRegistry } from './builtin-plugins.ts';
import { DEFAULT_CONFIG, loadConfig, parseConfigText, type DataLayerSettings, type LoadedConfig } from './scheduling/config.ts';
import { PipelineScheduler } from './scheduling/pipeline.ts';
import type { Scheduler } from './scheduling/types.ts';
import type { ParserTable } from './scheduling/parsers/request-parser.ts';
import type { Plugin, SaturationDetector } from './scheduling/framework.ts';
import { RequestPolicy } from './request-control/policy.ts';
import { CertWatcher, loadTlsMaterial, serverCredentials } from './tls.ts';
import { loadMetricsTls } from './observability/metrics-tls.ts';
import { StreamTracker } from './extproc/stream-tracker.ts';
import { readBoundedFile } from './bounded-file.ts';
import { SharedState } from './sync/shared-state.ts';
import { ThreadTransport } from './sync/thread-transport.ts';
import { RelayTransport } from './sync/relay-transport.ts';
import { RedisTransport, redisSyncMetrics, redisSyncSettings } from './sync/redis-transport.ts';
import { WorkerSupervisor } from './workers/supervisor.ts';
import { aggregatedMetrics } from './workers/metrics-view.ts';
import { listenShared, type SharedListener } from './workers/shared-listener.ts';
import { applyStates, type HealthStatus, type WorkerInit } from './workers/messages.ts';
import { applyHealth } from './workers/worker-health.ts';
import { replicaId } from './sync/replica-id.ts';
import { createMetricsAuth } from './observability/metrics-auth.ts';
import { flowControlOf, type FlowControlConfig } from './flowcontrol/config.ts';
import { FlowController } from './flowcontrol/controller.ts';
import { InFlightRequests } from './flowcontrol/eviction.ts';
import { poolGate } from './flowcontrol/gate.ts';
import { FlowControlMetrics } from './flowcontrol/metrics.ts';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export interface AppDeps {
  logger?: Logger;
  scheduler?: Scheduler;
  /** Host to bind every server on (tests use 127.0.0.1). */
  host?: string;
  poolName?: string;
  processMetrics?: boolean;
  /** Random source for pickers and tie-breaks (tests seed it). */
  random?: () => number;
  /** A @kubernetes/client-node KubeConfig (tests point it at a fake API server). */
  kubeConfig?: unknown;
  /** Lease duration for leader election (tests shorten it); default 15 s as GAIE. */
  leaseDurationMs?: number;
  /** With --tracing: export spans here instead of what OTEL_* says (tests). */
  spanExporter?: unknown;
  /** With --tracing: the environment OTEL_* is read from (default process.env). */
  tracingEnv?: NodeJS.ProcessEnv;
  /** Set in a request worker (--workers): what the control thread handed it (src/workers/). */
  worker?: WorkerInit;
}

const KUBE_START_WAIT_MS = 10_000;

async function startWithin(work: Promise<void>, ms: number, log: Logger, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const result = await Promise.race([work.then(() => 'done' as const), late]);
  clearTimeout(timer);
  if (result === 'late') {
    log.warn({ what, waitedMs: ms }, 'Kubernetes API slow to answer; serving (not ready) while it continues');
    work.catch((err: unknown) => log.error({ what, err: (err as Error).message }, 'Kubernetes start-up failed'));
  }
}

/** One Lease per pool, or per selector in selector mode, so unrelated EPPs never contend. */
export function leaseName(o: Pick<Options, 'poolName' | 'endpointSelector'>): string {
  if (o.poolName) return `llm-epp-${o.poolName}`.slice(0, 253);
  return `llm-epp-selector-${createHash('sha256').update(o.endpointSelector).digest('hex').slice(0, 12)}`;
}

/** The metrics source's PEM files, read once at start-up; a missing file stops start-up. */
async function scrapeTls(dl: DataLayerSettings): Promise<{ ca?: string; cert?: string; key?: string } | undefined> {
  if (!dl.tls) return undefined;
  const read = async (path: string | undefined, what: string) => {
    if (!path) return undefined;
    return readBoundedFile(path, 1 << 20).catch((err: Error) => {
      throw new Error(`metrics-data-source ${what} ${path}: ${err.message}`);
    });
  };
  return { ca: await read(dl.tls.caCertPath, 'caCertPath'), cert: await read(dl.tls.clientCertPath, 'clientCertPath'), key: await read(dl.tls.clientKeyPath, 'clientKeyPath') };
}

/** A loaded config and, with the flowControl feature gate on, its flowControl section as read. */
export type BuiltConfig = LoadedConfig & { readonly flowControlSettings: FlowControlConfig | undefined };

export async function buildScheduler(
  options: Pick<Options, 'configFile' | 'configText' | 'maxConfigBytes'> & { allowExperimentalPlugins?: boolean; tokenizerWorkers?: number },
  pool: Datastore,
  log: Logger,
  metrics: EppMetrics | undefined,
  random: () => number = Math.random,
  sync?: SharedState,
): Promise<PipelineScheduler<BuiltConfig>> {
  let text = DEFAULT_CONFIG;
  let source = 'default config';
  if (options.configFile) {
    source = options.configFile;
    text = await readBoundedFile(options.configFile, options.maxConfigBytes).catch((err: Error) => {
      throw new Error(`--config-file ${options.configFile}: ${err.message}`);
    });
  } else if (options.configText) {
    source = '--config-text';
    text = options.configText;
    if (Buffer.byteLength(text) > options.maxConfigBytes) throw new Error(`--config-text: larger than --max-config-bytes (${options.maxConfigBytes} bytes)`);
  }
  const loaded = loadConfig(parseConfigText(text, source), createRegistry(), { pool, log, metrics, random, allowExperimental: options.allowExperimentalPlugins, tokenizerWorkers: options.tokenizerWorkers, sync }, source);
  const config: BuiltConfig = { ...loaded, flowControlSettings: flowControlOf(loaded, source) };
  log.info(
    {
      source,
      profiles: [...config.profiles.values()].map((p) => ({
        name: p.name,
        filters: p.filters.map((f) => f.name),
        scorers: p.scorers.map((s) => `${s.scorer.name}:${s.weight}`),
        picker: p.picker.name,
      })),
      profileHandler: config.profileHandler.name,
      saturationDetector: config.saturationDetector.name,
      flowControl: config.flowControlSettings ? 'on' : 'off',
    },
    'scheduling config loaded',
  );
  return new PipelineScheduler(config, log, metrics);
}

export interface App {
  readonly options: Options;
  readonly log: Logger;
  readonly datastore: Datastore;
  readonly collector: MetricsCollector;
  readonly metrics: EppMetrics;
  readonly health: HealthState;
  readonly director: Director;
  readonly policy: RequestPolicy;
  readonly fileSource: FileSource | undefined;
  /** With --workers > 1 on the control thread: the request workers (the control thread serves no ext_proc itself). */
  readonly workers: WorkerSupervisor | undefined;
  /** Routing state shared with other workers / replicas (--workers, --state-sync). */
  readonly sync: SharedState | undefined;
  /** Ports actually bound (differ from options when 0 was asked). */
  readonly ports: { grpc: number; health: number; metrics: number };
  /** PEM of the serving certificate when TLS is on. */
  readonly certPem: Buffer | undefined;
  /** Request bytes held right now over all streams, and the cap. */
  readonly bufferBudget: { readonly used: number; readonly limit: number };
  /** ext_proc streams open now. */
  readonly streams: StreamTracker;
  /** Flow control's queues in this thread (the flowControl feature gate); undefined when off. */
  readonly flow: FlowController | undefined;
  /**
   * Shut down as on SIGTERM: health NOT_SERVING at once; ext_proc keeps
   * accepting for `delayMs` (default --shutdown-delay); then it stops
   * accepting and open streams get up to `drainMs` (default --drain-timeout)
   * to finish before the rest are closed.
   */
  stop(drainMs?: number, delayMs?: number): Promise<void>;
}

export async function startApp(options: Options, deps: AppDeps = {}): Promise<App> {
  const log = deps.logger ?? createLogger(options.logLevel);
  const host = deps.host ?? '0.0.0.0';
  /** The pool's name in metrics, the workers' and the state-sync stream's. */
  const poolName = deps.poolName ?? (options.poolName || 'llm-epp');
  const datastore = new Datastore();
  const metrics = new EppMetrics(datastore, {
    poolName,
    stalenessThresholdMs: options.metricsStalenessThresholdMs,
    version: VERSION,
    processMetrics: deps.processMetrics ?? true,
    streamMetrics: options.enableGrpcStreamMetrics,
  });
  const health = new HealthState();
  // --workers > 1: this thread is the control thread (discovery, scraping, health, /metrics) and
  // request workers serve ext_proc on the shared port (src/workers/). In a worker, deps.worker is set.
  const worker = deps.worker;
  const control = !worker && options.workers > 1;
  const replica = replicaId();
  const syncChannel = `llm-epp-sync-${replica}`;
  let supervisor: WorkerSupervisor | undefined;
  // Routing state shared between workers: each worker publishes and applies; the control thread
  // only applies the workers' load (dispatch counts it reads when it scrapes).
  let sync: SharedState | undefined;
  let threads: ThreadTransport | undefined;
  // --state-sync: the replica's Redis link (in the control thread, or the only thread); warmed before ready.
  const redis = !worker && options.stateSync
    ? new RedisTransport(redisSyncSettings(options.stateSync, poolName), replica, log, redisSyncMetrics(metrics.registry))
    : undefined;
  if (worker) sync = new SharedState(new ThreadTransport(worker.syncChannel, { routing: true }), datastore, log, { origin: worker.origin, flushMs: 2 });
  else if (control) {
    threads = new ThreadTransport(syncChannel, { routing: redis !== undefined });
    sync = new SharedState(redis ? new RelayTransport(threads, redis, replica) : threads, datastore, log, { origin: `${replica}/control`, flushMs: 0 });
  } else if (redis) sync = new SharedState(redis, datastore, log, { origin: `${replica}/0`, flushMs: 2 });

  // The scheduling config is validated before anything listens: a bad config
  // never starts a half-working picker.
  let scheduler: Scheduler;
  // A config's metrics-data-source parameters override the --model-server-metrics-* flags.
  let dataLayer: DataLayerSettings = { sources: [] };
  let parsers: ParserTable | undefined;
  let requestPlugins: RequestPlugins | undefined;
  /** The config's plugins: some start (sockets, workers) before serving and stop at shutdown. */
  let configPlugins: Plugin[] = [];
  /** Flow control's settings and dispatch gate (the config's saturation detector), when its gate is on. */
  let flowSettings: { config: FlowControlConfig; detector: SaturationDetector } | undefined;
  if (deps.scheduler) scheduler = deps.scheduler;
  else {
    // The control thread's plugins never serve: they validate the config and give its data layer.
    const built = await buildScheduler(options, datastore, log, metrics, deps.random, control ? undefined : sync);
    scheduler = built;
    dataLayer = built.config.dataLayer;
    parsers = built.config.parsers;
    // Request control runs the config's saturation detector, producers and
    // request hooks, timed like the scheduler's plugins.
    requestPlugins = new RequestPlugins(built.config.plugins.values(), built.timer, built.config.saturationDetector);
    configPlugins = [...built.config.plugins.values()];
    const fc = built.config.flowControlSettings;
    if (fc) flowSettings = { config: fc, detector: built.config.saturationDetector };
  }

  const bufferBudget = { used: 0, limit: options.maxBufferedRequestBytes };
  const tls = options.secureServing ? await loadTlsMaterial(options.certPath) : undefined;

  // The pool first: a bad --endpoints or endpoints file stops start-up here.
  let fileSource: FileSource | undefined;
  let kubeSource: { stop(): Promise<void>; synced: boolean; onSyncChange: ((s: boolean) => void) | undefined } | undefined;
  let policySource: { stop(): Promise<void> } | undefined;
  const policy = new RequestPolicy(deps.random, { allowClientModelRewrite: options.allowClientModelRewrite });
  policy.onRewrites = (models) => metrics.pinModels(models);
  let kubeConfig: unknown;
  if (worker) {
    // A request worker: the control thread's pool, metrics and policy, kept current by its messages.
    datastore.replaceAll(worker.pool);
    applyStates(datastore, worker.states);
    policy.setObjectives(worker.objectives);
    policy.setRewrites(worker.rewrites);
  } else {
    const flagSources = [options.endpoints && '--endpoints', options.endpointsFile && '--endpoints-file', options.poolName && '--pool-name', options.endpointSelector && '--endpoint-selector'].filter(Boolean);
    if (dataLayer.discovery && flagSources.length) {
      throw new Error(`the config's dataLayer.discovery (file-discovery) and ${flagSources.join(', ')} both give the endpoints: keep one`);
    }
    if (!dataLayer.discovery && !flagSources.length) {
      throw new Error(NO_ENDPOINT_SOURCE);
    }
    if (options.poolName || options.endpointSelector) {
      // Loaded only for Kubernetes: the client library is large.
      const { KubeSource } = await import('./pool/k8s-source.ts');
      const { KubeConfig } = await import('@kubernetes/client-node');
      let kc = deps.kubeConfig as InstanceType<typeof KubeConfig> | undefined;
      if (!kc) {
        kc = new KubeConfig();
        kc.loadFromDefault(); // in-cluster service account, else KUBECONFIG / ~/.kube/config
      }
      kubeConfig = kc;
      const kube = new KubeSource(
        {
          poolName: options.poolName || undefined,
          namespace: options.poolNamespace,
          poolGroup: options.poolGroup,
          selector: options.endpointSelector || undefined,
          targetPorts: options.endpointTargetPorts,
        },
        datastore,
        log,
        kc,
      );
      kubeSource = kube;
      // A hanging API server must not keep the health port from opening (the
      // liveness probe would restart the pod): wait a bounded time, then serve
      // NOT_SERVING readiness until the pool has been read.
      await startWithin(kube.start(), KUBE_START_WAIT_MS, log, 'pool');
      if (options.poolName) {
        // InferenceObjectives and InferenceModelRewrites of this pool.
        const { KubePolicySource } = await import('./request-control/k8s-policy-source.ts');
        const ps = new KubePolicySource(kc, options.poolName, options.poolNamespace, policy, log);
        policySource = ps;
        await startWithin(ps.start(), KUBE_START_WAIT_MS, log, 'objectives and model rewrites');
      }
    } else if (options.endpointsFile || dataLayer.discovery) {
      // --endpoints-file, or the config's file-discovery plugin (llm-d Router's way to run without Kubernetes).
      const discovery = dataLayer.discovery;
      fileSource = new FileSource(options.endpointsFile || discovery!.path, datastore, log, {
        maxBytes: options.maxConfigBytes,
        maxShrink: options.endpointsFileMaxShrink,
        settleMs: options.endpointsFileSettleMs,
        watch: options.endpointsFile ? true : discovery!.watchFile,
      });
      await fileSource.start();
    } else {
      datastore.replaceAll(parseEndpointList(options.endpoints));
      log.info({ endpoints: datastore.list().length }, 'static endpoint pool loaded');
    }
    if (options.objectivesFile) {
      // InferenceObjectives (priorities) and model rewrites outside Kubernetes.
      const { FilePolicySource } = await import('./request-control/file-policy-source.ts');
      const ps = new FilePolicySource(options.objectivesFile, undefined, policy, log, options.maxConfigBytes);
      await ps.start().catch((err: Error) => {
        throw new Error(`--objectives-file ${options.objectivesFile}: ${err.message}`);
      });
      policySource = ps;
    }
  }

  // Flow control (the flowControl gate) in each thread that serves requests: requests wait here by
  // priority and fairness id until the saturation detector, over the whole pool, lets them go. With
  // --workers each worker keeps its own queues.
  const flow = flowSettings && !control ? startFlowControl(flowSettings.config, flowSettings.detector, datastore, policy, metrics, poolName, options.metricsStalenessThresholdMs, dataLayer.intervalMs ?? options.refreshMetricsIntervalMs, log) : undefined;

  // New metrics may let queued requests go; so may the other workers' and replicas' requests ending
  // (with --workers or --state-sync the concurrency detector reads the fleet's in-flight counts).
  const flowWake = flow ? () => flow.controller.wake() : undefined;
  if (sync && flowWake) sync.onLoadApplied = flowWake;
  const collector = new MetricsCollector(
    datastore,
    {
      intervalMs: dataLayer.intervalMs ?? options.refreshMetricsIntervalMs,
      timeoutMs: options.metricsScrapeTimeoutMs,
      scheme: dataLayer.scheme ?? options.modelServerMetricsScheme,
      path: dataLayer.path ?? options.modelServerMetricsPath,
      port: dataLayer.port ?? options.modelServerMetricsPort,
      insecureSkipVerify: dataLayer.insecureSkipVerify ?? options.modelServerMetricsHttpsInsecureSkipVerify,
      tls: await scrapeTls(dataLayer),
      engines: dataLayer.engines,
      onUpdate: control ? (ep) => supervisor?.endpointUpdated(ep) : flowWake,
    },
    log,
    metrics,
  );
  // Workers scrape nothing: the control thread sends them what it scraped.
  if (!worker) collector.start();
  // Other data sources (the DCGM exporter): a collector each, with its own page reader.
  const sourceCollectors = (worker ? [] : dataLayer.sources).flatMap(({ source }) =>
    isDcgmDataSource(source)
      ? [
          new MetricsCollector(
            datastore,
            {
              intervalMs: source.intervalMs ?? options.refreshMetricsIntervalMs,
              timeoutMs: options.metricsScrapeTimeoutMs,
              scheme: source.scheme,
              path: source.path,
              port: source.port,
              insecureSkipVerify: source.insecureSkipVerify,
              reader: new DcgmPage(source.useNodeAddress, log),
              onUpdate: control ? (ep) => supervisor?.endpointUpdated(ep) : flowWake,
            },
            log,
            metrics,
          ),
        ]
      : [],
  );
  for (const c of sourceCollectors) c.start();
  const stopCollectors = () => Promise.all([collector.stop(), ...sourceCollectors.map((c) => c.stop()), ...configPlugins.map((p) => p.stop?.())]);
  // The pool summary in the debug log (llm-d's metrics logger); no timer at all at other levels.
  const summaryTimer = log.isLevelEnabled('debug')
    ? setInterval(() => log.debug({ pool: poolSummary(poolStats(datastore, options.metricsStalenessThresholdMs)) }, 'pool summary'), options.refreshPrometheusMetricsIntervalMs).unref()
    : undefined;

  // Bytes of a non-streaming response kept to read its usage or restore a rewritten model name.
  const maxResponseUsageBytes = Math.max(options.maxRequestBodyBytes, 4 << 20);
  const director = new Director({
    pool: datastore,
    scheduler,
    plugins: requestPlugins,
    policy,
    parsers,
    maxResponseUsageBytes,
    options: {
      metricsStalenessThresholdMs: options.metricsStalenessThresholdMs,
      fallbackEndpoints: options.fallbackEndpoints,
      disableEndpointSubsetFilter: options.disableEndpointSubsetFilter,
    },
    metrics,
    log,
    sync,
    flow: flow?.controller,
    inFlight: flow?.inFlight,
  });

  const streams = new StreamTracker({ maxStreams: options.maxConcurrentStreams, idleTimeoutMs: options.streamIdleTimeoutMs });
  metrics.openStreams = () => streams.size;
  // The OpenTelemetry SDK is loaded only with --tracing.
  let tracing: Tracing | undefined;
  if (options.tracing) {
    const { Tracing } = await import('./observability/tracing.ts');
    tracing = new Tracing({ log, version: VERSION, exporter: deps.spanExporter as SpanExporter | undefined, env: deps.tracingEnv });
    const env = deps.tracingEnv ?? process.env;
    log.info({ exporter: env.OTEL_TRACES_EXPORTER || 'otlp', endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT || 'http://localhost:4317' }, 'tracing on');
  }
  const extProc = createExtProcServer(
    {
      director,
      metrics,
      log,
      maxRequestBodyBytes: options.maxRequestBodyBytes,
      maxResponseUsageBytes,
      emitEndpointScores: options.emitEndpointScores,
      bufferBudget,
      streams,
      tracing,
    },
    health.impl,
    {
      // BUFFERED mode sends the whole body in one message; larger ones get 413.
      maxReceiveMessageBytes: options.grpcMaxRecvMsgSize || maxResponseUsageBytes + (1 << 20),
      maxSendMessageBytes: options.grpcMaxSendMsgSize || maxResponseUsageBytes + (1 << 20),
      maxStreamsPerConnection: options.maxStreamsPerConnection,
      connectionIdleTimeoutMs: options.connectionIdleTimeoutMs,
    },
  );
  // A worker's health comes from the control thread, which serves the health port; a control
  // thread serves no ext_proc itself.
  const healthServer = worker ? undefined : createHealthServer(health.impl, options.connectionIdleTimeoutMs);
  let metricsServer: MetricsServer | undefined;
  let listener: SharedListener | undefined;
  const certWatchers: CertWatcher[] = [];
  const servers: Server[] = [...(control ? [] : [extProc]), ...(healthServer ? [healthServer] : [])];
  /** pool-sync's status (Kubernetes), also served by the workers' ext_proc ports. */
  let poolSync: 'SERVING' | 'NOT_SERVING' | undefined;
  const healthStatus = (): HealthStatus => ({ ready: health.ready, draining: health.draining, services: poolSync ? [['pool-sync', poolSync]] : [] });
  try {
    // Plugins that hold sockets or threads (KV-event subscribers, tokenizer workers) start before
    // serving — in the threads that serve.
    if (!control) await Promise.all(configPlugins.map((p) => p.start?.()));
    // --state-sync, one thread: the others' recent prefix blocks and sessions are in before the
    // ext_proc port accepts a stream, so no stream is routed cold.
    if (!control) await redis?.start();
    const extProcCreds = serverCredentials(tls, { minVersion: options.tlsMinVersion, cipherSuites: options.tlsCipherSuites });
    let grpcPort: number;
    if (worker) {
      listener = await bindFlag('--grpc-port', worker.port, () => listenShared(extProc, extProcCreds.credentials, host, worker.port));
      grpcPort = listener.port;
    } else if (control) {
      const sup = new WorkerSupervisor({
        count: options.workers,
        options,
        host,
        port: options.grpcPort,
        poolName,
        replica,
        syncChannel,
        datastore,
        policy,
        health: healthStatus,
        // Its in-flight load leaves the other workers' view, this thread's and (through Redis) the other replicas'.
        onWorkerGone: (origin) => {
          const gone = { origin, at: Date.now(), gone: true };
          threads!.send(gone);
          redis?.send(gone);
          sync!.apply(gone);
        },
        log,
        registry: metrics.registry,
      });
      supervisor = sup;
      await bindFlag('--grpc-port', options.grpcPort, () => sup.start());
      grpcPort = sup.port;
    } else grpcPort = await bindFlag('--grpc-port', options.grpcPort, () => bind(extProc, `${host}:${options.grpcPort}`, extProcCreds.credentials));
    if (options.enableCertReload && tls && extProcCreds.replace && !control) {
      const w = new CertWatcher(options.certPath, tls, extProcCreds.replace, log);
      w.start();
      certWatchers.push(w);
    }
    const healthPort = healthServer
      ? await bindFlag('--grpc-health-port', options.grpcHealthPort, () =>
          bind(healthServer, hostPort(options.grpcHealthBindAddress || host, options.grpcHealthPort), serverCredentials(undefined).credentials),
        )
      : 0;
    let metricsPort = 0;
    if (!worker) {
      const auth = options.metricsEndpointAuth
        ? await createMetricsAuth({ tokenFile: options.metricsEndpointAuthTokenFile || undefined, kubeConfig: deps.kubeConfig ?? kubeConfig }, log)
        : undefined;
      const metricsTls = options.metricsCertDir ? await loadMetricsTls(options.metricsCertDir, options.metricsClientCaFile) : undefined;
      // With workers, /metrics adds up the workers' registries and the control thread's.
      const view = supervisor ? aggregatedMetrics(metrics.registry, supervisor) : metrics.registry;
      metricsServer = await bindFlag('--metrics-port', options.metricsPort, () => startMetricsServer(view, options.metricsPort, options.metricsBindAddress || host, auth, metricsTls));
      if (metricsTls && metricsServer.setSecureContext) {
        const server = metricsServer;
        // controller-runtime's metrics server watches its cert dir too; a renewed pair is served to new scrapes.
        const w = new CertWatcher(options.metricsCertDir, metricsTls, (next) => server.setSecureContext!({ ...next, ...(metricsTls.clientCa ? { ca: metricsTls.clientCa } : {}) }), log);
        w.start();
        certWatchers.push(w);
      }
      const metricsAddr = metricsServer.address();
      metricsPort = typeof metricsAddr === 'object' && metricsAddr ? metricsAddr.port : options.metricsPort;
    }

    // --state-sync, with workers: the replay reaches the workers through the relay, so it runs once they
    // exist; they listen meanwhile, but the replica reports ready only after it (Kubernetes sends a
    // replica no streams before it is ready).
    if (control) await redis?.start();

    // Ready: the pool has been read, the ext_proc server accepts streams (with --workers: at
    // least one worker listens), and (with leader election) this replica leads. A worker is told.
    let elector: { isLeader: boolean; stop(): Promise<void> } | undefined;
    const updateReady = () => {
      health.setReady(datastore.synced && (elector ? elector.isLeader : true) && (supervisor ? supervisor.listening > 0 : true));
      supervisor?.healthChanged();
    };
    if (worker) applyHealth(health, worker.health);
    if (options.haEnableLeaderElection && !worker) {
      const { LeaderElector } = await import('./ha/leader-election.ts');
      const leaseDurationMs = deps.leaseDurationMs ?? 15_000;
      const e = new LeaderElector(
        kubeConfig as never,
        { namespace: options.poolNamespace, name: leaseName(options), leaseDurationMs, retryPeriodMs: Math.min(2000, leaseDurationMs / 10) },
        log,
      );
      e.onChange = updateReady;
      e.start();
      elector = e;
    }
    if (!worker) {
      if (supervisor) supervisor.onListeningChange = updateReady;
      updateReady();
      // A Kubernetes pool may be read only later (API unreachable at start-up).
      if (!datastore.synced) datastore.once('change', updateReady);
    }
    if (kubeSource) {
      // `pool-sync`: NOT_SERVING while a watch is broken and the last known pool is being served.
      const ks = kubeSource;
      const setPoolSync = (synced: boolean) => {
        poolSync = synced ? 'SERVING' : 'NOT_SERVING';
        health.impl.setStatus('pool-sync', poolSync);
        supervisor?.healthChanged();
      };
      setPoolSync(ks.synced);
      ks.onSyncChange = setPoolSync;
    }
    if (!worker) {
      log.info(
        {
          version: VERSION,
          grpcPort,
          healthPort,
          metricsPort,
          workers: supervisor ? options.workers : 1,
          tls: tls ? (tls.selfSigned ? 'self-signed' : options.certPath) : 'off',
          scheduler: scheduler.name,
        },
        'llm-epp serving',
      );
    }

    let stopping: Promise<void> | undefined;
    return {
      options,
      log,
      datastore,
      collector,
      metrics,
      health,
      director,
      policy,
      fileSource,
      workers: supervisor,
      sync,
      ports: { grpc: grpcPort, health: healthPort, metrics: metricsPort },
      certPem: tls?.cert,
      bufferBudget,
      streams,
      flow: flow?.controller,
      stop(drainMs = options.drainTimeoutMs, delayMs = options.shutdownDelayMs) {
        stopping ??= (async () => {
          // 1. Health NOT_SERVING on both ports (liveness stays SERVING); the
          //    lease goes to a standby now.
          health.setDraining();
          supervisor?.healthChanged();
          if (!worker) log.info({ shutdownDelayMs: delayMs, drainTimeoutMs: drainMs, openStreams: streams.size }, 'draining: health NOT_SERVING, still accepting ext_proc streams');
          await elector?.stop();
          // 2. Keep accepting and serving while gateways notice.
          if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
          if (!worker) log.info({ openStreams: streams.size }, 'draining: no longer accepting ext_proc streams');
          // Requests still queued in flow control are answered now (503, shutting down), not at their TTL.
          flow?.controller.shutdown();
          if (supervisor) {
            // 3. Each worker stops accepting; its open streams get up to drainMs to finish.
            await supervisor.stop(drainMs, 0);
          } else {
            // 3. Stop accepting; open streams get up to drainMs to finish.
            const accepting = listener?.close();
            const closed = shutdown(extProc, drainMs);
            const drained = await streams.drained(drainMs);
            if (!drained) {
              metrics.streamsEnded.inc({ reason: 'drain_timeout' }, streams.size);
              log.warn({ openStreams: streams.size, drainTimeoutMs: drainMs }, 'drain timeout: closing the streams still open');
            }
            await Promise.all([closed, accepting]);
          }
          streams.close();
          fileSource?.stop();
          for (const w of certWatchers) w.stop();
          clearInterval(summaryTimer);
          // 4. Then everything else.
          await Promise.all([healthServer && shutdown(healthServer, 1000), stopCollectors(), kubeSource?.stop(), policySource?.stop(), sync?.close()]);
          await new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()));
          metricsServer?.closeAllConnections();
          // Spans still buffered go out (bounded by the exporter's own timeout).
          await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'tracing shutdown failed'));
        })();
        return stopping;
      },
    };
  } catch (err) {
    flow?.controller.shutdown();
    streams.close();
    for (const s of servers) s.forceShutdown();
    await Promise.all([supervisor?.stop(0, 0), listener?.close(), sync?.close()]);
    for (const w of certWatchers) w.stop();
    clearInterval(summaryTimer);
    metricsServer?.close();
    fileSource?.stop();
    await Promise.all([stopCollectors(), kubeSource?.stop(), policySource?.stop(), tracing?.shutdown().catch(() => {})]);
    throw err;
  }
}

/** A port a flag names could not be bound: say which flag, and what to do. */
async function bindFlag<T>(flag: string, port: number, bindIt: () => Promise<T>): Promise<T> {
  try {
    return await bindIt();
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    if (/EADDRINUSE/.test(msg)) throw new Error(`${flag} ${port}: the port is in use (another llm-epp, or another program, listens there); stop it or give another ${flag}`);
    if (/EACCES/.test(msg)) throw new Error(`${flag} ${port}: not allowed to listen on this port (ports below 1024 need privileges); give another ${flag}`);
    throw new Error(`${flag} ${port}: ${msg}`);
  }
}

/** host:port for gRPC's bind, with IPv6 addresses bracketed. */
function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Flow control for one request thread: the controller, its dispatch gate
 * (`detector` over the whole pool), its metrics on llm-epp's registry, woken
 * when the pool changes; the InferenceObjectives' priorities keep their bands.
 */
export function startFlowControl(
  config: FlowControlConfig,
  detector: SaturationDetector,
  datastore: Datastore,
  policy: RequestPolicy,
  metrics: EppMetrics,
  poolName: string,
  defaultStalenessMs: number,
  scrapeIntervalMs: number,
  log: Logger,
): { controller: FlowController; inFlight: InFlightRequests | undefined } {
  const fcMetrics = new FlowControlMetrics(metrics.registry, { poolName, fairnessLabel: (id) => metrics.fairnessLabel(id), modelLabel: (m) => metrics.modelLabel(m) });
  // A detector with its own staleness threshold (the utilization detector's) says which endpoints count as stale.
  const stalenessMs = detector.stalenessMs ?? defaultStalenessMs;
  const gate = poolGate(datastore, detector, { stalenessMs, staleEndpoints: (d, n) => fcMetrics.recordStaleEndpoints(d, n) });
  const inFlight = config.enableEviction ? new InFlightRequests() : undefined;
  const controller = new FlowController(config, {
    gate,
    metrics: fcMetrics,
    log: log.child({ component: 'flow-control' }),
    evictor: inFlight,
    // How long an evicted request's freed capacity takes to show (llm-d's derivation): at once for the
    // concurrency detector's own counts; a scrape interval, the staleness window and 250 ms for the
    // engine to reclaim it, for scraped metrics.
    eviction: { confirmationGraceMs: detector.type === 'concurrency-detector' ? 10 : scrapeIntervalMs + stalenessMs + 250 },
  });
  datastore.on('change', () => controller.wake());
  const priorities = () => controller.setDesiredPriorities(policy.snapshot().objectives.map((o) => o.priority));
  priorities();
  const previous = policy.onChange;
  policy.onChange = () => {
    previous?.();
    priorities();
  };
  log.info({ bands: [...config.bands.keys()].sort((a, b) => b - a), detector: detector.name, eviction: config.enableEviction }, 'flow control on');
  return { controller, inFlight };
}
