// The precise prefix index: BlockStored → lookup, BlockRemoved, clears,
// engine and EPP block sizes that differ (partial blocks, links to every
// contributing engine block), orphans, capacity eviction, speculative entries
// and the per-tier breakdown.
import { describe, expect, it } from 'vitest';
import { KvBlockIndex, type KvLookup } from '../src/kvcache/block-index.ts';
import { keySeed, requestKeys } from '../src/kvcache/request-keys.ts';
import { engineHashes, offloaded, randomTokens, removed, stored } from './helpers/kv-engine.ts';

const MODEL = 'm';
const keysOf = (tokens: Uint32Array, blockSize = 16) => requestKeys(tokens, keySeed('', MODEL, undefined, undefined), blockSize, 1 << 20);
const blocksOf = (l: KvLookup, pod: number) => l.matches.find((m) => m.pod === pod)?.blocks ?? 0;
const matchOf = (l: KvLookup, pod: number) => l.matches.find((m) => m.pod === pod);

describe('KvBlockIndex: stored and removed blocks', () => {
  const prompt = randomTokens(16 * 20, 1);

  it('matches the consecutive blocks each pod holds, and only the pods asked for', () => {
    const idx = new KvBlockIndex();
    idx.blockStored(0, stored(prompt, 16, 0, 20), MODEL);
    idx.blockStored(1, stored(prompt, 16, 0, 8), MODEL);
    // Pod 2 holds another prompt that shares the first 4 blocks.
    const other = prompt.slice();
    other.fill(7, 4 * 16);
    idx.blockStored(2, stored(other, 16, 0, 20), MODEL);
    const l = idx.lookup(keysOf(prompt));
    expect(l.total).toBe(20);
    expect([blocksOf(l, 0), blocksOf(l, 1), blocksOf(l, 2)]).toEqual([20, 8, 4]);
    const only = idx.lookup(keysOf(prompt), [1, 3]);
    expect(only.matches.map((m) => m.pod)).toEqual([1]);
    expect(idx.lookup(keysOf(randomTokens(64, 2))).matches).toEqual([]);
    expect(idx.stats()).toMatchObject({ lookups: 3, hits: 2, maxPodHits: 20 + 8, admissions: 48 });
  });

  it('drops a removed block, which cuts the pod’s prefix there', () => {
    const idx = new KvBlockIndex();
    const hashes = engineHashes(prompt, 16);
    idx.blockStored(0, stored(prompt, 16, 0, 20), MODEL);
    idx.blockStored(1, stored(prompt, 16, 0, 20), MODEL);
    idx.blockRemoved(0, removed([hashes[6], hashes[15]]));
    const l = idx.lookup(keysOf(prompt));
    expect([blocksOf(l, 0), blocksOf(l, 1)]).toEqual([6, 20]);
    expect(idx.stats()).toMatchObject({ removals: 2, engineBlocks: 38 });
    // A hash the pod never reported, or another pod's: nothing happens.
    idx.blockRemoved(2, removed([hashes[0]]));
    expect(blocksOf(idx.lookup(keysOf(prompt)), 1)).toBe(20);
  });

  it('forgets a pod on AllBlocksCleared (clearPod) and removePod, leaving the others', () => {
    const idx = new KvBlockIndex();
    for (const pod of [0, 1, 2]) idx.blockStored(pod, stored(prompt, 16, 0, 20), MODEL);
    idx.clearPod(1);
    idx.removePod(2);
    const l = idx.lookup(keysOf(prompt));
    expect(l.matches.map((m) => m.pod)).toEqual([0]);
    expect(idx.stats()).toMatchObject({ keys: 20, entries: 20, engineBlocks: 20, removals: 40 });
    idx.clearPod(0);
    expect(idx.stats()).toMatchObject({ keys: 0, entries: 0, engineBlocks: 0 });
    // A cleared pod's children are orphans until it stores a chain root again.
    idx.blockStored(0, stored(prompt, 16, 10, 5), MODEL);
    expect(idx.stats().orphans).toBe(5);
  });

  it('skips blocks whose parent it does not know (out of order or lost events) as orphans', () => {
    const idx = new KvBlockIndex();
    idx.blockStored(0, stored(prompt, 16, 5, 5), MODEL); // before its parent
    idx.blockStored(0, stored(prompt, 16, 0, 5), MODEL);
    expect(blocksOf(idx.lookup(keysOf(prompt)), 0)).toBe(5);
    idx.blockStored(0, stored(prompt, 16, 5, 5), MODEL); // re-sent in order: indexed
    expect(blocksOf(idx.lookup(keysOf(prompt)), 0)).toBe(10);
    expect(idx.stats().orphans).toBe(5);
  });

  it('counts and skips events it cannot use: token count mismatch, other KV groups, content beyond tokens', () => {
    const idx = new KvBlockIndex();
    idx.blockStored(0, { ...stored(prompt, 16, 0, 4), tokenIds: prompt.slice(0, 63) }, MODEL);
    idx.blockStored(0, stored(prompt, 16, 0, 4, { groupIdx: 1 }), MODEL);
    idx.blockRemoved(0, { ...removed([]), groupIdx: 2 });
    expect(idx.stats()).toMatchObject({ keys: 0, invalid: 1, otherGroups: 2 });
    // A multimodal identifier in block 2's extra keys: blocks 2.. cannot be keyed.
    idx.blockStored(0, stored(prompt, 16, 0, 6, { extraKeys: [null, null, ['mm-hash-1'], ['mm-hash-1'], null, null] }), MODEL);
    expect(blocksOf(idx.lookup(keysOf(prompt)), 0)).toBe(2);
    expect(idx.stats().orphans).toBe(4);
    // Block 0's extra keys longer than a key seed takes: the chain cannot start.
    const long = Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(1000, 'x'));
    idx.blockStored(1, stored(prompt, 16, 0, 3, { extraKeys: [long, null, null] }), MODEL);
    expect(idx.stats().orphans).toBe(7);
  });

  it('rejects pod ids outside [0, MAX_PODS)', () => {
    const idx = new KvBlockIndex();
    expect(() => idx.blockStored(-1, stored(prompt, 16, 0, 1), MODEL)).toThrow(RangeError);
    expect(() => idx.lookup(keysOf(prompt), [1.5])).toThrow(RangeError);
  });
});

