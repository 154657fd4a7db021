// The approximate prefix index: which endpoint was sent which prefix blocks.
// One LRU of block hashes per endpoint, plus a hash table from block hash to
// the entries holding it, so a lookup costs one bucket walk per request block
// whatever the number of endpoints.
//
// Everything lives in typed arrays (struct-of-arrays, 28 bytes per entry with
// the bucket array) instead of Maps of BigInts: 128 endpoints × 31,250 blocks
// = 4M entries ≈ 112 MB, against several hundred MB for Map-based LRUs.
import type { BlockHashes } from './hash.ts';

interface PodLru {
  readonly key: string;
  readonly id: number;
  head: number; // most recently used entry, -1 when empty
  tail: number; // least recently used entry
  size: number;
  capacity: number;
}

export interface PrefixMatch {
  /** Endpoint key → number of consecutive blocks from the start it holds. */
  readonly matched: ReadonlyMap<string, number>;
  readonly total: number;
}

const INITIAL_ENTRIES = 1 << 14;

export class PrefixIndex {
  // Entry fields.
  #hi: Uint32Array;
  #lo: Uint32Array;
  #pod: Int32Array; // pod id, -1 when free
  #prev: Int32Array; // LRU list links (towards head)
  #next: Int32Array; // LRU list links (towards tail)
  #chain: Int32Array; // next entry in the same bucket, or next free entry
  #buckets: Int32Array;
  #mask: number;
  #used = 0; // high-water mark of allocated entries
  #free = -1; // free list head (via #chain)
  #size = 0;

  readonly #pods = new Map<string, PodLru>();
  #podById: (PodLru | undefined)[] = [];
  readonly #freeIds: number[] = [];
  // Lookup scratch: last matched block per pod id, stamped per lookup.
  #matchBlock = new Int32Array(64);
  #matchStamp = new Int32Array(64);
  #stamp = 0;

  /** Test hook: continue stamping from `n` (to exercise the wrap-around). */
  setStampForTest(n: number): void {
    this.#stamp = n;
  }

  constructor(initialEntries = INITIAL_ENTRIES) {
    const n = 1 << Math.ceil(Math.log2(Math.max(16, initialEntries)));
    this.#hi = new Uint32Array(n);
    this.#lo = new Uint32Array(n);
    this.#pod = new Int32Array(n);
    this.#prev = new Int32Array(n);
    this.#next = new Int32Array(n);
    this.#chain = new Int32Array(n);
    this.#buckets = new Int32Array(n).fill(-1);
    this.#mask = n - 1;
  }

  /** Entries held over all endpoints. */
  get size(): number {
    return this.#size;
  }

  get endpoints(): number {
    return this.#pods.size;
  }

  /** Bytes held by the typed arrays (for the README's growth figures). */
  get bytes(): number {
    return this.#hi.byteLength * 6 + this.#buckets.byteLength;
  }

  podSize(key: string): number {
    return this.#pods.get(key)?.size ?? 0;
  }

  /** Create the endpoint's LRU or change its capacity (evicting down to it). */
  ensureEndpoint(key: string, capacity: number): void {
    const cap = Math.max(1, Math.floor(capacity));
    let p = this.#pods.get(key);
    if (!p) {
      const id = this.#freeIds.pop() ?? this.#podById.length;
      p = { key, id, head: -1, tail: -1, size: 0, capacity: cap };
      this.#pods.set(key, p);
      this.#podById[id] = p;
      if (id >= this.#matchBlock.length) {
        const grow = (a: Int32Array) => {
          const b = new Int32Array(a.length * 2);
          b.set(a);
          return b;
        };
        this.#matchBlock = grow(this.#matchBlock);
        this.#matchStamp = grow(this.#matchStamp);
      }
      return;
    }
    p.capacity = cap;
    while (p.size > p.capacity) this.#evict(p);
  }

  hasEndpoint(key: string): boolean {
    return this.#pods.has(key);
  }

  removeEndpoint(key: string): void {
    const p = this.#pods.get(key);
    if (!p) return;
    while (p.size > 0) this.#evict(p);
    this.#pods.delete(key);
    this.#podById[p.id] = undefined;
    this.#freeIds.push(p.id);
  }

  /** Record that `key` was sent these blocks: each becomes its most recent. */
  add(key: string, hashes: BlockHashes): void {
    const p = this.#pods.get(key);
    if (!p) return;
    const { hi, lo, count } = hashes;
    for (let i = 0; i < count; i++) {
      const e = this.#find(p.id, hi[i], lo[i]);
      if (e >= 0) {
        this.#touch(p, e);
        continue;
      }
      if (p.size >= p.capacity) this.#evict(p);
      this.#insert(p, hi[i], lo[i]);
    }
  }

