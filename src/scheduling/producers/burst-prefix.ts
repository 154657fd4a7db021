// burst-prefix-cache-producer (llm-d Router v0.10, alpha): co-locates bursts
// of prompt-sharing requests (the n samples of an RL rollout step, a shared
// RAG context) so a shared prefix is prefilled once, not on every replica
// while all caches are still cold and cache-state scorers score zero.
//
// prepare() hashes the request's token ids (TOKENIZED_PROMPT, from
// token-producer) into chained blocks of blockSizeTokens, the trailing partial
// block included as llm-d does (so identical short prompts group and prompts
// differing only at the end do not), and joins the current window: the first
// request opens it and a timer seals it windowDurationMs later. Every request
// waits for the seal (a client that goes away leaves the window at once); the
// window is then placed as a whole (burst-assign.ts) and dropped. produce()
// writes a PrefixResult with a full match on the request's assigned endpoint
// and none elsewhere, under PREFIX_MATCH and this producer's own key: point
// prefix-cache-scorer's prefixMatchInfoProducerName at this producer. A request
// overlapping no other of its window, one without tokens, and one arriving at a
// full window (maxBatchSize; logged at most every 10 s) get no affinity and go
// on, scored by the other scorers. Cross-window reuse is for the approximate or
// precise prefix producer, which can run alongside.
import type { Logger } from '../../log.ts';
import type { Endpoint } from '../../pool/endpoint.ts';
import { blockHashes, seedHash, type BlockHashes } from '../../prefix/hash.ts';
import { wasmMemory, xxh64At } from '../../prefix/xxh64-chain.ts';
import type { AsyncDataProducer, CycleState, StateKey } from '../framework.ts';
import { ConfigError, type Params } from '../params.ts';
import { definePlugin } from '../registry.ts';
import { PREFIX_MATCH, prefixMatchKey, type PrefixMatchProducer, type PrefixResult } from './approx-prefix.ts';
import { UNLIMITED, assignBurst, type BalanceBy, type BurstEntry, type BurstOptions } from './burst-assign.ts';
import { TOKENIZED_PROMPT } from './token-producer.ts';

const TYPE = 'burst-prefix-cache-producer';

/** Blocks hashed per request unless maxPrefixTokensToMatch says otherwise (llm-d's cap). */
const DEFAULT_MAX_BLOCKS = 2048;

/** A full window is logged at most this often. */
const WARN_EVERY_MS = 10_000;

const NO_BLOCKS: BlockHashes = { hi: new Uint32Array(0), lo: new Uint32Array(0), count: 0 };

const PARAMS = {
  windowDurationMs: { type: 'number', integer: true, min: 1, max: 10_000, default: 100, doc: 'The batch window in milliseconds (1..10000): every request waits up to this long, so keep it small.' },
  maxPerReplica: { type: 'number', integer: true, default: UNLIMITED, doc: 'Most requests of one prompt group per replica (k); -1: unlimited (the whole group on one replica).' },
  blockSizeTokens: { type: 'number', integer: true, min: 1, default: 64, doc: 'Tokens per prefix block.' },
  maxPrefixTokensToMatch: { type: 'number', integer: true, min: 0, default: 0, doc: 'Most prompt tokens hashed; 0: 2048 blocks. A positive value must be ≥ blockSizeTokens.' },
  minColocateBlocks: { type: 'number', integer: true, min: 0, default: 0, doc: 'Shared leading blocks for different prompts to co-locate, and for a single request to get an affinity; 0: only identical prompts are grouped.' },
  maxBatchSize: { type: 'number', integer: true, default: 1000, doc: 'Most requests in one window; later ones get no affinity. -1: unlimited.' },
  balanceBy: { type: 'string', enum: ['requests', 'tokens'], default: 'requests', doc: 'What a window balances across replicas: request count, or prefix blocks still to prefill (a replica\'s already placed leading blocks are free).' },
} as const;

