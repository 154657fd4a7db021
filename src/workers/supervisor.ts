// The control thread's side of --workers: starts the request workers, keeps
// their mirror of the pool current (endpoints, scraped metrics, objectives and
// rewrites, health), restarts a worker that exits, collects their metrics for
// /metrics, and stops them in order at shutdown.
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Counter, Gauge, type Registry } from 'prom-client';
import { resolveLogFormat, type Logger } from '../log.ts';
import type { Datastore } from '../pool/datastore.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import type { RequestPolicy } from '../request-control/policy.ts';
import type { Options } from '../flags.ts';
import { specOf, stateOf, type FromWorker, type HealthStatus, type ToWorker, type WorkerInit } from './messages.ts';

export interface SupervisorOptions {
  count: number;
  options: Options;
  host: string;
  port: number;
  poolName: string;
  /** Replica id: worker i's origin on the sync channel is `<replica>/<i>`. */
  replica: string;
  syncChannel: string;
  datastore: Datastore;
  policy: RequestPolicy;
  health: () => HealthStatus;
  /** A worker exited: the others (and other replicas) stop counting its in-flight load. */
  onWorkerGone: (origin: string) => void;
  log: Logger;
  registry: Registry;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  listening: boolean;
  /** Consecutive quick exits, for the restart backoff. */
  crashes: number;
  startedAt: number;
  restartTimer: NodeJS.Timeout | undefined;
}

const METRICS_TIMEOUT_MS = 2000;
const STOP_GRACE_MS = 2000;
/** A worker that ran this long before exiting restarts without waiting. */
const HEALTHY_RUN_MS = 30_000;

export class WorkerSupervisor {
  readonly #o: SupervisorOptions;
  readonly #slots: Slot[] = [];
  #port = 0;
  #stopping = false;
  #dirty = new Set<Endpoint>();
  #flushScheduled = false;
  #metricsId = 0;
  readonly #pending = new Map<number, { left: number; out: unknown[][]; done: () => void }>();
  readonly #restarts: Counter;
  readonly #onPool = () => this.#broadcast({ t: 'pool', specs: this.#o.datastore.list().map(specOf) });
  /** Called when a worker starts or stops listening (readiness). */
  onListeningChange: (() => void) | undefined;

