// Paged KV cache with prefix caching, after vLLM V1's block pool (vllm/v1/core/block_pool.py,
// kv_cache_utils.py):
// - `numGpuBlocks` blocks of `blockSize` tokens; block 0 is the null block and never used,
//   so `numGpuBlocks - 1` blocks hold KV (as in vLLM).
// - Full blocks get a chained hash: hash(parent hash, the block's token ids, extra seed).
//   Hashes are 64 bits kept as two 32-bit halves (no BigInt on the hot path); a cached
//   block's hash is looked up with a 53-bit number key.
// - Like vLLM, identical blocks are not de-duplicated: two requests that computed the same
//   block each cache their copy (and each copy is stored and, later, removed by an event);
//   a lookup finds the first copy.
// - Blocks are ref-counted. A block whose ref count drops to 0 goes to the tail of the free
//   queue but keeps its hash and tokens, so a later request can reuse it (a prefix-cache
//   hit takes it back out of the queue). New allocations pop the head of the queue: the
//   least recently freed block is evicted first (LRU), and its cached content dropped.
// - Allocation that does not fit returns null so the scheduler can preempt.
// - An optional event sink gets BlockStored / BlockRemoved / AllBlocksCleared in vLLM's
//   shapes (§4 of shared/reference/vllm.md), except that one BlockRemoved lists all the
//   blocks one allocation evicted (the engine splits it per block, as vLLM queues them);
//   hashes are converted to uint64 BigInt only when a sink is attached.

export type KvEvent =
  | {
      type: 'BlockStored';
      /** uint64 block hashes, chain order. */
      blockHashes: bigint[];
      /** Hash of the block before the first stored one; null at the chain root. */
      parentBlockHash: bigint | null;
      /** Concatenated token ids of the stored blocks (blocks × blockSize). */
      tokenIds: number[];
      blockSize: number;
      /** The LoRA adapter's id and name (vLLM lora_id / lora_name); null for the base model. */
      loraId: number | null;
      loraName: string | null;
      medium: 'GPU';
    }
  | { type: 'BlockRemoved'; blockHashes: bigint[]; medium: 'GPU' }
  | { type: 'AllBlocksCleared' };

export interface KvCacheOptions {
  numGpuBlocks: number;
  blockSize: number;
  /** Default true. When false nothing is ever cached or hit. */
  enablePrefixCaching?: boolean;
  onEvent?: (ev: KvEvent) => void;
}

/** A request's chain of full-block hashes, extended as its tokens grow. */
export interface HashChain {
  hi: number[];
  lo: number[];
  /** Mixed into the root block (LoRA id, cache salt); 0 for none. */
  seed: number;
}

const NONE = -1;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Extend `chain` with the hashes of every full block of tokens[0, numTokens) not yet hashed.
 * Two 32-bit lanes (murmur3-style rounds with different constants, cross-mixed at the end)
 * make a 64-bit hash of (parent hash, token ids, seed).
 */
