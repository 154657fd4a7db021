// Prefix-block hashes, as GAIE's approximate prefix index computes them: the
// routing text's UTF-8 bytes are cut into full blocks of `blockBytes`
// (block tokens × 4 characters); h0 = XXH64(model ‖ cache_salt), and each
// block i hashes to XXH64(block bytes ‖ h(i-1) as 8 little-endian bytes).
// The trailing partial block is not hashed.
//
// XXH64 comes from xxhash-wasm: measured 2.4× faster per block than the
// native @node-rs/xxhash, whose N-API call overhead dominates on 64-byte
// inputs (bench/RESULTS.md).
import xxhash from 'xxhash-wasm';

const { h64Raw } = await xxhash();

export interface BlockHashes {
  /** High and low 32 bits of each block's 64-bit hash, in prompt order. */
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly count: number;
}

const EMPTY: BlockHashes = { hi: new Uint32Array(0), lo: new Uint32Array(0), count: 0 };
const encoder = new TextEncoder();
let window = new Uint8Array(1 << 16);

/** UTF-8 of the first `limit` bytes' worth of `text`, in a reused buffer (valid until the next call). */
function encodeWindow(text: string, limit: number): Uint8Array {
  if (window.length < limit) window = new Uint8Array(Math.max(limit, window.length * 2));
  const { written } = encoder.encodeInto(text, window.subarray(0, limit));
  return window.subarray(0, written);
}

const seeds = new Map<string, bigint>();

/** XXH64(model ‖ cache_salt), cached: a pool serves few models and salts. */
export function seedHash(model: string, cacheSalt: string | undefined): bigint {
  const key = cacheSalt ? model + cacheSalt : model;
  let h = seeds.get(key);
  if (h === undefined) {
    h = h64Raw(encoder.encode(key), 0n);
    if (seeds.size > 10_000) seeds.clear();
    seeds.set(key, h);
  }
  return h;
}

/**
 * Hash up to `maxBlocks` full blocks of `text`. One UTF-8 encoding of the
 * text and one 72-byte scratch buffer: no per-block strings or allocations.
 */
export function blockHashes(text: string | Uint8Array, model: string, cacheSalt: string | undefined, blockBytes: number, maxBlocks: number): BlockHashes {
  // Encode only what can be hashed (a 10 MB prompt with a 512 KB window
  // encodes 512 KB), into a buffer reused across requests.
  const bytes = typeof text === 'string' ? encodeWindow(text, Math.min(maxBlocks * blockBytes, text.length * 3)) : text;
  const count = Math.min(Math.floor(bytes.length / blockBytes), maxBlocks);
  if (count <= 0) return EMPTY;
  const hi = new Uint32Array(count);
  const lo = new Uint32Array(count);
  const scratch = new Uint8Array(blockBytes + 8);
  const view = new DataView(scratch.buffer);
  let prev = seedHash(model, cacheSalt);
  for (let i = 0, off = 0; i < count; i++, off += blockBytes) {
    scratch.set(bytes.subarray(off, off + blockBytes));
    view.setBigUint64(blockBytes, prev, true);
    prev = h64Raw(scratch, 0n);
    hi[i] = Number(prev >> 32n);
    lo[i] = Number(prev & 0xffffffffn);
  }
  return { hi, lo, count };
}