describe('KvBlockIndex: engine block size ≠ EPP block size', () => {
  const prompt = randomTokens(16 * 40, 3);

  it('engine 16 / EPP 64: a key appears when its 4th engine block is stored, in any later event', () => {
    const idx = new KvBlockIndex({ blockSize: 64 });
    const keys = keysOf(prompt, 64);
    idx.blockStored(0, stored(prompt, 16, 0, 3), MODEL);
    expect(idx.stats().keys).toBe(0);
    idx.blockStored(0, stored(prompt, 16, 3, 1), MODEL);
    expect(blocksOf(idx.lookup(keys), 0)).toBe(1);
    idx.blockStored(0, stored(prompt, 16, 4, 6), MODEL);
    idx.blockStored(0, stored(prompt, 16, 10, 2), MODEL);
    expect(blocksOf(idx.lookup(keys), 0)).toBe(3);
  });

  it('engine 16 / EPP 64: removing any engine block of a key drops the key, also one stored in an earlier event', () => {
    const idx = new KvBlockIndex({ blockSize: 64 });
    const hashes = engineHashes(prompt, 16);
    idx.blockStored(0, stored(prompt, 16, 0, 6), MODEL); // key 1 is partial: blocks 4, 5
    idx.blockStored(0, stored(prompt, 16, 6, 10), MODEL); // completes key 1 with blocks 6, 7
    const keys = keysOf(prompt, 64);
    expect(blocksOf(idx.lookup(keys), 0)).toBe(4);
    idx.blockRemoved(0, removed([hashes[5]])); // from the first event, inside key 1
    expect(blocksOf(idx.lookup(keys), 0)).toBe(1);
    idx.blockRemoved(0, removed([hashes[0]]));
    expect(blocksOf(idx.lookup(keys), 0)).toBe(0);
  });

  it('engine 64 / EPP 16: one engine block feeds 4 keys, and its removal drops all 4', () => {
    const idx = new KvBlockIndex({ blockSize: 16 });
    const hashes = engineHashes(prompt, 64);
    idx.blockStored(0, stored(prompt, 64, 0, 10, { hashes }), MODEL);
    expect(blocksOf(idx.lookup(keysOf(prompt)), 0)).toBe(40);
    idx.blockRemoved(0, removed([hashes[3]]));
    expect(blocksOf(idx.lookup(keysOf(prompt)), 0)).toBe(12);
    expect(idx.stats().keys).toBe(36);
  });

  it('continues two different children of one partial parent independently', () => {
    const idx = new KvBlockIndex({ blockSize: 64 });
    const a = prompt.slice(0, 128);
    const b = prompt.slice(0, 128);
    b.fill(5, 96); // shares engine blocks 0..5 (96 tokens) with a
    idx.blockStored(0, stored(a, 16, 0, 8), MODEL);
    idx.blockStored(0, stored(b, 16, 6, 2), MODEL); // parent: block 5, in the middle of key 1
    expect(blocksOf(idx.lookup(keysOf(a, 64)), 0)).toBe(2);
    expect(blocksOf(idx.lookup(keysOf(b, 64)), 0)).toBe(2);
  });

  it('keeps a partial state that is still being continued, and loses one once its ring slot is reused', () => {
    // A slot read when more than half the ring (8 slots) has gone by is renewed.
    const idx = new KvBlockIndex({ blockSize: 64, partialBlocks: 16 });
    const root = prompt.slice(0, 16);
    idx.blockStored(0, stored(root, 16, 0, 1), MODEL); // partial: 16 of 64 tokens
    for (let i = 0; i < 10; i++) {
      // Other partial blocks turn the ring over …
      for (let f = 0; f < 3; f++) idx.blockStored(1, stored(randomTokens(16, 100 + 3 * i + f), 16, 0, 1), MODEL);
      // … while the root keeps getting new continuations (a shared system prompt).
      const child = new Uint32Array(64);
      child.set(root);
      child.set(randomTokens(48, 500 + i), 16);
      idx.blockStored(0, stored(child, 16, 1, 3), MODEL);
      expect(blocksOf(idx.lookup(keysOf(child, 64)), 0)).toBe(1);
    }
    expect(idx.stats().orphans).toBe(0);
    // Not continued while the ring turns over: lost.
    const lone = randomTokens(32, 900);
    idx.blockStored(0, stored(lone, 16, 0, 1), MODEL);
    for (let f = 0; f < 16; f++) idx.blockStored(1, stored(randomTokens(16, 1000 + f), 16, 0, 1), MODEL);
    idx.blockStored(0, stored(lone, 16, 1, 1), MODEL);
    expect(idx.stats().orphans).toBe(1);
  });
});