/** The requests of the open window and how to release each. */
interface Batch {
  readonly waiting: Map<BurstEntry, () => void>;
}

export class BurstPrefixProducer implements PrefixMatchProducer, AsyncDataProducer {
  readonly type = TYPE;
  readonly name: string;
  readonly matchKey: StateKey<PrefixResult>;
  readonly produces: readonly StateKey<unknown>[];
  readonly consumes = [TOKENIZED_PROMPT];
  readonly #options: BurstOptions;
  readonly #windowMs: number;
  readonly #blockTokens: number;
  readonly #maxBlocks: number;
  readonly #maxBatch: number;
  readonly #log: Logger;
  /** Each request's entry, from prepare() to produce(); gone with the request. */
  readonly #entries = new WeakMap<CycleState, BurstEntry>();
  #open: Batch | undefined;
  #warnedFullAt = -Infinity;

  constructor(name: string, p: Params<typeof PARAMS>, log: Logger) {
    this.name = name;
    this.matchKey = prefixMatchKey(name);
    this.produces = [PREFIX_MATCH, this.matchKey];
    this.#options = { maxPerReplica: p.maxPerReplica, minColocateBlocks: p.minColocateBlocks, balanceBy: p.balanceBy as BalanceBy };
    this.#windowMs = p.windowDurationMs;
    this.#blockTokens = p.blockSizeTokens;
    this.#maxBlocks = p.maxPrefixTokensToMatch > 0 ? Math.floor(p.maxPrefixTokensToMatch / p.blockSizeTokens) : DEFAULT_MAX_BLOCKS;
    this.#maxBatch = p.maxBatchSize;
    this.#log = log;
  }