  constructor(o: SupervisorOptions) {
    this.#o = o;
    this.#restarts = new Counter({ name: 'llm_epp_worker_restarts_total', help: 'Request workers (--workers) restarted after they exited unexpectedly.', registers: [o.registry] });
    const self = this;
    new Gauge({
      name: 'llm_epp_workers',
      help: 'Request workers (--workers): configured, and listening on the ext_proc port now.',
      labelNames: ['state'],
      registers: [o.registry],
      collect() {
        this.set({ state: 'configured' }, o.count);
        this.set({ state: 'listening' }, self.listening);
      },
    });
    o.datastore.on('change', this.#onPool);
    o.policy.onChange = () => this.#broadcast({ t: 'policy', ...o.policy.snapshot() });
  }

  /** The ext_proc port the workers share. */
  get port(): number {
    return this.#port;
  }

  /** Workers accepting connections now. */
  get listening(): number {
    return this.#slots.filter((s) => s.listening).length;
  }

  /**
   * Start every worker; resolves once all listen. The port is first bound here without
   * SO_REUSEPORT and released: a port another program (or another llm-epp, whose workers
   * would otherwise share it silently) holds fails here, and port 0 becomes a free port.
   */
  async start(): Promise<void> {
    for (let i = 0; i < this.#o.count; i++) this.#slots.push({ index: i, worker: undefined, listening: false, crashes: 0, startedAt: 0, restartTimer: undefined });
    this.#port = await probePort(this.#o.host, this.#o.port);
    await Promise.all(this.#slots.map((s) => this.#spawn(s)));
  }

  /** A scrape updated this endpoint: sent to the workers at the end of this turn (one message per turn). */
  endpointUpdated(ep: Endpoint): void {
    this.#dirty.add(ep);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      const states = [...this.#dirty].map(stateOf);
      this.#dirty.clear();
      this.#broadcast({ t: 'states', states });
    });
  }

  /** Readiness or draining changed on the control thread: the workers' ext_proc port serves health too. */
  healthChanged(): void {
    this.#broadcast({ t: 'health', health: this.#o.health() });
  }

  /** Every listening worker's metrics (prom-client JSON), for the aggregated /metrics. */
  collectMetrics(): Promise<unknown[][]> {
    const live = this.#slots.filter((s) => s.listening && s.worker);
    if (live.length === 0) return Promise.resolve([]);
    const id = ++this.#metricsId;
    return new Promise((resolve) => {
      const out: unknown[][] = [];
      const timer = setTimeout(finish, METRICS_TIMEOUT_MS);
      const entry = { left: live.length, out, done: finish };
      this.#pending.set(id, entry);
      for (const s of live) s.worker!.postMessage({ t: 'metrics', id } satisfies ToWorker);
      const self = this;
      function finish() {
        clearTimeout(timer);
        self.#pending.delete(id);
        resolve(out);
      }
    });
  }

  /** Test and operator hook: end worker `i` as a crash would (it is restarted). */
  async kill(i: number): Promise<void> {
    await this.#slots[i]?.worker?.terminate();
  }

  /** Stop serving: each worker drains as the single-thread server does, then exits. */
  async stop(drainMs: number, delayMs: number): Promise<void> {
    this.#stopping = true;
    this.#o.datastore.off('change', this.#onPool);
    this.#o.policy.onChange = undefined;
    await Promise.all(
      this.#slots.map(async (s) => {
        clearTimeout(s.restartTimer);
        const w = s.worker;
        if (!w) return;
        const stopped = new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(done, delayMs + drainMs + STOP_GRACE_MS);
          w.on('message', (m: FromWorker) => {
            if (m.t === 'stopped') done();
          });
          w.once('exit', done);
        });
        w.postMessage({ t: 'stop', drainMs, delayMs } satisfies ToWorker);
        await stopped;
        await w.terminate();
      }),
    );
  }

  #init(s: Slot): WorkerInit {
    const o = this.#o;
    return {
      index: s.index,
      // Workers' stdout is not a terminal: they log in the format the control thread chose.
      options: {
        ...o.options,
        logFormat: resolveLogFormat(o.options.logFormat),
        logLevel: o.log.level as Options['logLevel'],
        // A precise config's tokenizer threads are per worker: the default share is split between them.
        tokenizerWorkers: o.options.tokenizerWorkers || Math.max(1, Math.ceil(Math.min(4, Math.max(1, availableParallelism() - 1)) / o.count)),
      },
      host: o.host,
      port: this.#port,
      syncChannel: o.syncChannel,
      origin: `${o.replica}/${s.index}`,
      pool: o.datastore.list().map(specOf),
      states: o.datastore.list().map(stateOf),
      ...o.policy.snapshot(),
      health: o.health(),
      poolName: o.poolName,
    };
  }

  #spawn(s: Slot): Promise<void> {
    const w = new Worker(new URL('../worker-main.ts', import.meta.url), { workerData: this.#init(s), name: `llm-epp-worker-${s.index}` });
    s.worker = w;
    s.startedAt = performance.now();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let failure: string | undefined;
      w.on('message', (m: FromWorker) => {
        if (m.t === 'failed') failure = m.message;
        else if (m.t === 'listening') {
          if (this.#port === 0) this.#port = m.port;
          s.listening = true;
          this.onListeningChange?.();
          if (!settled) {
            settled = true;
            resolve();
          }
        } else if (m.t === 'metrics') {
          const p = this.#pending.get(m.id);
          if (!p) return;
          p.out.push(m.json);
          if (--p.left === 0) p.done();
        }
      });
      w.on('error', (err) => this.#o.log.error({ worker: s.index, err }, 'request worker failed'));
      w.once('exit', (code) => {
        const was = s.listening;
        s.listening = false;
        s.worker = undefined;
        if (was) this.onListeningChange?.();
        this.#o.onWorkerGone(`${this.#o.replica}/${s.index}`);
        if (!settled) {
          settled = true;
          reject(new Error(failure ?? `request worker ${s.index} exited (code ${code}) before it listened`));
          return;
        }
        if (this.#stopping) return;
        this.#restarts.inc();
        s.crashes = performance.now() - s.startedAt > HEALTHY_RUN_MS ? 0 : s.crashes + 1;
        this.#o.log.error({ worker: s.index, code, listening: this.listening }, 'request worker exited; restarting it (the others keep serving)');
        this.#restart(s);
      });
    });
  }

  /** Start the slot's worker again: at once after a long run, else after 100 ms doubling to 5 s. */
  #restart(s: Slot): void {
    const waitMs = s.crashes === 0 ? 0 : Math.min(5000, 100 * 2 ** (s.crashes - 1));
    s.restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn(s).catch((err: Error) => {
        s.crashes++;
        this.#o.log.error({ worker: s.index, err: err.message }, 'request worker restart failed; retrying');
        this.#restart(s);
      });
    }, waitMs);
  }

  #broadcast(msg: ToWorker): void {
    for (const s of this.#slots) s.worker?.postMessage(msg);
  }
}

/** Bind `port` exclusively and release it: throws EADDRINUSE when it is taken; port 0 gives a free one. */
function probePort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      const addr = server.address();
      const bound = typeof addr === 'object' && addr ? addr.port : port;
      server.close(() => resolve(bound));
    });
  });
}