export function extendHashChain(chain: HashChain, tokens: ArrayLike<number>, numTokens: number, blockSize: number): void {
  const full = Math.floor(numTokens / blockSize);
  for (let b = chain.hi.length; b < full; b++) {
    let a: number;
    let c: number;
    if (b === 0) {
      a = 0x9e3779b9 ^ chain.seed;
      c = 0x7f4a7c15 ^ Math.imul(chain.seed, 0x27d4eb2f);
    } else {
      a = chain.lo[b - 1] ^ 0x9e3779b9;
      c = chain.hi[b - 1] ^ 0x7f4a7c15;
    }
    const start = b * blockSize;
    for (let i = start; i < start + blockSize; i++) {
      const t = tokens[i] | 0;
      let k = Math.imul(t, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      a ^= k;
      a = (a << 13) | (a >>> 19);
      a = (Math.imul(a, 5) + 0xe6546b64) | 0;
      let m = Math.imul(t ^ 0x5bd1e995, 0x85ebca77);
      m = (m << 17) | (m >>> 15);
      c ^= m;
      c = (c << 11) | (c >>> 21);
      c = (Math.imul(c, 9) + 0x165667b1) | 0;
    }
    const lo = fmix32(a ^ blockSize ^ c);
    const hi = fmix32(c ^ Math.imul(a, 0x27d4eb2f));
    chain.hi.push(hi);
    chain.lo.push(lo);
  }
}

/** The 53-bit number key of a 64-bit hash (low 21 bits of hi, all of lo). */
function keyOf(hi: number, lo: number): number {
  return (hi & 0x1fffff) * 0x100000000 + (lo >>> 0);
}

/** A 64-bit hash as an unsigned BigInt (for event sinks). */
export function hashToBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

export class KvCache {
  readonly numGpuBlocks: number;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  onEvent: ((ev: KvEvent) => void) | undefined;

  private readonly ref: Int32Array;
  private readonly hashed: Uint8Array;
  private readonly hashHi: Uint32Array;
  private readonly hashLo: Uint32Array;
  private readonly tokens: (Uint32Array | null)[];
  // Free queue: doubly linked list over block ids with a sentinel at index numGpuBlocks.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly inFree: Uint8Array;
  private readonly sentinel: number;
  private free: number;
  /** Hash key → the first cached block with that hash. */
  private readonly cached = new Map<number, number>();
  /** Hash key → further cached copies (rare: the same block computed by two requests). */
  private readonly copies = new Map<number, number[]>();
  private hashedCount = 0;

  constructor(opts: KvCacheOptions) {
    if (!Number.isInteger(opts.numGpuBlocks) || opts.numGpuBlocks < 2) throw new Error('numGpuBlocks must be an integer >= 2');
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1) throw new Error('blockSize must be a positive integer');
    this.numGpuBlocks = opts.numGpuBlocks;
    this.blockSize = opts.blockSize;
    this.enablePrefixCaching = opts.enablePrefixCaching ?? true;
    this.onEvent = opts.onEvent;
    const n = opts.numGpuBlocks;
    this.ref = new Int32Array(n);
    this.hashed = new Uint8Array(n);
    this.hashHi = new Uint32Array(n);
    this.hashLo = new Uint32Array(n);
    this.tokens = new Array<Uint32Array | null>(n).fill(null);
    this.prev = new Int32Array(n + 1);
    this.next = new Int32Array(n + 1);
    this.inFree = new Uint8Array(n);
    this.sentinel = n;
    this.free = 0;
    this.rebuildFreeQueue();
  }

  private rebuildFreeQueue(): void {
    const s = this.sentinel;
    this.prev[s] = s;
    this.next[s] = s;
    this.free = 0;
    this.inFree.fill(0);
    // Block 0 is vLLM's null block: never allocated.
    for (let b = 1; b < this.numGpuBlocks; b++) this.pushTail(b);
  }

  private pushTail(b: number): void {
    const s = this.sentinel;
    const last = this.prev[s];
    this.next[last] = b;
    this.prev[b] = last;
    this.next[b] = s;
    this.prev[s] = b;
    this.inFree[b] = 1;
    this.free++;
  }

  private unlink(b: number): void {
    const p = this.prev[b];
    const q = this.next[b];
    this.next[p] = q;
    this.prev[q] = p;
    this.inFree[b] = 0;
    this.free--;
  }

  /** Free blocks, including evictable cached ones (ref count 0). */
  get numFreeBlocks(): number {
    return this.free;
  }

  /** Blocks that can hold KV (the null block excluded). */
  get numUsableBlocks(): number {
    return this.numGpuBlocks - 1;
  }

  /** Blocks with a cached hash (pinned or evictable), copies included. */
  get numCachedBlocks(): number {
    return this.hashedCount;
  }

  /** vLLM's get_usage(): 1 − free / (num_gpu_blocks − 1): the share pinned by live requests. */
  usage(): number {
    return 1 - this.free / (this.numGpuBlocks - 1);
  }

  refCount(block: number): number {
    return this.ref[block];
  }

  isCached(block: number): boolean {
    return this.hashed[block] === 1;
  }

  /** Whether a block with this hash is cached. */
  hasHash(hi: number, lo: number): boolean {
    return this.cached.has(keyOf(hi, lo));
  }

  /** Block ids of the longest cached prefix of `chain`, at most `maxBlocks` (not touched). */
  lookup(chain: HashChain, maxBlocks: number): number[] {
    const out: number[] = [];
    if (!this.enablePrefixCaching) return out;
    const n = Math.min(maxBlocks, chain.hi.length);
    for (let i = 0; i < n; i++) {
      const b = this.cached.get(keyOf(chain.hi[i], chain.lo[i]));
      if (b === undefined || this.hashHi[b] !== chain.hi[i] >>> 0 || this.hashLo[b] !== chain.lo[i] >>> 0) break;
      out.push(b);
    }
    return out;
  }

  /** Number of the given hit blocks that are currently free (touching them uses free slots). */
  countFree(blocks: readonly number[]): number {
    let n = 0;
    for (const b of blocks) if (this.ref[b] === 0) n++;
    return n;
  }

  /** Take a reference on prefix-hit blocks (removing free ones from the free queue). */
  touch(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (this.ref[b] === 0 && this.inFree[b] === 1) this.unlink(b);
      this.ref[b]++;
    }
  }

  /**
   * Allocate `n` new blocks from the head of the free queue, evicting their cached content
   * (BlockRemoved). Returns null, changing nothing, when fewer than `n` blocks are free.
   */
  allocate(n: number): number[] | null {
    if (n > this.free) return null;
    const out: number[] = [];
    let removedHi: number[] | undefined;
    let removedLo: number[] | undefined;
    for (let i = 0; i < n; i++) {
      const b = this.next[this.sentinel];
      this.unlink(b);
      if (this.hashed[b] === 1) {
        if (this.onEvent !== undefined) {
          (removedHi ??= []).push(this.hashHi[b]);
          (removedLo ??= []).push(this.hashLo[b]);
        }
        this.evict(b);
      }
      this.ref[b] = 1;
      out.push(b);
    }
    if (removedHi !== undefined && removedLo !== undefined) {
      const lo = removedLo;
      this.onEvent?.({ type: 'BlockRemoved', blockHashes: removedHi.map((h, i) => hashToBigInt(h, lo[i])), medium: 'GPU' });
    }
    return out;
  }

  private evict(b: number): void {
    const key = keyOf(this.hashHi[b], this.hashLo[b]);
    const more = this.copies.get(key);
    if (this.cached.get(key) === b) {
      if (more === undefined) this.cached.delete(key);
      else this.cached.set(key, more.shift()!);
    } else if (more !== undefined && more.includes(b)) {
      more.splice(more.indexOf(b), 1);
    }
    if (more !== undefined && more.length === 0) this.copies.delete(key);
    this.hashed[b] = 0;
    this.tokens[b] = null;
    this.hashedCount--;
  }

  /**
   * Release one reference on each block, in the given order: blocks reaching 0 go to the
   * tail of the free queue (so pass a request's blocks tail-first, as vLLM does, to evict
   * the end of a chain before its shared prefix).
   */
  release(blocks: readonly number[]): void {
    for (const b of blocks) {
      if (this.ref[b] <= 0) throw new Error(`block ${b} released with ref count ${this.ref[b]}`);
      this.ref[b]--;
      if (this.ref[b] === 0) {
        if (!this.hashed[b]) this.tokens[b] = null;
        this.pushTail(b);
      }
    }
  }

  /**
   * Record blocks [from, to) of a request as full and cached: `blocks[i]` holds the tokens
   * of block i, `chain` their hashes, `tokens` the request's token ids. Emits one
   * BlockStored for them, as vLLM's cache_full_blocks does: the hashes of the newly cached
   * blocks, the parent = the chain hash of block from − 1, and the token ids of blocks
   * [from, to). A hash already cached in another block is cached again (vLLM keeps copies).
   */
  cacheBlocks(blocks: readonly number[], chain: HashChain, tokens: ArrayLike<number>, from: number, to: number, lora: { id: number; name: string } | null = null): void {
    if (!this.enablePrefixCaching || from >= to) return;
    const bs = this.blockSize;
    const sink = this.onEvent;
    const stored: bigint[] | undefined = sink === undefined ? undefined : [];
    for (let i = from; i < to; i++) {
      const b = blocks[i];
      if (this.hashed[b] === 1) continue;
      const hi = chain.hi[i] >>> 0;
      const lo = chain.lo[i] >>> 0;
      const key = keyOf(hi, lo);
      this.hashed[b] = 1;
      this.hashHi[b] = hi;
      this.hashLo[b] = lo;
      const t = new Uint32Array(bs);
      for (let j = 0; j < bs; j++) t[j] = tokens[i * bs + j];
      this.tokens[b] = t;
      this.hashedCount++;
      if (!this.cached.has(key)) this.cached.set(key, b);
      else {
        const more = this.copies.get(key);
        if (more === undefined) this.copies.set(key, [b]);
        else more.push(b);
      }
      stored?.push(hashToBigInt(hi, lo));
    }
    if (sink === undefined || stored === undefined || stored.length === 0) return;
    const tokenIds = new Array<number>((to - from) * bs);
    for (let j = 0; j < tokenIds.length; j++) tokenIds[j] = tokens[from * bs + j];
    sink({
      type: 'BlockStored',
      blockHashes: stored,
      parentBlockHash: from > 0 ? hashToBigInt(chain.hi[from - 1], chain.lo[from - 1]) : null,
      tokenIds,
      blockSize: bs,
      loraId: lora?.id ?? null,
      loraName: lora?.name ?? null,
      medium: 'GPU',
    });
  }

  /** Hash and token ids of a cached block (for event replay / debugging). */
  blockInfo(block: number): { hash: bigint; tokenIds: Uint32Array } | undefined {
    const t = this.tokens[block];
    if (this.hashed[block] !== 1 || t === null) return undefined;
    return { hash: hashToBigInt(this.hashHi[block], this.hashLo[block]), tokenIds: t };
  }

  /**
   * vLLM's reset_prefix_cache: drop all cached content (AllBlocksCleared, unless `announce`
   * is false: a restarted engine starts empty without telling anyone). Refused (false) while
   * any block is held by a request.
   */
  reset(announce = true): boolean {
    if (this.free !== this.numGpuBlocks - 1) return false;
    this.cached.clear();
    this.copies.clear();
    this.hashedCount = 0;
    this.hashed.fill(0);
    this.tokens.fill(null);
    this.ref.fill(0);
    this.rebuildFreeQueue();
    if (announce) this.onEvent?.({ type: 'AllBlocksCleared' });
    return true;
  }
}
