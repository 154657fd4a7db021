// The precise index's main table: request key → the pods holding that block,
// each on a medium tier, some only speculatively (until an expiry time).
//
// Keys live in a hash table of typed arrays with one LRU list over all keys:
// at `maxKeys` the least recently stored or looked-up key goes, with its
// holders. Each key has a short singly linked list of holders (pod, tier,
// speculative or not), newest first, at most `holdersPerKey` long: past that
// the oldest holder is dropped (llm-d's podCacheSize). A key without holders
// is freed at once. Speculative holders are also queued by expiry time so that
// expire() drops them without scanning.
//
// A lookup touches, per request block, one bucket, one key entry and its
// holders, so those fields are interleaved (a key's hash, chain and first
// holder in 16 bytes; a holder's pod, tier, flag and next in 8) to cost one
// cache line each; the LRU links and expiry times live apart.
import { grow } from './grow.ts';

/** add()'s outcomes. */
export const PRESENT = 0;
export const ADDED = 1;
export const CONFIRMED = 2;

// Key entry fields (stride 4).
const K_HI = 0;
const K_LO = 1;
const K_CHAIN = 2; // bucket chain, or free list
const K_FIRST = 3; // first holder, -1 none, FREE for a free entry
const FREE = -2;
// Holder fields (stride 2): pod << 5 | speculative << 4 | tier, and the next holder (or free list).
const H_WORD = 0;
const H_NEXT = 1;
const SPECULATIVE = 16;
const TIER_MASK = 15;

export class KeyTable {
  readonly maxKeys: number;
  readonly holdersPerKey: number;
  /** Holders dropped for capacity (key LRU or holdersPerKey). */
  evictions = 0;

  #k = new Int32Array(0);
  #prev = new Int32Array(0); // LRU, towards the most recent
  #next = new Int32Array(0); // LRU, towards the least recent
  #buckets = new Int32Array(0);
  #mask = -1;
  #used = 0;
  #free = -1;
  #size = 0;
  #mru = -1;
  #lru = -1;

  #h = new Int32Array(0);
  #expiry = new Float64Array(0); // when a speculative holder lapses
  #hUsed = 0;
  #hFree = -1;
  #holders = 0;

  // Speculative holders by expiry (a ring; entries are checked when they come due).
  #qHolder = new Int32Array(0);
  #qKey = new Int32Array(0);
  #qExpiry = new Float64Array(0);
  #qHead = 0;
  #qLength = 0;

  constructor(maxKeys: number, holdersPerKey: number) {
    this.maxKeys = maxKeys;
    this.holdersPerKey = holdersPerKey;
    this.#resizeKeys(Math.min(1024, 1 << Math.ceil(Math.log2(Math.max(2, maxKeys)))));
    this.#resizeHolders(1024);
  }

  get size(): number {
    return this.#size;
  }

  get holders(): number {
    return this.#holders;
  }

  get bytes(): number {
    return this.#k.byteLength + this.#prev.byteLength * 2 + this.#buckets.byteLength + this.#h.byteLength + this.#expiry.byteLength + this.#qHolder.byteLength * 4;
  }

  find(hi: number, lo: number): number {
    const k = this.#k;
    const h = hi | 0;
    const l = lo | 0;
    for (let e = this.#buckets[lo & this.#mask]; e >= 0; e = k[4 * e + K_CHAIN]) {
      if (k[4 * e + K_LO] === l && k[4 * e + K_HI] === h) return e;
    }
    return -1;
  }