  /**
   * For each endpoint, the number of consecutive blocks from the first that it
   * holds. Stops as soon as no endpoint continues the prefix.
   */
  match(hashes: BlockHashes): PrefixMatch {
    const matched = new Map<string, number>();
    const { hi, lo, count } = hashes;
    if (count === 0 || this.#size === 0) return { matched, total: count };
    // Stamps live in an Int32Array: restart them before they would overflow.
    if (++this.#stamp >= 0x7fffffff) {
      this.#matchStamp.fill(0);
      this.#stamp = 1;
    }
    const stamp = this.#stamp;
    const mb = this.#matchBlock;
    const ms = this.#matchStamp;
    const chain = this.#chain;
    const ehi = this.#hi;
    const elo = this.#lo;
    const epod = this.#pod;
    let last = -1;
    for (let i = 0; i < count; i++) {
      const h = hi[i];
      const l = lo[i];
      let any = false;
      for (let e = this.#buckets[l & this.#mask]; e >= 0; e = chain[e]) {
        if (elo[e] !== l || ehi[e] !== h) continue;
        const id = epod[e];
        // Continues only if it held every earlier block.
        if (i === 0 ? true : ms[id] === stamp && mb[id] === i - 1) {
          ms[id] = stamp;
          mb[id] = i;
          any = true;
        }
      }
      if (!any) break;
      last = i;
    }
    if (last >= 0) {
      for (const p of this.#pods.values()) {
        if (ms[p.id] === stamp) matched.set(p.key, mb[p.id] + 1);
      }
    }
    return { matched, total: count };
  }

  #find(id: number, h: number, l: number): number {
    for (let e = this.#buckets[l & this.#mask]; e >= 0; e = this.#chain[e]) {
      if (this.#lo[e] === l && this.#hi[e] === h && this.#pod[e] === id) return e;
    }
    return -1;
  }

  #touch(p: PodLru, e: number): void {
    if (p.head === e) return;
    this.#unlinkLru(p, e);
    this.#pushFront(p, e);
  }

  #pushFront(p: PodLru, e: number): void {
    this.#prev[e] = -1;
    this.#next[e] = p.head;
    if (p.head >= 0) this.#prev[p.head] = e;
    p.head = e;
    if (p.tail < 0) p.tail = e;
  }

  #unlinkLru(p: PodLru, e: number): void {
    const pr = this.#prev[e];
    const nx = this.#next[e];
    if (pr >= 0) this.#next[pr] = nx;
    else p.head = nx;
    if (nx >= 0) this.#prev[nx] = pr;
    else p.tail = pr;
  }

  #insert(p: PodLru, h: number, l: number): void {
    let e = this.#free;
    if (e >= 0) this.#free = this.#chain[e];
    else {
      if (this.#used === this.#hi.length) this.#grow();
      e = this.#used++;
    }
    this.#hi[e] = h;
    this.#lo[e] = l;
    this.#pod[e] = p.id;
    const b = l & this.#mask;
    this.#chain[e] = this.#buckets[b];
    this.#buckets[b] = e;
    this.#pushFront(p, e);
    p.size++;
    this.#size++;
  }

  #evict(p: PodLru): void {
    const e = p.tail;
    if (e < 0) return;
    this.#unlinkLru(p, e);
    const b = this.#lo[e] & this.#mask;
    if (this.#buckets[b] === e) this.#buckets[b] = this.#chain[e];
    else {
      let q = this.#buckets[b];
      while (this.#chain[q] !== e) q = this.#chain[q];
      this.#chain[q] = this.#chain[e];
    }
    this.#pod[e] = -1;
    this.#chain[e] = this.#free;
    this.#free = e;
    p.size--;
    this.#size--;
  }

  #grow(): void {
    const n = this.#hi.length * 2;
    const grow32 = <T extends Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.#hi = grow32(this.#hi, (k) => new Uint32Array(k));
    this.#lo = grow32(this.#lo, (k) => new Uint32Array(k));
    this.#pod = grow32(this.#pod, (k) => new Int32Array(k));
    this.#prev = grow32(this.#prev, (k) => new Int32Array(k));
    this.#next = grow32(this.#next, (k) => new Int32Array(k));
    this.#chain = grow32(this.#chain, (k) => new Int32Array(k));
    // Rebuild the buckets for the larger table; free entries stay on the free list.
    this.#buckets = new Int32Array(n).fill(-1);
    this.#mask = n - 1;
    for (let e = 0; e < this.#used; e++) {
      if (this.#pod[e] < 0) continue;
      const b = this.#lo[e] & this.#mask;
      this.#chain[e] = this.#buckets[b];
      this.#buckets[b] = e;
    }
    // The free list was threaded through #chain; rebuild it.
    this.#free = -1;
    for (let e = this.#used - 1; e >= 0; e--) {
      if (this.#pod[e] < 0) {
        this.#chain[e] = this.#free;
        this.#free = e;
      }
    }
  }
}
