// The engine side of the precise index: per pod, each engine block hash it
// reported → where the request-key chain stands at the end of that block, on
// which tiers the pod holds it, and which request keys depend on it.
//
// - Chain state, so that a later BlockStored naming this block as its parent
//   can continue the chain: the last complete request key before the block's
//   end (or the chain seed) and how many tokens of the next, still partial,
//   request block it already covers; those tokens sit in a PartialBlocks slot
//   (only needed when the engine's and the EPP's block sizes differ).
// - Links to request keys (at most `maxLinks`), so that BlockRemoved, which
//   carries engine hashes only, can drop the pod from those keys. A request
//   key links every engine block its tokens came from: engine 16 / EPP 64
//   links 4 engine blocks to each key, engine 64 / EPP 16 one block to 4 keys.
//
// All in typed arrays; (pod, hash) → entry through one hash table. At
// `maxEntries` a CLOCK sweep evicts an entry not stored recently; `onEvict`
// runs first so the index can drop what only that entry could have removed.
import { grow } from './grow.ts';

const FREE = -1;
const PINNED = 2;

export class EngineBlocks {
  readonly maxEntries: number;
  readonly maxLinks: number;
  /** Entries evicted for capacity. */
  evictions = 0;
  readonly #onEvict: (e: number) => void;

  #hi = new Uint32Array(0);
  #lo = new Uint32Array(0);
  #pod = new Int32Array(0); // FREE when the entry is free
  #chain = new Int32Array(0); // bucket chain, or free list
  #prevHi = new Uint32Array(0);
  #prevLo = new Uint32Array(0);
  #partial = new Uint16Array(0); // tokens of the partial request block at the end
  #slot = new Float64Array(0); // PartialBlocks generation holding them, 0 none
  #tiers = new Uint16Array(0); // bit per tier
  #ref = new Uint8Array(0); // CLOCK: 1 recently stored, PINNED during an event
  #link = new Int32Array(0); // first link, -1 none
  #linkCount = new Uint8Array(0);
  #buckets = new Int32Array(0);
  #mask = -1;
  #used = 0;
  #free = -1;
  #size = 0;
  #hand = 0;

  // Links: request key (hi, lo) and the next link of the same entry (or free list).
  #lHi = new Uint32Array(0);
  #lLo = new Uint32Array(0);
  #lNext = new Int32Array(0);
  #lUsed = 0;
  #lFree = -1;

  constructor(maxEntries: number, maxLinks: number, onEvict: (e: number) => void) {
    this.maxEntries = maxEntries;
    this.maxLinks = maxLinks;
    this.#onEvict = onEvict;
    this.#resize(Math.min(1024, 1 << Math.ceil(Math.log2(Math.max(2, maxEntries)))));
    this.#resizeLinks(1024);
  }

  get size(): number {
    return this.#size;
  }

  get bytes(): number {
    const columns = [this.#hi, this.#lo, this.#pod, this.#chain, this.#prevHi, this.#prevLo, this.#partial, this.#slot, this.#tiers, this.#ref, this.#link, this.#linkCount, this.#buckets];
    let bytes = this.#lHi.byteLength * 3;
    for (const c of columns) bytes += c.byteLength;
    return bytes;
  }

  #bucket(pod: number, lo: number): number {
    return (lo ^ Math.imul(pod, 0x9e3779b1)) & this.#mask;
  }

