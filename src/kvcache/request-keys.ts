// llm-epp's own block keys for precise prefix routing ("request keys"). The
// engine's block hashes cannot be reproduced from a prompt (vLLM seeds them
// with PYTHONHASHSEED and may use another block size), so both the request
// path (a tokenized prompt) and the event path (BlockStored token_ids) key
// blocks the same way, here:
//   key_-1 = keySeed(hashSeed, model, LoRA name, extra)   (extra: the cache salt)
//   key_i  = XXH64(tokens of block i as little-endian u32 ‖ key_{i-1} as 8 LE bytes)
// over blocks of the EPP's `blockSize` tokens; a trailing partial block has no key.
// The chain runs in WebAssembly in one call (src/prefix/xxh64-chain.ts): the
// token ids' bytes are copied straight into WASM memory.
import { splitHashes, type BlockHashes } from '../prefix/hash.ts';
import { runChain, wasmMemory, xxh64At } from '../prefix/xxh64-chain.ts';

/** Longest seed part (UTF-16 code units); longer ones are refused rather than grown into WASM memory. */
export const MAX_SEED_PART = 16_384;
const MAX_CACHED_SEEDS = 10_000;
const CACHEABLE_SEED_LENGTH = 512;

const EMPTY: BlockHashes = { hi: new Uint32Array(0), lo: new Uint32Array(0), count: 0 };
const encoder = new TextEncoder();
const seeds = new Map<string, bigint>();
const align8 = (n: number) => (n + 7) & ~7;

/**
 * The chain's starting value for one model, LoRA adapter and extra key (the
 * request's cache_salt; on the event path, what block 0's extra_keys hold
 * besides the LoRA name). Each part is length-prefixed, so ("ab", "c") and
 * ("a", "bc") differ; an absent LoRA or extra is the same as an empty one.
 */
export function keySeed(hashSeed: string, model: string, loraName: string | undefined, extra: string | undefined): bigint {
  const parts = [hashSeed, model, loraName ?? '', extra ?? ''];
  const cacheKey = `${hashSeed.length}:${model.length}:${parts[2].length}:${hashSeed}${model}${parts[2]}${parts[3]}`;
  const cached = seeds.get(cacheKey);
  if (cached !== undefined) return cached;
  let bytes = 0;
  for (const p of parts) {
    if (p.length > MAX_SEED_PART) throw new RangeError(`key seed part longer than ${MAX_SEED_PART} characters`);
    bytes += 4 + p.length * 3;
  }
  const mem = wasmMemory(bytes);
  const view = new DataView(mem.buffer);
  let at = 0;
  for (const p of parts) {
    const { written } = encoder.encodeInto(p, mem.subarray(at + 4));
    view.setUint32(at, written, true);
    at += 4 + written;
  }
  const seed = xxh64At(0, at, 0n);
  if (cacheKey.length <= CACHEABLE_SEED_LENGTH) {
    if (seeds.size >= MAX_CACHED_SEEDS) seeds.clear();
    seeds.set(cacheKey, seed);
  }
  return seed;
}

/**
 * Keys of the full blocks of `head ‖ tokens`, continuing the chain from
 * `prev`: the words come back as (lo, hi) pairs in a view of WASM memory that
 * the next call overwrites. `head` is the partial block a parent left over.
 */
export function chainKeys(head: Uint32Array, tokens: Uint32Array, prev: bigint, blockSize: number, maxBlocks: number): Uint32Array {
  const count = Math.min(Math.floor((head.length + tokens.length) / blockSize), maxBlocks);
  if (count <= 0) return EMPTY.lo;
  const blockBytes = blockSize * 4;
  const textAt = align8(blockBytes + 8); // scratch for one block and the previous key at 0
  const outAt = align8(textAt + count * blockBytes);
  const mem = wasmMemory(outAt + count * 8);
  const words = new Uint32Array(mem.buffer);
  const t = textAt >> 2;
  words.set(head, t);
  words.set(tokens.subarray(0, count * blockSize - head.length), t + head.length);
  runChain(textAt, blockBytes, count, prev, outAt, 0);
  return new Uint32Array(wasmMemory(0).buffer, outAt, count * 2);
}

/** Keys of up to `maxBlocks` full blocks of a prompt's token ids. */
export function requestKeys(tokens: Uint32Array, seed: bigint, blockSize: number, maxBlocks: number): BlockHashes {
  return splitHashes(chainKeys(EMPTY.lo, tokens, seed, blockSize, maxBlocks));
}
