// Prefix-block hashes, as GAIE's approximate prefix index computes them: the
// routing text's UTF-8 bytes are cut into full blocks of `blockBytes`
// (block tokens × 4 characters); h0 = XXH64(model ‖ cache_salt), and each
// block i hashes to XXH64(block bytes ‖ h(i-1) as 8 little-endian bytes).
// The trailing partial block is not hashed.
//
// The text is encoded straight into WebAssembly memory and the whole chain
// runs in one call (xxh64-chain.ts): ~20 ns a block, against ~170 ns with
// xxhash-wasm called per block and ~285 ns with the native @node-rs/xxhash
// (bench/RESULTS.md).
import { MAX_CLIENT_STRING_LENGTH } from '../observability/bounded.ts';
import { runChain, wasmMemory, xxh64At } from './xxh64-chain.ts';

export interface BlockHashes {
  /** High and low 32 bits of each block's 64-bit hash, in prompt order. */
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly count: number;
}

const EMPTY: BlockHashes = { hi: new Uint32Array(0), lo: new Uint32Array(0), count: 0 };
const encoder = new TextEncoder();
const seeds = new Map<string, bigint>();
const align8 = (n: number) => (n + 7) & ~7;

/** XXH64(model ‖ cache_salt), cached: a pool serves few models and salts. */
export function seedHash(model: string, cacheSalt: string | undefined): bigint {
  const key = cacheSalt ? model + cacheSalt : model;
  let h = seeds.get(key);
  if (h === undefined) {
    const mem = wasmMemory(key.length * 3);
    const { written } = encoder.encodeInto(key, mem);
    h = xxh64At(0, written, 0n);
    // Only short keys are cached: a client-chosen 1 MiB model name must not be kept.
    if (key.length <= MAX_CLIENT_STRING_LENGTH) {
      if (seeds.size > 10_000) seeds.clear();
      seeds.set(key, h);
    }
  }
  return h;
}

/**
 * Hash up to `maxBlocks` full blocks of `text` (a string, its flat parts in
 * order, or its UTF-8 bytes). Only the hashable window of the text is
 * encoded, directly into WASM memory: no joined string, per-block strings,
 * copies or BigInts.
 */
export function blockHashes(text: string | readonly string[] | Uint8Array, model: string, cacheSalt: string | undefined, blockBytes: number, maxBlocks: number): BlockHashes {
  const seed = seedHash(model, cacheSalt);
  const textAt = align8(blockBytes + 8); // scratch for one block + the previous hash at 0
  const limit = Math.min(maxBlocks * blockBytes, byteBound(text));
  const outAt = align8(textAt + limit);
  let mem = wasmMemory(outAt + Math.min(maxBlocks, Math.floor(limit / blockBytes)) * 8);
  let written = 0;
  if (typeof text === 'string') written = encoder.encodeInto(text, mem.subarray(textAt, textAt + limit)).written;
  else if (text instanceof Uint8Array) {
    written = limit;
    mem.set(text.subarray(0, limit), textAt);
  } else {
    for (const part of text) {
      const r = encoder.encodeInto(part, mem.subarray(textAt + written, textAt + limit));
      written += r.written;
      // A part cut short (the window is full, or a character does not fit in what is left) ends the text.
      if (r.read < part.length) break;
    }
  }
  const count = Math.min(Math.floor(written / blockBytes), maxBlocks);
  if (count <= 0) return EMPTY;
  runChain(textAt, blockBytes, count, seed, outAt, 0);
  mem = wasmMemory(0);
  return splitHashes(new Uint32Array(mem.buffer, outAt, count * 2));
}

/** At least the UTF-8 length of the text (3 bytes per UTF-16 unit at most). */
function byteBound(text: string | readonly string[] | Uint8Array): number {
  if (typeof text === 'string') return text.length * 3;
  if (text instanceof Uint8Array) return text.length;
  let n = 0;
  for (const p of text) n += p.length * 3;
  return n;
}

/** Hashes written as (lo, hi) word pairs (the WASM chain's output) copied out as BlockHashes. */
export function splitHashes(words: Uint32Array): BlockHashes {
  const count = words.length >> 1;
  if (count === 0) return EMPTY;
  const hi = new Uint32Array(count);
  const lo = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    lo[i] = words[2 * i];
    hi[i] = words[2 * i + 1];
  }
  return { hi, lo, count };
}

/** BlockHashes as (lo, hi) word pairs, as shared state carries them: splitHashes reversed. */
export function pairHashes(h: BlockHashes): Uint32Array {
  const words = new Uint32Array(h.count * 2);
  for (let i = 0; i < h.count; i++) {
    words[2 * i] = h.lo[i];
    words[2 * i + 1] = h.hi[i];
  }
  return words;
}