  /** The key's entry, created if new (evicting the least recent key when full); it becomes the most recent. */
  upsert(hi: number, lo: number): number {
    let e = this.find(hi, lo);
    if (e >= 0) {
      this.touch(e);
      return e;
    }
    if (this.#size >= this.maxKeys) this.#freeKey(this.#lru, true);
    e = this.#free;
    if (e >= 0) this.#free = this.#k[4 * e + K_CHAIN];
    else {
      if (this.#used === this.#prev.length) this.#resizeKeys(this.#prev.length * 2);
      e = this.#used++;
    }
    const k = this.#k;
    const b = lo & this.#mask;
    k[4 * e + K_HI] = hi;
    k[4 * e + K_LO] = lo;
    k[4 * e + K_CHAIN] = this.#buckets[b];
    k[4 * e + K_FIRST] = -1;
    this.#buckets[b] = e;
    this.#pushMru(e);
    this.#size++;
    return e;
  }

  /** Make the key the most recently used. */
  touch(e: number): void {
    if (this.#mru === e) return;
    this.#unlinkLru(e);
    this.#pushMru(e);
  }

  firstHolder(e: number): number {
    return this.#k[4 * e + K_FIRST];
  }

  nextHolder(h: number): number {
    return this.#h[2 * h + H_NEXT];
  }

  holderPod(h: number): number {
    return this.#h[2 * h + H_WORD] >> 5;
  }

  holderTier(h: number): number {
    return this.#h[2 * h + H_WORD] & TIER_MASK;
  }

  /** 0 for a real holder, else when the speculative holder lapses. */
  holderExpiry(h: number): number {
    return (this.#h[2 * h + H_WORD] & SPECULATIVE) === 0 ? 0 : this.#expiry[h];
  }

  /**
   * Record that `pod` holds key `e` on `tier`: for real (`expiry` 0), which
   * also confirms a speculative holder of the pod, or speculatively until
   * `expiry`, which only adds when the pod has no holder for the key yet.
   */
  add(e: number, pod: number, tier: number, expiry: number): number {
    const hs = this.#h;
    let count = 0;
    let last = -1;
    let beforeLast = -1;
    for (let h = this.#k[4 * e + K_FIRST]; h >= 0; h = hs[2 * h + H_NEXT]) {
      const word = hs[2 * h + H_WORD];
      if (word >> 5 === pod) {
        if (expiry > 0) return PRESENT;
        if ((word & SPECULATIVE) !== 0) {
          hs[2 * h + H_WORD] = (pod << 5) | tier;
          return CONFIRMED;
        }
        if ((word & TIER_MASK) === tier) return PRESENT;
      }
      count++;
      beforeLast = last;
      last = h;
    }
    if (count >= this.holdersPerKey) {
      if (beforeLast >= 0) hs[2 * beforeLast + H_NEXT] = -1;
      else this.#k[4 * e + K_FIRST] = -1;
      this.#freeHolder(last);
      this.evictions++;
    }
    let h = this.#hFree;
    if (h >= 0) this.#hFree = this.#h[2 * h + H_NEXT];
    else {
      if (this.#hUsed === this.#expiry.length) this.#resizeHolders(this.#expiry.length * 2);
      h = this.#hUsed++;
    }
    this.#h[2 * h + H_WORD] = (pod << 5) | (expiry > 0 ? SPECULATIVE : 0) | tier;
    this.#h[2 * h + H_NEXT] = this.#k[4 * e + K_FIRST];
    this.#expiry[h] = expiry;
    this.#k[4 * e + K_FIRST] = h;
    this.#holders++;
    if (expiry > 0) this.#enqueue(h, e, expiry);
    return ADDED;
  }

  /** Drop the pod's real holder of key `e` on `tier`; the key goes with its last holder. */
  remove(e: number, pod: number, tier: number): boolean {
    const word = (pod << 5) | tier;
    let before = -1;
    for (let h = this.#k[4 * e + K_FIRST]; h >= 0; before = h, h = this.#h[2 * h + H_NEXT]) {
      if (this.#h[2 * h + H_WORD] !== word) continue;
      this.#unlinkHolder(e, before, h);
      return true;
    }
    return false;
  }

  /** Drop every holder of the pod, real or speculative (a scan of the whole table). */
  removePod(pod: number): number {
    let removed = 0;
    for (let e = 0; e < this.#used; e++) {
      if (this.#k[4 * e + K_FIRST] === FREE) continue;
      let before = -1;
      for (let h = this.#k[4 * e + K_FIRST]; h >= 0; ) {
        const next = this.#h[2 * h + H_NEXT];
        if (this.#h[2 * h + H_WORD] >> 5 === pod) {
          removed++;
          if (this.#unlinkHolder(e, before, h)) break; // that was the key's last holder
        } else before = h;
        h = next;
      }
    }
    return removed;
  }

  /** Drop speculative holders whose time has come; returns how many lapsed. */
  expire(now: number): number {
    let lapsed = 0;
    const mask = this.#qHolder.length - 1;
    while (this.#qLength > 0) {
      const i = this.#qHead;
      const exp = this.#qExpiry[i];
      if (exp > now) break;
      this.#qHead = (i + 1) & mask;
      this.#qLength--;
      const h = this.#qHolder[i];
      const e = this.#qKey[i];
      // Still the same speculative holder of the same key (not confirmed, removed or reused)?
      if ((this.#h[2 * h + H_WORD] & SPECULATIVE) === 0 || this.#expiry[h] !== exp || this.#k[4 * e + K_FIRST] === FREE) continue;
      let before = -1;
      let at = this.#k[4 * e + K_FIRST];
      while (at >= 0 && at !== h) {
        before = at;
        at = this.#h[2 * at + H_NEXT];
      }
      if (at !== h) continue;
      this.#unlinkHolder(e, before, h);
      lapsed++;
    }
    return lapsed;
  }

  /** Unlink holder h (after `before`, -1 when first) from key e; frees the key when it was the last. Returns whether the key went. */
  #unlinkHolder(e: number, before: number, h: number): boolean {
    const next = this.#h[2 * h + H_NEXT];
    if (before >= 0) this.#h[2 * before + H_NEXT] = next;
    else this.#k[4 * e + K_FIRST] = next;
    this.#freeHolder(h);
    if (this.#k[4 * e + K_FIRST] >= 0) return false;
    this.#freeKey(e, false);
    return true;
  }

  #freeHolder(h: number): void {
    this.#h[2 * h + H_WORD] = -1;
    this.#h[2 * h + H_NEXT] = this.#hFree;
    this.#hFree = h;
    this.#holders--;
  }

  #freeKey(e: number, evicted: boolean): void {
    const k = this.#k;
    for (let h = k[4 * e + K_FIRST]; h >= 0; ) {
      const next = this.#h[2 * h + H_NEXT];
      this.#freeHolder(h);
      if (evicted) this.evictions++;
      h = next;
    }
    this.#unlinkLru(e);
    const b = k[4 * e + K_LO] & this.#mask;
    if (this.#buckets[b] === e) this.#buckets[b] = k[4 * e + K_CHAIN];
    else {
      let q = this.#buckets[b];
      while (k[4 * q + K_CHAIN] !== e) q = k[4 * q + K_CHAIN];
      k[4 * q + K_CHAIN] = k[4 * e + K_CHAIN];
    }
    k[4 * e + K_FIRST] = FREE;
    k[4 * e + K_CHAIN] = this.#free;
    this.#free = e;
    this.#size--;
  }

  #pushMru(e: number): void {
    this.#prev[e] = -1;
    this.#next[e] = this.#mru;
    if (this.#mru >= 0) this.#prev[this.#mru] = e;
    this.#mru = e;
    if (this.#lru < 0) this.#lru = e;
  }

  #unlinkLru(e: number): void {
    const p = this.#prev[e];
    const n = this.#next[e];
    if (p >= 0) this.#next[p] = n;
    else this.#mru = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#lru = p;
  }

  #enqueue(h: number, e: number, expiry: number): void {
    let cap = this.#qHolder.length;
    if (this.#qLength === cap) {
      // Unroll the ring into arrays twice as long.
      const n = Math.max(64, cap * 2);
      const head = this.#qHead;
      const order = <T extends Int32Array | Float64Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(n);
        for (let i = 0; i < cap; i++) b[i] = a[(head + i) & (cap - 1)];
        return b;
      };
      this.#qHolder = order(this.#qHolder);
      this.#qKey = order(this.#qKey);
      this.#qExpiry = order(this.#qExpiry);
      this.#qHead = 0;
      cap = n;
    }
    const i = (this.#qHead + this.#qLength) & (cap - 1);
    this.#qHolder[i] = h;
    this.#qKey[i] = e;
    this.#qExpiry[i] = expiry;
    this.#qLength++;
  }

  #resizeKeys(n: number): void {
    this.#k = grow(this.#k, 4 * n);
    this.#prev = grow(this.#prev, n);
    this.#next = grow(this.#next, n);
    // Rebuild the buckets for the larger table (the free list is empty when the table grows).
    const k = this.#k;
    this.#buckets = new Int32Array(n).fill(-1);
    this.#mask = n - 1;
    for (let e = 0; e < this.#used; e++) {
      if (k[4 * e + K_FIRST] === FREE) continue;
      const b = k[4 * e + K_LO] & this.#mask;
      k[4 * e + K_CHAIN] = this.#buckets[b];
      this.#buckets[b] = e;
    }
  }

  #resizeHolders(n: number): void {
    this.#h = grow(this.#h, 2 * n);
    this.#expiry = grow(this.#expiry, n);
  }
}