describe('KvBlockIndex: capacity', () => {
  it('evicts the least recently stored or looked-up keys at maxKeys', () => {
    const idx = new KvBlockIndex({ maxKeys: 12 });
    const p = [randomTokens(64, 11), randomTokens(64, 12), randomTokens(64, 13), randomTokens(64, 14)];
    for (let i = 0; i < 3; i++) idx.blockStored(0, stored(p[i], 16, 0, 4), MODEL);
    idx.lookup(keysOf(p[0])); // p[0] is now more recent than p[1]
    idx.blockStored(0, stored(p[3], 16, 0, 4), MODEL);
    const l = p.map((t) => blocksOf(idx.lookup(keysOf(t)), 0));
    expect(l).toEqual([4, 0, 4, 4]);
    expect(idx.stats()).toMatchObject({ keys: 12, evictions: 4 });
  });

  it('keeps at most podCacheSize pods per key, dropping the oldest', () => {
    const idx = new KvBlockIndex({ podCacheSize: 3 });
    const t = randomTokens(32, 21);
    for (const pod of [5, 6, 7, 8]) idx.blockStored(pod, stored(t, 16, 0, 2), MODEL);
    expect(idx.lookup(keysOf(t)).matches.map((m) => m.pod).sort()).toEqual([6, 7, 8]);
    expect(idx.stats()).toMatchObject({ entries: 6, evictions: 2 });
  });

  it('evicts engine blocks past maxEngineBlocks and drops the keys only they could have removed', () => {
    const idx = new KvBlockIndex({ maxEngineBlocks: 1 << 15, maxKeys: 1 << 17 });
    const first = randomTokens(16 * 16, 31);
    idx.blockStored(0, stored(first, 16, 0, 16), MODEL);
    for (let i = 0; i < 2100; i++) idx.blockStored(1, stored(randomTokens(256, 1000 + i), 16, 0, 16), MODEL);
    const s = idx.stats();
    expect(s.engineBlocks).toBeLessThanOrEqual(1 << 15);
    expect(s.evictions).toBeGreaterThan(0);
    // The oldest pod's blocks went first, and their keys with them.
    expect(blocksOf(idx.lookup(keysOf(first)), 0)).toBe(0);
    expect(s.keys).toBe(s.entries);
  });

  it('stays within maxKeys however much is stored, and reports its bytes', () => {
    const idx = new KvBlockIndex({ maxKeys: 1000 });
    for (let i = 0; i < 500; i++) idx.blockStored(i % 7, stored(randomTokens(256, i), 16, 0, 16), MODEL);
    const s = idx.stats();
    expect(s.keys).toBe(1000);
    expect(s.bytes).toBeGreaterThan(0);
    expect(s.bytes).toBeLessThan(1 << 22);
  });
});

