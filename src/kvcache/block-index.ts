// The precise prefix index: which pods hold which blocks, from the engines'
// own KV events (llm-d's precise-prefix-cache-producer and its kvblock index).
//
// Blocks are keyed by llm-epp's request keys (request-keys.ts), computed from
// token ids on both paths: BlockStored's token_ids here, the tokenized prompt
// on the request path, so the engine's block size and hash seed never need to
// match the EPP's. The event path continues the key chain from the parent
// engine block's state (engine-blocks.ts); an engine block that ends inside a
// request block keeps those tokens (partial-blocks.ts), so a request key
// appears once all its tokens are stored, however the engine cut them. A
// parent that is not known (events lost, or its state evicted) leaves the
// event's blocks unkeyed: they are counted as orphans and skipped.
//
// Lookup answers, per pod, how many leading blocks of a request it holds, on
// which tiers (GPU, CPU, … from the event's `medium`), and that count weighted
// by tier (llm-d's kvCacheBackendConfigs: gpu 1.0, cpu 0.8, best tier per
// block). Speculative entries (a pod was just sent these blocks) count until
// their TTL unless a BlockStored confirms them.
//
// Memory is bounded: `maxKeys` request keys (LRU over store and lookup),
// `podCacheSize` holders per key, `maxEngineBlocks` engine blocks (CLOCK), and
// a fixed ring of partial blocks. Counters are plain numbers (stats()).
//
// Limits, as in llm-d: events of KV-cache groups other than 0 (hybrid models'
// sliding-window or Mamba groups) are skipped; blocks whose extra keys carry
// content the tokens do not show (multimodal identifiers, prompt-embedding
// digests; anything besides the LoRA name, and the cache salt on block 0)
// are not keyed, since the request path cannot reproduce them.
import type { BlockHashes } from '../prefix/hash.ts';
import { EngineBlocks } from './engine-blocks.ts';
import type { BlockRemoved, BlockStored } from './events.ts';
import { ADDED, CONFIRMED, KeyTable } from './key-table.ts';
import { PartialBlocks } from './partial-blocks.ts';
import { MAX_SEED_PART, chainKeys, keySeed } from './request-keys.ts';

/** Pod ids are small integers below this, assigned by the caller per endpoint. */
export const MAX_PODS = 1 << 16;
const MAX_TIERS = 16;
const MAX_LINKS_PER_ENGINE_BLOCK = 32;
// Engine blocks one partial request block can come from: blocks of 8 tokens and more.
const contributorsFor = (blockSize: number) => Math.min(255, Math.ceil(blockSize / 8) + 1);

export interface KvBlockIndexOptions {
  /** Mixed into every key chain (llm-d's tokenProcessorConfig.hashSeed). Default ''. */
  hashSeed?: string;
  /** Tokens per request block (tokenProcessorConfig.blockSize). Default 16. */
  blockSize?: number;
  /** Request keys held over all pods (llm-d's inMemoryConfig.size). Default 1,048,576. */
  maxKeys?: number;
  /** Pods (× tiers) per key (inMemoryConfig.podCacheSize). Default 10. */
  podCacheSize?: number;
  /** Engine blocks tracked over all pods. Default 2 × maxKeys. */
  maxEngineBlocks?: number;
  /** Partial request blocks kept when engine and EPP block sizes differ. Default 16,384. */
  partialBlocks?: number;
  /** Weight per medium tier, lower-case (kvCacheBackendConfigs). Default { gpu: 1, cpu: 0.8 }. */
  tierWeights?: Readonly<Record<string, number>>;
}

export interface KvPodMatch {
  readonly pod: number;
  /** Consecutive blocks from the first that the pod holds, on any tier. */
  readonly blocks: number;
  /** Those blocks, each counted by the weight of the best tier holding it. */
  readonly weighted: number;
  /** How many of those blocks had each tier (index = tiers[]) as their best. */
  readonly byTier: Uint32Array;
}

