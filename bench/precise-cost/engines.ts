// The vLLM engines behind the benchmark's pods, as far as llm-epp can see
// them: each pod's prefix cache and the KV events it publishes. When llm-epp
// routes a prompt to a pod, served() runs the prompt through that pod's block
// pool (bench/sim/kv-cache.ts, vLLM V1's: 16-token blocks, LRU eviction of
// unreferenced blocks) the way vLLM's prefill does — the longest cached
// prefix is reused, the rest computed in chunks of `stepTokens` (vLLM's
// max_num_batched_tokens), one KVEventBatch per chunk carrying its
// BlockStored and one BlockRemoved per evicted block — and publishes those
// batches on the pod's own PUB socket (bench/sim/kv-publisher.ts, real ZMQ).
// Every pod binds the same port on its own loopback address (127.0.1.x), as
// pods bind tcp://*:P in their own network namespaces, so llm-epp's discover
// mode connects to <endpoint IP>:P exactly as in a cluster.
// Decode steps are not simulated: generated tokens add no blocks.
import { KvCache, extendHashChain, type HashChain, type KvEvent } from '../sim/kv-cache.ts';
import { KvEventPublisher } from '../sim/kv-publisher.ts';

export interface EnginesOptions {
  /** Each pod's endpoint, "ip:port"; the ip is where its PUB socket binds. */
  endpoints: readonly string[];
  /** Served model name, in the topic. */
  model: string;
  /** KV blocks per engine. Default 27,000 (an H100 80 GB serving an 8B model, 16-token blocks). */
  numGpuBlocks?: number;
  /** Tokens per engine block. Default 16 (vLLM's default). */
  blockSize?: number;
  /** Prefill tokens per engine step (vLLM's max_num_batched_tokens). Default 8192. */
  stepTokens?: number;
}

/** What one served prompt did on its engine. */
export interface Served {
  /** Prompt tokens found in the pod's prefix cache (vLLM's prefix-cache hit). */
  hitTokens: number;
  promptTokens: number;
}

export interface EngineTotals {
  batches: number;
  storedBlocks: number;
  removedBlocks: number;
}

interface Engine {
  cache: KvCache;
  publisher: KvEventPublisher;
  /** The events of the step being run (emptied when published). */
  readonly step: KvEvent[];
}

const BIND_TRIES = 5;

export class Engines {
  readonly socketPort: number;
  readonly totals: EngineTotals;
  readonly #engines: Map<string, Engine>;
  readonly #blockSize: number;
  readonly #stepTokens: number;

  private constructor(engines: Map<string, Engine>, socketPort: number, blockSize: number, stepTokens: number, totals: EngineTotals) {
    this.#engines = engines;
    this.socketPort = socketPort;
    this.#blockSize = blockSize;
    this.#stepTokens = stepTokens;
    this.totals = totals;
  }

  /** Binds one PUB socket per pod, all on one port (the first pod's free port; retried if another pod's address holds it). */
  static start(o: EnginesOptions): Engines {
    const blockSize = o.blockSize ?? 16;
    const stepTokens = o.stepTokens ?? 8192;
    if (stepTokens % blockSize !== 0) throw new Error('stepTokens must be a multiple of blockSize');
    const hosts = o.endpoints.map((e) => e.slice(0, e.lastIndexOf(':')));
    if (new Set(hosts).size !== hosts.length) throw new Error('every pod needs its own address (one PUB port on each)');
    const totals: EngineTotals = { batches: 0, storedBlocks: 0, removedBlocks: 0 };
    for (let attempt = 1; ; attempt++) {
      const engines = new Map<string, Engine>();
      try {
        let port = 0;
        for (const [i, endpoint] of o.endpoints.entries()) {
          const publisher = new KvEventPublisher({ endpoint: `tcp://${hosts[i]}:${port || '*'}`, bind: true, topic: `kv@${endpoint}@${o.model}` });
          if (port === 0) port = Number(publisher.endpoint.slice(publisher.endpoint.lastIndexOf(':') + 1));
          const step: KvEvent[] = [];
          const cache = new KvCache({ numGpuBlocks: o.numGpuBlocks ?? 27_000, blockSize, onEvent: (ev) => queue(step, ev, totals) });
          engines.set(endpoint, { cache, publisher, step });
        }
        return new Engines(engines, port, blockSize, stepTokens, totals);
      } catch (err) {
        for (const e of engines.values()) e.publisher.close();
        if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt === BIND_TRIES) throw err;
      }
    }
  }

  has(endpoint: string): boolean {
    return this.#engines.has(endpoint);
  }

  /** Prefill `ids` on the pod at `endpoint`: reuse its cached prefix, store the rest, publish the steps' events. */
  served(endpoint: string, ids: Uint32Array): Served {
    const e = this.#engines.get(endpoint);
    if (!e) throw new Error(`no engine at ${endpoint}`);
    const bs = this.#blockSize;
    const chain: HashChain = { hi: [], lo: [], seed: 0 };
    extendHashChain(chain, ids, ids.length, bs);
    // As vLLM: a fully cached prompt still computes its last token.
    const hits = e.cache.lookup(chain, Math.floor((ids.length - 1) / bs));
    e.cache.touch(hits);
    const blocks = [...hits];
    for (let from = hits.length * bs; from < ids.length; from += this.#stepTokens) {
      const end = Math.min(ids.length, from + this.#stepTokens);
      const got = e.cache.allocate(Math.ceil(end / bs) - blocks.length);
      if (got === null) break; // a prompt larger than the engine's cache: the rest is not cached
      blocks.push(...got);
      e.cache.cacheBlocks(blocks, chain, ids, Math.floor(from / bs), Math.floor(end / bs));
      this.#publish(e);
    }
    e.cache.release(blocks.reverse());
    return { hitTokens: hits.length * bs, promptTokens: ids.length };
  }

  /** An empty batch from every pod: tells a subscriber each pod is there (a SUB that is still connecting misses it). */
  announce(): void {
    for (const e of this.#engines.values()) e.publisher.publish([]);
  }

  /** Every engine's cache emptied without an event: the state a freshly started llm-epp starts from. */
  forget(): void {
    for (const e of this.#engines.values()) e.cache.reset(false);
  }

  close(): void {
    for (const e of this.#engines.values()) e.publisher.close();
  }

  #publish(e: Engine): void {
    if (e.step.length === 0) return;
    e.publisher.publish(e.step);
    this.totals.batches++;
    e.step.length = 0;
  }
}

/** A block-pool event into its step's batch: one BlockRemoved per evicted block, as vLLM queues them. */
function queue(step: KvEvent[], ev: KvEvent, totals: EngineTotals): void {
  if (ev.type === 'BlockStored') totals.storedBlocks += ev.blockHashes.length;
  if (ev.type !== 'BlockRemoved') {
    step.push(ev);
    return;
  }
  totals.removedBlocks += ev.blockHashes.length;
  for (const h of ev.blockHashes) step.push({ type: 'BlockRemoved', blockHashes: [h], medium: ev.medium });
}
