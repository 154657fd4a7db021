// Scrapes every endpoint's Prometheus page on its own loop, so one slow or
// dead pod never delays the others: a per-endpoint undici Client (keep-alive),
// a per-scrape timeout, and the next scrape scheduled only after the last one
// ends. Results land on the Endpoint objects the scheduler reads.
import { Client } from 'undici';
import type { Logger } from '../log.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import type { EndpointPool, PoolChange } from '../pool/datastore.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import { joinHostPort } from '../pool/endpoint.ts';
import { DEFAULT_ENGINE, ENGINE_TYPE_LABELS, extractMetrics, getEngine, wantedMetricNames, type EngineMapping } from './engines.ts';
import { parsePrometheusText } from './prom-text.ts';

export interface CollectorOptions {
  intervalMs: number;
  timeoutMs: number;
  scheme: 'http' | 'https';
  path: string;
  /** 0 = scrape on the endpoint's own port. */
  port: number;
  insecureSkipVerify: boolean;
}

interface Target {
  endpoint: Endpoint;
  client: Client;
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
  failures: number;
}

export class MetricsCollector {
  readonly #pool: EndpointPool;
  readonly #opts: CollectorOptions;
  readonly #log: Logger;
  readonly #metrics: EppMetrics | undefined;
  readonly #targets = new Map<string, Target>();
  readonly #onChange = (change: PoolChange) => this.#apply(change);
  #running = false;

  constructor(pool: EndpointPool, opts: CollectorOptions, log: Logger, metrics?: EppMetrics) {
    this.#pool = pool;
    this.#opts = opts;
    this.#log = log;
    this.#metrics = metrics;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#pool.on('change', this.#onChange);
    this.#apply({ added: [...this.#pool.list()], removed: [] });
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#pool.off('change', this.#onChange);
    const closing: Promise<void>[] = [];
    for (const t of this.#targets.values()) closing.push(this.#stopTarget(t));
    this.#targets.clear();
    await Promise.allSettled(closing);
  }

  /** Scrape one endpoint now (used by the loop and by tests). */
  async scrapeOnce(endpoint: Endpoint): Promise<void> {
    const t = this.#targets.get(endpoint.key);
    if (t) await this.#scrape(t);
  }

  #apply(change: PoolChange): void {
    for (const ep of change.removed) {
      const t = this.#targets.get(ep.key);
      if (t) {
        this.#targets.delete(ep.key);
        void this.#stopTarget(t);
      }
    }
    if (!this.#running) return;
    for (const ep of change.added) {
      if (this.#targets.has(ep.key)) continue;
      const port = this.#opts.port || ep.port;
      const origin = `${this.#opts.scheme}://${joinHostPort(ep.address, port)}`;
      let client: Client;
      try {
        client = this.#client(origin);
      } catch (err) {
        // One bad endpoint must not stop the others from being scraped.
        ep.scrapeError = (err as Error).message;
        this.#log.error({ endpoint: ep.key, err: ep.scrapeError }, 'cannot scrape endpoint');
        continue;
      }
      const t: Target = { endpoint: ep, client, timer: undefined, stopped: false, failures: 0 };
      this.#targets.set(ep.key, t);
      void this.#loop(t);
    }
  }

  #client(origin: string): Client {
    return new Client(origin, {
        keepAliveTimeout: 60_000,
        headersTimeout: this.#opts.timeoutMs,
        bodyTimeout: this.#opts.timeoutMs,
        connectTimeout: this.#opts.timeoutMs,
        pipelining: 1,
        connect: this.#opts.scheme === 'https' ? { rejectUnauthorized: !this.#opts.insecureSkipVerify } : undefined,
    });
  }

  async #loop(t: Target): Promise<void> {
    if (t.stopped) return;
    const started = performance.now();
    await this.#scrape(t);
    if (t.stopped) return;
    const wait = Math.max(0, this.#opts.intervalMs - (performance.now() - started));
    t.timer = setTimeout(() => void this.#loop(t), wait);
  }

  async #scrape(t: Target): Promise<void> {
    const ep = t.endpoint;
    try {
      const engine = this.#engineFor(ep);
      const res = await t.client.request({
        path: this.#opts.path,
        method: 'GET',
        headers: { accept: 'text/plain;version=0.0.4' },
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const text = await res.body.text();
      if (t.stopped) return;
      ep.metrics = extractMetrics(engine, parsePrometheusText(text, wantedMetricNames(engine)));
      ep.metricsUpdatedAt = performance.now();
      if (ep.scrapeError !== undefined || t.failures > 0) {
        this.#log.info({ endpoint: ep.key }, 'model server metrics recovered');
      }
      ep.scrapeError = undefined;
      t.failures = 0;
    } catch (err) {
      if (t.stopped) return;
      const message = (err as Error).message;
      t.failures++;
      this.#metrics?.scrapeErrors.inc({ model_server_pod: ep.name });
      // Log the first failure and then every 100th, not 20 lines a second.
      if (t.failures === 1 || t.failures % 100 === 0 || message !== ep.scrapeError) {
        this.#log.warn({ endpoint: ep.key, failures: t.failures, err: message }, 'model server metrics scrape failed');
      }
      ep.scrapeError = message;
    }
  }

  #engineFor(ep: Endpoint): EngineMapping {
    let name: string | undefined;
    for (const label of ENGINE_TYPE_LABELS) {
      const v = ep.labels[label];
      if (v) {
        name = v;
        break;
      }
    }
    const engine = getEngine(name ?? DEFAULT_ENGINE);
    if (!engine) throw new Error(`unknown engine type "${name}" (known: vllm, sglang, trtllm-serve, triton-tensorrt-llm, tgi)`);
    return engine;
  }

  async #stopTarget(t: Target): Promise<void> {
    t.stopped = true;
    if (t.timer) clearTimeout(t.timer);
    try {
      await t.client.destroy();
    } catch {
      // Closing a broken connection may fail; nothing to release then.
    }
  }
}