export interface KvLookup {
  /** Blocks in the request. */
  readonly total: number;
  /** Pods holding at least the first block. */
  readonly matches: readonly KvPodMatch[];
}

export interface KvIndexStats {
  readonly keys: number;
  /** (key, pod, tier) entries. */
  readonly entries: number;
  readonly engineBlocks: number;
  /** Bytes held by the index's typed arrays. */
  readonly bytes: number;
  /** Entries added by BlockStored (or a speculative one confirmed). */
  readonly admissions: number;
  /** Entries dropped for capacity (keys, holders per key or engine blocks). */
  readonly evictions: number;
  /** Entries removed by BlockRemoved, clearPod and removePod. */
  readonly removals: number;
  readonly lookups: number;
  /** Lookups where some pod held the first block. */
  readonly hits: number;
  /** Sum over lookups of the best pod's matched blocks. */
  readonly maxPodHits: number;
  /** Stored engine blocks that could not be keyed (unknown parent or lost partial state, content beyond tokens, unknown block on a tier-only update). */
  readonly orphans: number;
  /** Request keys not indexed because an engine block had no room for another link or a contributing block was gone. */
  readonly dropped: number;
  /** BlockStored events whose token count was not blocks × block_size. */
  readonly invalid: number;
  /** Events of KV-cache groups other than 0, skipped. */
  readonly otherGroups: number;
  readonly speculativeAdded: number;
  readonly speculativeConfirmed: number;
  readonly speculativeExpired: number;
}

const positiveInt = (name: string, v: number | undefined, def: number, max = 2 ** 30): number => {
  const n = v ?? def;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new RangeError(`${name} must be an integer in [1, ${max}]`);
  return n;
};

export class KvBlockIndex {
  readonly blockSize: number;
  /** Tier names; a tier id is an index here. Unknown media count as "other". */
  readonly tiers: readonly string[];
  readonly #weights: Float64Array;
  readonly #tierIds = new Map<string, number>();
  readonly #gpu: number;
  readonly #other: number;
  readonly #hashSeed: string;
  readonly #keys: KeyTable;
  readonly #engines: EngineBlocks;
  readonly #partials: PartialBlocks;

  #admissions = 0;
  #removals = 0;
  #lookups = 0;
  #hits = 0;
  #maxPodHits = 0;
  #orphans = 0;
  #dropped = 0;
  #invalid = 0;
  #otherGroups = 0;
  #specAdded = 0;
  #specConfirmed = 0;
  #specExpired = 0;

  // Event scratch: the parent's partial tokens, its contributing engine blocks, this event's entries.
  readonly #head: Uint32Array;
  readonly #pcEntry: Int32Array;
  readonly #pcHi: Uint32Array;
  readonly #pcLo: Uint32Array;
  readonly #pcStart: Uint16Array;
  #entries = new Int32Array(64);

  // Lookup scratch, per pod id (stamped per lookup) and per candidate pod.
  #stamp = 0;
  #podStamp = new Int32Array(64);
  #podFilter = new Int32Array(64);
  #podBlocks = new Int32Array(64);
  #podCandidate = new Int32Array(64);
  #podTier = new Uint8Array(64);
  readonly #candWeighted: Float64Array;
  readonly #candTiers: Uint32Array;