describe('KvBlockIndex: speculative entries', () => {
  const t = randomTokens(16 * 8, 41);

  it('count for the pod until their TTL, then lapse', () => {
    const idx = new KvBlockIndex();
    idx.speculate(3, keysOf(t), 2000, 1000);
    expect(blocksOf(idx.lookup(keysOf(t), undefined, 2999), 3)).toBe(8);
    expect(blocksOf(idx.lookup(keysOf(t), undefined, 3000), 3)).toBe(0);
    idx.expire(3000);
    expect(idx.stats()).toMatchObject({ speculativeAdded: 8, speculativeExpired: 8, keys: 0, entries: 0 });
  });

  it('become real when a BlockStored confirms them', () => {
    const idx = new KvBlockIndex();
    idx.speculate(3, keysOf(t), 2000, 0);
    idx.blockStored(3, stored(t, 16, 0, 5), MODEL);
    idx.expire(10_000);
    expect(blocksOf(idx.lookup(keysOf(t), undefined, 10_000), 3)).toBe(5);
    expect(idx.stats()).toMatchObject({ speculativeConfirmed: 5, speculativeExpired: 3, entries: 5 });
  });

  it('are not added for a pod that already holds the block', () => {
    const idx = new KvBlockIndex();
    idx.blockStored(3, stored(t, 16, 0, 8), MODEL);
    idx.speculate(3, keysOf(t), 2000, 0);
    expect(idx.stats()).toMatchObject({ speculativeAdded: 0, entries: 8 });
    expect(() => idx.speculate(3, keysOf(t), 0, 0)).toThrow(RangeError);
  });
});

describe('KvBlockIndex: tiers', () => {
  const t = randomTokens(16 * 10, 51);

  it('breaks a match down by the best tier per block, weighted gpu 1.0 / cpu 0.8', () => {
    const idx = new KvBlockIndex();
    expect(idx.tiers).toEqual(['gpu', 'cpu', 'other']);
    const hashes = engineHashes(t, 16);
    idx.blockStored(0, stored(t, 16, 0, 10), MODEL);
    idx.blockStored(0, offloaded(hashes.slice(0, 6), 'CPU'), MODEL); // blocks 0..5 also on CPU
    idx.blockRemoved(0, removed(hashes.slice(2, 10))); // GPU keeps blocks 0, 1 only
    const m = matchOf(idx.lookup(keysOf(t)), 0);
    expect(m?.blocks).toBe(6);
    expect(Array.from(m?.byTier ?? [])).toEqual([2, 4, 0]);
    expect(m?.weighted).toBeCloseTo(2 + 4 * 0.8);
    // CPU loses them too: the engine blocks 2..5 are gone for good.
    idx.blockRemoved(0, removed(hashes.slice(2, 6), 'CPU'));
    expect(blocksOf(idx.lookup(keysOf(t)), 0)).toBe(2);
    expect(idx.stats().engineBlocks).toBe(2);
  });

  it('takes configured weights, maps unknown media to "other" and a missing medium to gpu', () => {
    const idx = new KvBlockIndex({ tierWeights: { GPU: 1, cpu: 0.5, disk: 0.25 } });
    expect(idx.tiers).toEqual(['gpu', 'cpu', 'disk', 'other']);
    expect([idx.tierOf(null), idx.tierOf('CPU'), idx.tierOf('Disk'), idx.tierOf('tape')]).toEqual([0, 1, 2, 3]);
    idx.blockStored(0, stored(t, 16, 0, 2, { medium: 'disk' }), MODEL);
    idx.blockStored(1, stored(t, 16, 0, 2, { medium: 'tape' }), MODEL);
    const l = idx.lookup(keysOf(t));
    expect(matchOf(l, 0)?.weighted).toBeCloseTo(0.5);
    expect(matchOf(l, 1)?.weighted).toBeCloseTo(2);
    expect(() => new KvBlockIndex({ tierWeights: { gpu: -1 } })).toThrow(RangeError);
  });
});