  find(pod: number, hi: number, lo: number): number {
    for (let e = this.#buckets[this.#bucket(pod, lo)]; e >= 0; e = this.#chain[e]) {
      if (this.#lo[e] === lo && this.#hi[e] === hi && this.#pod[e] === pod) return e;
    }
    return -1;
  }

  /** Whether entry `e` is still the pod's block with this hash (entries are reused once freed). */
  is(e: number, pod: number, hi: number, lo: number): boolean {
    return this.#pod[e] === pod && this.#hi[e] === hi && this.#lo[e] === lo;
  }

  /** The pod's entry for the hash, created empty if new (evicting when full); marked recently stored. */
  upsert(pod: number, hi: number, lo: number): number {
    let e = this.find(pod, hi, lo);
    if (e >= 0) {
      if (this.#ref[e] !== PINNED) this.#ref[e] = 1;
      return e;
    }
    if (this.#size >= this.maxEntries) this.#evictOne();
    e = this.#free;
    if (e >= 0) this.#free = this.#chain[e];
    else {
      if (this.#used === this.#hi.length) this.#resize(this.#hi.length * 2);
      e = this.#used++;
    }
    this.#hi[e] = hi;
    this.#lo[e] = lo;
    this.#pod[e] = pod;
    this.#prevHi[e] = 0;
    this.#prevLo[e] = 0;
    this.#partial[e] = 0;
    this.#slot[e] = 0;
    this.#tiers[e] = 0;
    this.#ref[e] = 1;
    this.#link[e] = -1;
    this.#linkCount[e] = 0;
    const b = this.#bucket(pod, lo);
    this.#chain[e] = this.#buckets[b];
    this.#buckets[b] = e;
    this.#size++;
    return e;
  }

  pod(e: number): number {
    return this.#pod[e];
  }

  /** Keep `e` from CLOCK eviction until unpin (while an event uses it). */
  pin(e: number): void {
    this.#ref[e] = PINNED;
  }

  unpin(e: number): void {
    if (this.#ref[e] === PINNED) this.#ref[e] = 1;
  }

  prevHi(e: number): number {
    return this.#prevHi[e];
  }

  prevLo(e: number): number {
    return this.#prevLo[e];
  }

  partialLength(e: number): number {
    return this.#partial[e];
  }

  partialSlot(e: number): number {
    return this.#slot[e];
  }

  setChain(e: number, prevHi: number, prevLo: number, partialLength: number, slot: number): void {
    this.#prevHi[e] = prevHi;
    this.#prevLo[e] = prevLo;
    this.#partial[e] = partialLength;
    this.#slot[e] = slot;
  }

  tiers(e: number): number {
    return this.#tiers[e];
  }

  addTier(e: number, tier: number): void {
    this.#tiers[e] |= 1 << tier;
  }

  /** Clear the tier's bit; returns the tiers left. */
  removeTier(e: number, tier: number): number {
    return (this.#tiers[e] &= ~(1 << tier));
  }

  firstLink(e: number): number {
    return this.#link[e];
  }

  nextLink(l: number): number {
    return this.#lNext[l];
  }

  linkHi(l: number): number {
    return this.#lHi[l];
  }

  linkLo(l: number): number {
    return this.#lLo[l];
  }

  /** Whether `e` can take a link to this key (it has it, or room for it). */
  canLink(e: number, hi: number, lo: number): boolean {
    return this.#linkCount[e] < this.maxLinks || this.#hasLink(e, hi, lo);
  }

  /** Link entry `e` to a request key (once); false when it has no room left. */
  link(e: number, hi: number, lo: number): boolean {
    if (this.#hasLink(e, hi, lo)) return true;
    if (this.#linkCount[e] >= this.maxLinks) return false;
    let l = this.#lFree;
    if (l >= 0) this.#lFree = this.#lNext[l];
    else {
      if (this.#lUsed === this.#lHi.length) this.#resizeLinks(this.#lHi.length * 2);
      l = this.#lUsed++;
    }
    this.#lHi[l] = hi;
    this.#lLo[l] = lo;
    this.#lNext[l] = this.#link[e];
    this.#link[e] = l;
    this.#linkCount[e]++;
    return true;
  }

  #hasLink(e: number, hi: number, lo: number): boolean {
    for (let l = this.#link[e]; l >= 0; l = this.#lNext[l]) {
      if (this.#lLo[l] === lo && this.#lHi[l] === hi) return true;
    }
    return false;
  }

  /** Free entry `e` and its links. */
  free(e: number): void {
    for (let l = this.#link[e]; l >= 0; ) {
      const next = this.#lNext[l];
      this.#lNext[l] = this.#lFree;
      this.#lFree = l;
      l = next;
    }
    const b = this.#bucket(this.#pod[e], this.#lo[e]);
    if (this.#buckets[b] === e) this.#buckets[b] = this.#chain[e];
    else {
      let q = this.#buckets[b];
      while (this.#chain[q] !== e) q = this.#chain[q];
      this.#chain[q] = this.#chain[e];
    }
    this.#pod[e] = FREE;
    this.#ref[e] = 0;
    this.#chain[e] = this.#free;
    this.#free = e;
    this.#size--;
  }

  /** Free every entry of the pod (a scan of the whole table); returns how many. */
  removePod(pod: number): number {
    let n = 0;
    for (let e = 0; e < this.#used; e++) {
      if (this.#pod[e] !== pod) continue;
      this.free(e);
      n++;
    }
    return n;
  }

  /** CLOCK: clear the recently-stored mark of entries on the way, evict the first one without it. */
  #evictOne(): void {
    for (let steps = 2 * this.#used + 1; steps > 0; steps--) {
      const e = this.#hand;
      this.#hand = e + 1 < this.#used ? e + 1 : 0;
      if (this.#pod[e] === FREE || this.#ref[e] === PINNED) continue;
      if (this.#ref[e] === 1) {
        this.#ref[e] = 0;
        continue;
      }
      this.#onEvict(e);
      this.free(e);
      this.evictions++;
      return;
    }
  }

  #resize(n: number): void {
    this.#hi = grow(this.#hi, n);
    this.#lo = grow(this.#lo, n);
    this.#pod = grow(this.#pod, n, FREE);
    this.#chain = grow(this.#chain, n);
    this.#prevHi = grow(this.#prevHi, n);
    this.#prevLo = grow(this.#prevLo, n);
    this.#partial = grow(this.#partial, n);
    this.#slot = grow(this.#slot, n);
    this.#tiers = grow(this.#tiers, n);
    this.#ref = grow(this.#ref, n);
    this.#link = grow(this.#link, n, -1);
    this.#linkCount = grow(this.#linkCount, n);
    this.#buckets = new Int32Array(n).fill(-1);
    this.#mask = n - 1;
    for (let e = 0; e < this.#used; e++) {
      if (this.#pod[e] === FREE) continue;
      const b = this.#bucket(this.#pod[e], this.#lo[e]);
      this.#chain[e] = this.#buckets[b];
      this.#buckets[b] = e;
    }
  }

  #resizeLinks(n: number): void {
    this.#lHi = grow(this.#lHi, n);
    this.#lLo = grow(this.#lLo, n);
    this.#lNext = grow(this.#lNext, n);
  }
}