  constructor(opts: KvBlockIndexOptions = {}) {
    this.blockSize = positiveInt('blockSize', opts.blockSize, 16, 4096);
    const maxKeys = positiveInt('maxKeys', opts.maxKeys, 1 << 20);
    const podCacheSize = positiveInt('podCacheSize', opts.podCacheSize, 10, 1024);
    // An event pins up to MAX_HASHES_PER_EVENT engine blocks: keep room for them.
    const maxEngine = Math.max(1 << 15, positiveInt('maxEngineBlocks', opts.maxEngineBlocks, 2 * maxKeys));
    this.#hashSeed = opts.hashSeed ?? '';
    const names: string[] = [];
    const weights: number[] = [];
    for (const [name, w] of Object.entries(opts.tierWeights ?? { gpu: 1, cpu: 0.8 })) {
      if (!Number.isFinite(w) || w < 0) throw new RangeError(`tier weight of ${JSON.stringify(name)} must be a non-negative number`);
      const lower = name.toLowerCase();
      if (names.includes(lower)) continue;
      names.push(lower);
      weights.push(w);
    }
    for (const name of ['gpu', 'other']) {
      if (!names.includes(name)) {
        names.push(name);
        weights.push(1);
      }
    }
    if (names.length > MAX_TIERS) throw new RangeError(`at most ${MAX_TIERS - 2} tiers besides gpu and other`);
    this.tiers = names;
    this.#weights = Float64Array.from(weights);
    names.forEach((n, i) => {
      this.#tierIds.set(n, i);
      this.#tierIds.set(n.toUpperCase(), i);
    });
    this.#gpu = names.indexOf('gpu');
    this.#other = names.indexOf('other');
    this.#keys = new KeyTable(maxKeys, podCacheSize);
    this.#engines = new EngineBlocks(maxEngine, MAX_LINKS_PER_ENGINE_BLOCK, (e) => this.#dropLinked(e));
    const contributors = contributorsFor(this.blockSize);
    this.#partials = new PartialBlocks(positiveInt('partialBlocks', opts.partialBlocks, 16_384, 1 << 24), this.blockSize, contributors);
    this.#pcEntry = new Int32Array(contributors);
    this.#pcHi = new Uint32Array(contributors);
    this.#pcLo = new Uint32Array(contributors);
    this.#pcStart = new Uint16Array(contributors);
    this.#head = new Uint32Array(this.blockSize);
    this.#candWeighted = new Float64Array(podCacheSize);
    this.#candTiers = new Uint32Array(podCacheSize * names.length);
  }

  /** The tier id of an event's medium (none: GPU). */
  tierOf(medium: string | null): number {
    if (medium === null) return this.#gpu;
    return this.#tierIds.get(medium) ?? this.#tierIds.get(medium.toLowerCase()) ?? this.#other;
  }

  // ---- event path ----