  prepare(state: CycleState, candidates: readonly Endpoint[], signal: AbortSignal): Promise<void> | undefined {
    const tokens = state.get(TOKENIZED_PROMPT);
    if (!tokens || tokens.ids.length === 0 || signal.aborted) return undefined;
    const entry: BurstEntry = { hashes: this.#hash(state, tokens.ids), candidates, assigned: undefined };
    this.#entries.set(state, entry);
    const batch = this.#join();
    if (!batch) return undefined;
    return new Promise<void>((resolve) => {
      const leave = () => {
        batch.waiting.delete(entry);
        resolve();
      };
      signal.addEventListener('abort', leave, { once: true });
      batch.waiting.set(entry, () => {
        signal.removeEventListener('abort', leave);
        resolve();
      });
    });
  }

  produce(state: CycleState, candidates: readonly Endpoint[]): void {
    const entry = this.#entries.get(state);
    const hashes = entry?.hashes ?? NO_BLOCKS;
    const matched = new Map<string, number>();
    const target = entry?.assigned;
    if (target) {
      if (candidates.some((c) => c.key === target.key)) matched.set(target.key, hashes.count);
      else this.#log.debug({ plugin: this.name, assigned: target.key }, 'burst: the assigned endpoint is no longer a candidate; no affinity');
    }
    const result: PrefixResult = { hashes, blockTokens: this.#blockTokens, total: hashes.count, matched, best: matched.size > 0 ? hashes.count : 0 };
    state.set(PREFIX_MATCH, result);
    state.set(this.matchKey, result);
  }

  /** The open window, opened (with its timer) if none is; undefined when it is full. */
  #join(): Batch | undefined {
    let batch = this.#open;
    if (!batch) {
      const opened: Batch = { waiting: new Map() };
      this.#open = batch = opened;
      setTimeout(() => this.#seal(opened), this.#windowMs).unref();
    }
    if (this.#maxBatch !== UNLIMITED && batch.waiting.size >= this.#maxBatch) {
      const now = performance.now();
      if (now - this.#warnedFullAt >= WARN_EVERY_MS) {
        this.#warnedFullAt = now;
        this.#log.warn({ plugin: this.name, maxBatchSize: this.#maxBatch }, 'burst window full (maxBatchSize): later requests of the window go on without burst affinity (logged at most every 10 s)');
      }
      return undefined;
    }
    return batch;
  }

  /** Places the window's requests, releases them and forgets the window. */
  #seal(batch: Batch): void {
    if (this.#open === batch) this.#open = undefined;
    try {
      assignBurst(batch.waiting.keys(), this.#options);
    } catch (err) {
      this.#log.error({ err, plugin: this.name }, 'burst window assignment failed; its requests go on without affinity');
      for (const entry of batch.waiting.keys()) entry.assigned = undefined;
    }
    this.#log.debug({ plugin: this.name, requests: batch.waiting.size }, 'burst window sealed');
    for (const release of batch.waiting.values()) release();
    batch.waiting.clear();
  }

  /** Chained hashes of the token ids' blocks, the trailing partial block last. */
  #hash(state: CycleState, ids: Uint32Array): BlockHashes {
    const bytes = new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength);
    const model = state.request.targetModel;
    const salt = state.request.parsed?.cacheSalt;
    const blockBytes = this.#blockTokens * 4;
    const full = blockHashes(bytes, model, salt, blockBytes, this.#maxBlocks);
    const tailAt = full.count * blockBytes;
    if (full.count >= this.#maxBlocks || tailAt >= bytes.length) return full;
    const prev = full.count > 0 ? (BigInt(full.hi[full.count - 1]) << 32n) | BigInt(full.lo[full.count - 1]) : seedHash(model, salt);
    return withBlock(full, chainedHash(bytes.subarray(tailAt), prev));
  }
}

/** XXH64(bytes ‖ prev as 8 little-endian bytes), a block's link of the chain. */
function chainedHash(bytes: Uint8Array, prev: bigint): bigint {
  const mem = wasmMemory(bytes.length + 8);
  mem.set(bytes, 0);
  new DataView(mem.buffer).setBigUint64(bytes.length, prev, true);
  return xxh64At(0, bytes.length + 8, 0n);
}

function withBlock(h: BlockHashes, hash: bigint): BlockHashes {
  const hi = new Uint32Array(h.count + 1);
  const lo = new Uint32Array(h.count + 1);
  hi.set(h.hi);
  lo.set(h.lo);
  hi[h.count] = Number(hash >> 32n);
  lo[h.count] = Number(hash & 0xffffffffn);
  return { hi, lo, count: h.count + 1 };
}

export const burstPrefixCacheProducer = definePlugin({
  type: TYPE,
  stability: 'alpha',
  description:
    'Co-locates bursts of prompt-sharing requests: requests arriving within windowDurationMs are placed jointly (identical prompts together, prefix-sharing ones by minColocateBlocks, balanced by requests or tokens) and each gets a full prefix match on its assigned endpoint. Needs token-producer; read it with prefix-cache-scorer\'s prefixMatchInfoProducerName.',
  params: PARAMS,
  create: (name, p, ctx) => {
    const where = `plugin "${name}" (${TYPE})`;
    if (p.maxPerReplica !== UNLIMITED && p.maxPerReplica < 1) throw new ConfigError(`${where}: maxPerReplica must be -1 (unlimited) or ≥ 1, got ${p.maxPerReplica}`);
    if (p.maxBatchSize !== UNLIMITED && p.maxBatchSize < 1) throw new ConfigError(`${where}: maxBatchSize must be -1 (unlimited) or ≥ 1, got ${p.maxBatchSize}`);
    if (p.maxPrefixTokensToMatch > 0 && p.maxPrefixTokensToMatch < p.blockSizeTokens) {
      throw new ConfigError(`${where}: maxPrefixTokensToMatch (${p.maxPrefixTokensToMatch}) must be 0 or ≥ blockSizeTokens (${p.blockSizeTokens}); a smaller value hashes no block`);
    }
    return new BurstPrefixProducer(name, p, ctx.log);
  },
});
