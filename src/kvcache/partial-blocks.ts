// Partial request blocks, for engines whose block size differs from the EPP's
// (vLLM stores blocks of 16 tokens; llm-d's sample keys blocks of 64): when an
// engine block ends inside a request block, the chain can only be continued
// by a later BlockStored if the tokens since the last request-block boundary
// are kept, with the engine blocks they came from (a request key links all of
// them, see engine-blocks.ts).
//
// One slot per partial request block, in a ring of `slots`: the oldest slot
// is reused first, so memory is fixed (allocated on first use) and an engine
// block whose slot was reused can no longer be continued (its children count
// as orphans). A slot is named by a generation number (slot = generation mod
// slots) that stays valid until the slot is reused. Slots are written once,
// when their event is indexed, and read-only afterwards: a block continued
// twice (two different continuations) copies its slot's prefix. A slot that is
// read after half the ring has gone by is renewed (copied to a fresh slot), so
// a popular branch point (a shared system prompt that does not end on a
// request-block boundary) stays continuable however old it is.
export class PartialBlocks {
  readonly slots: number;
  readonly tokensPerSlot: number;
  readonly maxContributors: number;
  #gen = 0;
  #gens = new Float64Array(0);
  #tokens = new Uint32Array(0);
  #count = new Uint8Array(0);
  #cEntry = new Int32Array(0);
  #cHi = new Uint32Array(0);
  #cLo = new Uint32Array(0);
  #cStart = new Uint16Array(0);

  /** `slots` is rounded up to a power of two; a slot holds blockSize − 1 tokens. */
  constructor(slots: number, blockSize: number, maxContributors: number) {
    this.slots = 1 << Math.ceil(Math.log2(Math.max(1, slots)));
    this.tokensPerSlot = blockSize - 1;
    this.maxContributors = maxContributors;
  }

  get bytes(): number {
    return this.#gens.byteLength + this.#tokens.byteLength + this.#count.byteLength + this.#cEntry.byteLength * 3 + this.#cStart.byteLength;
  }

  /** A fresh slot (reusing the oldest); returns its generation. */
  allocate(): number {
    if (this.#gens.length === 0) {
      const n = this.slots;
      const c = n * this.maxContributors;
      this.#gens = new Float64Array(n);
      this.#tokens = new Uint32Array(n * this.tokensPerSlot);
      this.#count = new Uint8Array(n);
      this.#cEntry = new Int32Array(c);
      this.#cHi = new Uint32Array(c);
      this.#cLo = new Uint32Array(c);
      this.#cStart = new Uint16Array(c);
    }
    const gen = ++this.#gen;
    const s = gen & (this.slots - 1);
    this.#gens[s] = gen;
    this.#count[s] = 0;
    return gen;
  }

  /** Whether `gen` still names its slot. */
  valid(gen: number): boolean {
    return gen > 0 && this.#gens.length > 0 && this.#gens[gen & (this.slots - 1)] === gen;
  }

  /** Whether the slot has lived through more than half the ring (renew it if it is still in use). */
  aging(gen: number): boolean {
    return this.#gen - gen > this.slots >> 1;
  }

  /** Copy a valid slot into a fresh one, so that a block still being continued outlives the ring; returns the new generation. */
  renew(gen: number): number {
    const from = gen & (this.slots - 1);
    const n = this.#count[from];
    const tokens = this.tokens(gen).slice();
    const c0 = from * this.maxContributors;
    const entry = this.#cEntry.slice(c0, c0 + n);
    const hi = this.#cHi.slice(c0, c0 + n);
    const lo = this.#cLo.slice(c0, c0 + n);
    const start = this.#cStart.slice(c0, c0 + n);
    const fresh = this.allocate();
    this.tokens(fresh).set(tokens);
    for (let i = 0; i < n; i++) this.addContributor(fresh, entry[i], hi[i], lo[i], start[i]);
    return fresh;
  }

  /** The slot's tokens (a view, tokensPerSlot long). */
  tokens(gen: number): Uint32Array {
    const at = (gen & (this.slots - 1)) * this.tokensPerSlot;
    return this.#tokens.subarray(at, at + this.tokensPerSlot);
  }

  /** Record an engine block (entry and hash) whose tokens start at `start` in the slot; false when full. */
  addContributor(gen: number, entry: number, hi: number, lo: number, start: number): boolean {
    const s = gen & (this.slots - 1);
    const n = this.#count[s];
    if (n >= this.maxContributors) return false;
    const i = s * this.maxContributors + n;
    this.#cEntry[i] = entry;
    this.#cHi[i] = hi;
    this.#cLo[i] = lo;
    this.#cStart[i] = start;
    this.#count[s] = n + 1;
    return true;
  }

  contributors(gen: number): number {
    return this.#count[gen & (this.slots - 1)];
  }

  #at(gen: number, i: number): number {
    return (gen & (this.slots - 1)) * this.maxContributors + i;
  }

  contributorEntry(gen: number, i: number): number {
    return this.#cEntry[this.#at(gen, i)];
  }

  contributorHi(gen: number, i: number): number {
    return this.#cHi[this.#at(gen, i)];
  }

  contributorLo(gen: number, i: number): number {
    return this.#cLo[this.#at(gen, i)];
  }

  contributorStart(gen: number, i: number): number {
    return this.#cStart[this.#at(gen, i)];
  }
}