  /** Index a BlockStored from `pod`, which serves `model` (the topic's model name). */
  blockStored(pod: number, ev: BlockStored, model: string): void {
    checkPod(pod);
    if (ev.groupIdx !== null && ev.groupIdx > 0) {
      this.#otherGroups++;
      return;
    }
    const tier = this.tierOf(ev.medium);
    if (ev.tokenIds.length === 0) {
      this.#tierUpdate(pod, ev, tier);
      return;
    }
    const bs = ev.blockSize;
    if (ev.tokenIds.length !== ev.blockHashes.count * bs) {
      this.#invalid++;
      return;
    }
    // Blocks whose hash took in more than tokens cannot be keyed, nor can their descendants.
    let n = ev.blockHashes.count;
    let seedExtra: string | undefined;
    if (ev.extraKeys) {
      for (let j = 0; j < Math.min(n, ev.extraKeys.length); j++) {
        const x = extraBeyondLora(ev.extraKeys[j], ev.loraName);
        if (x === undefined) continue;
        if (j === 0 && ev.parentBlockHash === null) {
          seedExtra = x;
          continue;
        }
        this.#orphans += n - j;
        n = j;
        break;
      }
    }
    if (n === 0) return;

    const engines = this.#engines;
    const partials = this.#partials;
    const B = this.blockSize;
    // Where the chain starts: the seed at the root, else the parent's state.
    let prevHi: number;
    let prevLo: number;
    let plen = 0;
    let pcN = 0;
    let pcValid = true;
    let parent = -1;
    if (ev.parentBlockHash === null) {
      if (seedExtra !== undefined && seedExtra.length > MAX_SEED_PART) {
        this.#orphans += n; // a salt or extra key longer than a seed takes: nothing on the request path can match it
        return;
      }
      const seed = keySeed(this.#hashSeed, model, ev.loraName ?? undefined, seedExtra);
      prevHi = Number(seed >> 32n);
      prevLo = Number(seed & 0xffff_ffffn);
    } else {
      parent = engines.find(pod, ev.parentBlockHash.hi, ev.parentBlockHash.lo);
      if (parent < 0) {
        this.#orphans += n;
        return;
      }
      prevHi = engines.prevHi(parent);
      prevLo = engines.prevLo(parent);
      plen = engines.partialLength(parent);
      if (plen > 0) {
        let gen = engines.partialSlot(parent);
        if (!partials.valid(gen)) {
          this.#orphans += n;
          return;
        }
        if (partials.aging(gen)) {
          gen = partials.renew(gen);
          engines.setChain(parent, engines.prevHi(parent), engines.prevLo(parent), plen, gen);
        }
        this.#head.set(partials.tokens(gen).subarray(0, plen));
        for (let c = 0; c < partials.contributors(gen); c++) {
          const start = partials.contributorStart(gen, c);
          if (start >= plen) break;
          const e = partials.contributorEntry(gen, c);
          const hi = partials.contributorHi(gen, c);
          const lo = partials.contributorLo(gen, c);
          if (!engines.is(e, pod, hi, lo)) pcValid = false;
          else engines.pin(e);
          this.#pcEntry[pcN] = e;
          this.#pcHi[pcN] = hi;
          this.#pcLo[pcN] = lo;
          this.#pcStart[pcN] = start;
          pcN++;
        }
      }
      engines.pin(parent);
    }

    // This event's engine blocks.
    if (this.#entries.length < n) this.#entries = new Int32Array(Math.max(n, this.#entries.length * 2));
    const entries = this.#entries;
    const { hi: ehi, lo: elo } = ev.blockHashes;
    for (let j = 0; j < n; j++) {
      const e = engines.upsert(pod, ehi[j], elo[j]);
      engines.pin(e);
      engines.addTier(e, tier);
      entries[j] = e;
    }

    // Request keys completed by this event, each linked to every engine block it took tokens from.
    const total = plen + n * bs;
    const head = this.#head.subarray(0, plen);
    const words = chainKeys(head, ev.tokenIds.subarray(0, n * bs), (BigInt(prevHi) << 32n) | BigInt(prevLo), B, Math.floor(total / B));
    const K = words.length >> 1;
    for (let k = 0; k < K; k++) {
      const lo = words[2 * k];
      const hi = words[2 * k + 1];
      const jFirst = Math.max(0, Math.floor((k * B - plen) / bs));
      const jLast = Math.min(n - 1, Math.floor(((k + 1) * B - 1 - plen) / bs));
      let ok = k > 0 || pcValid;
      for (let c = 0; ok && k === 0 && c < pcN; c++) ok = engines.canLink(this.#pcEntry[c], hi, lo);
      for (let j = jFirst; ok && j <= jLast; j++) ok = engines.canLink(entries[j], hi, lo);
      if (!ok) {
        this.#dropped++;
        continue;
      }
      const r = this.#keys.add(this.#keys.upsert(hi, lo), pod, tier, 0);
      if (r === ADDED) this.#admissions++;
      else if (r === CONFIRMED) {
        this.#admissions++;
        this.#specConfirmed++;
      }
      if (k === 0) for (let c = 0; c < pcN; c++) engines.link(this.#pcEntry[c], hi, lo);
      for (let j = jFirst; j <= jLast; j++) engines.link(entries[j], hi, lo);
    }

    // Chain state at the end of each engine block.
    let segment = -1;
    let segmentGen = 0;
    for (let j = 0; j < n; j++) {
      const end = plen + (j + 1) * bs;
      const done = Math.floor(end / B);
      const part = end - done * B;
      let gen = 0;
      if (part > 0) {
        if (done !== segment) {
          segment = done;
          segmentGen = this.#keepPartial(done, head, ev, n, pcN);
        }
        gen = segmentGen;
      }
      if (done > 0) engines.setChain(entries[j], words[2 * done - 1], words[2 * done - 2], part, gen);
      else engines.setChain(entries[j], prevHi, prevLo, part, gen);
    }

    for (let j = 0; j < n; j++) engines.unpin(entries[j]);
    for (let c = 0; c < pcN; c++) engines.unpin(this.#pcEntry[c]);
    if (parent >= 0) engines.unpin(parent);
  }

  /**
   * Save request block `s` of this event's token stream (parent's partial
   * tokens, then the event's) up to blockSize − 1 tokens, with the engine
   * blocks it came from; returns the slot's generation, 0 when it cannot be kept.
   */
  #keepPartial(s: number, head: Uint32Array, ev: BlockStored, n: number, pcN: number): number {
    const partials = this.#partials;
    const { tokenIds: tokens, blockSize: bs } = ev;
    const { hi, lo } = ev.blockHashes;
    const B = this.blockSize;
    const plen = head.length;
    const from = s * B;
    const to = Math.min(plen + n * bs, from + B - 1);
    const gen = partials.allocate();
    const dst = partials.tokens(gen);
    for (let i = from; i < to; i++) dst[i - from] = i < plen ? head[i] : tokens[i - plen];
    if (s === 0) {
      for (let c = 0; c < pcN; c++) {
        if (!partials.addContributor(gen, this.#pcEntry[c], this.#pcHi[c], this.#pcLo[c], this.#pcStart[c])) return 0;
      }
    }
    const jFirst = Math.max(0, Math.floor((from - plen) / bs));
    const jLast = Math.min(n - 1, Math.floor((to - 1 - plen) / bs));
    for (let j = jFirst; j <= jLast; j++) {
      const start = Math.max(0, plen + j * bs - from);
      if (!partials.addContributor(gen, this.#entries[j], hi[j], lo[j], start)) return 0;
    }
    return gen;
  }

  /** A BlockStored without tokens: blocks the pod already has, now (also) on another tier. */
  #tierUpdate(pod: number, ev: BlockStored, tier: number): void {
    const engines = this.#engines;
    const { hi, lo, count } = ev.blockHashes;
    for (let j = 0; j < count; j++) {
      const e = engines.find(pod, hi[j], lo[j]);
      if (e < 0) {
        this.#orphans++;
        continue;
      }
      engines.addTier(e, tier);
      for (let l = engines.firstLink(e); l >= 0; l = engines.nextLink(l)) {
        const k = this.#keys.find(engines.linkHi(l), engines.linkLo(l));
        if (k >= 0 && this.#keys.add(k, pod, tier, 0) === ADDED) this.#admissions++;
      }
    }
  }

  /** Index a BlockRemoved from `pod`: the pod no longer holds these engine blocks on that tier. */
  blockRemoved(pod: number, ev: BlockRemoved): void {
    checkPod(pod);
    if (ev.groupIdx !== null && ev.groupIdx > 0) {
      this.#otherGroups++;
      return;
    }
    const tier = this.tierOf(ev.medium);
    const engines = this.#engines;
    const { hi, lo, count } = ev.blockHashes;
    for (let j = 0; j < count; j++) {
      const e = engines.find(pod, hi[j], lo[j]);
      if (e < 0) continue;
      for (let l = engines.firstLink(e); l >= 0; l = engines.nextLink(l)) {
        const k = this.#keys.find(engines.linkHi(l), engines.linkLo(l));
        if (k >= 0 && this.#keys.remove(k, pod, tier)) this.#removals++;
      }
      if (engines.removeTier(e, tier) === 0) engines.free(e);
    }
  }

  /** Forget everything the pod holds (AllBlocksCleared, or its state is uncertain). */
  clearPod(pod: number): void {
    checkPod(pod);
    this.#removals += this.#keys.removePod(pod);
    this.#engines.removePod(pod);
  }

  /** Forget the pod before its id is reused for another endpoint. */
  removePod(pod: number): void {
    this.clearPod(pod);
  }

  /** An engine block evicted for capacity: its keys could no longer be removed, so drop the pod from them now. */
  #dropLinked(e: number): void {
    const engines = this.#engines;
    const tiers = engines.tiers(e);
    const pod = engines.pod(e);
    for (let l = engines.firstLink(e); l >= 0; l = engines.nextLink(l)) {
      const k = this.#keys.find(engines.linkHi(l), engines.linkLo(l));
      for (let t = 0; k >= 0 && t < this.tiers.length; t++) {
        if ((tiers & (1 << t)) !== 0 && this.#keys.remove(k, pod, t)) this.#keys.evictions++;
      }
    }
  }

  // ---- request path ----

  /**
   * Speculative entries: `pod` was just sent these blocks; they count for it
   * until `now + ttlMs` unless a BlockStored confirms them first. `now` is on
   * the clock lookup() is given (performance.now() by default).
   */
  speculate(pod: number, keys: BlockHashes, ttlMs: number, now: number): void {
    checkPod(pod);
    if (!(ttlMs > 0) || !Number.isFinite(now) || now < 0) throw new RangeError('speculate needs ttlMs > 0 and a finite now ≥ 0');
    this.expire(now);
    for (let i = 0; i < keys.count; i++) {
      const k = this.#keys.upsert(keys.hi[i], keys.lo[i]);
      if (this.#keys.add(k, pod, this.#gpu, now + ttlMs) === ADDED) this.#specAdded++;
    }
  }

  /** Drop speculative entries whose TTL has passed. */
  expire(now: number): void {
    this.#specExpired += this.#keys.expire(now);
  }

  /**
   * For each pod (all, or those in `pods`), the consecutive blocks of `keys`
   * from the first that it holds. Speculative entries past their TTL at `now`
   * do not count.
   */
  lookup(keys: BlockHashes, pods?: readonly number[], now = performance.now()): KvLookup {
    this.#lookups++;
    const table = this.#keys;
    if (++this.#stamp >= 0x7fff_ffff) {
      this.#podStamp.fill(0);
      this.#podFilter.fill(0);
      this.#stamp = 1;
    }
    const stamp = this.#stamp;
    if (pods) {
      for (const p of pods) {
        checkPod(p);
        this.#ensurePods(p);
        this.#podFilter[p] = stamp;
      }
    }
    const T = this.tiers.length;
    const candidates: number[] = [];
    // The candidates are the pods holding the first block (at most podCacheSize of them).
    const first = keys.count > 0 ? table.find(keys.hi[0], keys.lo[0]) : -1;
    for (let h = first >= 0 ? table.firstHolder(first) : -1; h >= 0; h = table.nextHolder(h)) {
      const p = table.holderPod(h);
      if (pods && this.#podFilter[p] !== stamp) continue;
      const exp = table.holderExpiry(h);
      if (exp > 0 && exp <= now) continue;
      const t = table.holderTier(h);
      if (this.#podStamp[p] !== stamp) {
        this.#ensurePods(p);
        const c = candidates.length;
        candidates.push(p);
        this.#podStamp[p] = stamp;
        this.#podBlocks[p] = 0;
        this.#podCandidate[p] = c;
        this.#candWeighted[c] = 0;
        this.#candTiers.fill(0, c * T, c * T + T);
      }
      this.#advance(p, 0, t);
    }
    let i = 0;
    if (candidates.length > 0) {
      table.touch(first);
      // Then block by block while some candidate continues.
      const podStamp = this.#podStamp;
      const podBlocks = this.#podBlocks;
      for (i = 1; i < keys.count; i++) {
        const k = table.find(keys.hi[i], keys.lo[i]);
        if (k < 0) break;
        let advanced = false;
        for (let h = table.firstHolder(k); h >= 0; h = table.nextHolder(h)) {
          const p = table.holderPod(h);
          if (podStamp[p] !== stamp || podBlocks[p] < i) continue;
          const exp = table.holderExpiry(h);
          if (exp > 0 && exp <= now) continue;
          if (this.#advance(p, i, table.holderTier(h))) advanced = true;
        }
        if (!advanced) break;
        table.touch(k);
      }
    }
    if (i > 0) this.#hits++;
    this.#maxPodHits += i;
    const matches = candidates.map((p, c) => ({
      pod: p,
      blocks: this.#podBlocks[p],
      weighted: this.#candWeighted[c],
      byTier: this.#candTiers.slice(c * T, c * T + T),
    }));
    return { total: keys.count, matches };
  }

  /** Candidate `p` holds block i on tier t: extend its match, or better block i's tier. Returns whether it extended. */
  #advance(p: number, i: number, t: number): boolean {
    const c = this.#podCandidate[p];
    const w = this.#weights;
    const T = this.tiers.length;
    if (this.#podBlocks[p] === i) {
      this.#podBlocks[p] = i + 1;
      this.#podTier[p] = t;
      this.#candTiers[c * T + t]++;
      this.#candWeighted[c] += w[t];
      return true;
    }
    const was = this.#podTier[p];
    if (this.#podBlocks[p] === i + 1 && w[t] > w[was]) {
      this.#candTiers[c * T + was]--;
      this.#candTiers[c * T + t]++;
      this.#candWeighted[c] += w[t] - w[was];
      this.#podTier[p] = t;
    }
    return false;
  }

  stats(): KvIndexStats {
    return {
      keys: this.#keys.size,
      entries: this.#keys.holders,
      engineBlocks: this.#engines.size,
      bytes: this.#keys.bytes + this.#engines.bytes + this.#partials.bytes,
      admissions: this.#admissions,
      evictions: this.#keys.evictions,
      removals: this.#removals,
      lookups: this.#lookups,
      hits: this.#hits,
      maxPodHits: this.#maxPodHits,
      orphans: this.#orphans,
      dropped: this.#dropped,
      invalid: this.#invalid,
      otherGroups: this.#otherGroups,
      speculativeAdded: this.#specAdded,
      speculativeConfirmed: this.#specConfirmed,
      speculativeExpired: this.#specExpired,
    };
  }

  #ensurePods(p: number): void {
    if (p < this.#podStamp.length) return;
    const n = Math.min(MAX_PODS, 1 << Math.ceil(Math.log2(p + 1)));
    const widen = <A extends Int32Array | Uint8Array>(a: A): A => {
      const b = new (a.constructor as new (n: number) => A)(n);
      b.set(a);
      return b;
    };
    this.#podStamp = widen(this.#podStamp);
    this.#podFilter = widen(this.#podFilter);
    this.#podBlocks = widen(this.#podBlocks);
    this.#podCandidate = widen(this.#podCandidate);
    this.#podTier = widen(this.#podTier);
  }
}

function checkPod(pod: number): void {
  if (!Number.isInteger(pod) || pod < 0 || pod >= MAX_PODS) throw new RangeError(`pod id must be an integer in [0, ${MAX_PODS})`);
}

/** A block's extra keys without the LoRA name (already in the seed), joined; undefined when nothing is left. */
function extraBeyondLora(keys: readonly string[] | null, loraName: string | null): string | undefined {
  if (keys === null || keys.length === 0) return undefined;
  const i = loraName === null ? -1 : keys.indexOf(loraName);
  if (i >= 0 && keys.length === 1) return undefined;
  const rest = i >= 0 ? keys.filter((_, j) => j !== i) : keys;
  return rest.join('\u0000');
}
