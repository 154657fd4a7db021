// Decoding of vLLM's KV-event batches (vllm/distributed/kv_events.py, the
// msgpack payload of a ZMQ message) into typed events for the precise index.
//
// Accepted shapes, since vLLM changed them over time:
// - the batch as [ts, events, data_parallel_rank] or as a map with those names;
// - each event as a positional array with the tag first (vLLM ≤ 0.23) or as a
//   map with the tag under "type" (vLLM ≥ 0.24, PR #42892), fields left out
//   when they hold their default;
// - block hashes as integers (int64 or uint64 on the wire, whichever sign) or
//   as digest bytes, of which the last 8 are read big-endian (as llm-d does).
// Fields this decoder does not know are ignored and events of unknown types
// are skipped and counted, so newer engines do not break it. Anything else
// malformed, or over the bounds below, is a KvEventDecodeError that names the
// problem but never quotes the payload.
//
// Hashes come out as 32-bit halves in typed arrays and token ids as a
// Uint32Array: no BigInt survives decoding. @msgpack/msgpack does the msgpack
// parsing, with its own length limits so that no header can make it allocate
// past them: bench/kv-events.bench.ts measured it 5–10 % faster than msgpackr
// on vLLM-like batches in both encodings (bench/RESULTS.md).
import { Decoder } from '@msgpack/msgpack';
import type { BlockHashes } from '../prefix/hash.ts';

export const MAX_EVENTS_PER_BATCH = 4096;
export const MAX_HASHES_PER_EVENT = 16_384;
export const MAX_TOKENS_PER_EVENT = 1 << 20;
export const MAX_BLOCK_SIZE = 1 << 16;
/** Longest medium or LoRA name, and longest extra key element once written as a string. */
export const MAX_NAME_LENGTH = 1024;
/** Elements of one block's extra keys. */
export const MAX_EXTRA_KEYS_PER_BLOCK = 64;
const MAX_HASH_BYTES = 64;

/** A 64-bit engine block hash as its high and low 32 bits. */
export interface EngineHash {
  readonly hi: number;
  readonly lo: number;
}

export interface BlockStored {
  readonly type: 'BlockStored';
  readonly blockHashes: BlockHashes;
  readonly parentBlockHash: EngineHash | null;
  /** The stored blocks' tokens, blockHashes.count × blockSize of them (empty for a tier-only update). */
  readonly tokenIds: Uint32Array;
  /** The engine's block size, in tokens. */
  readonly blockSize: number;
  readonly loraId: number | null;
  readonly medium: string | null;
  readonly loraName: string | null;
  /**
   * Per block, the elements vLLM mixed into its hash besides tokens (LoRA
   * name, multimodal identifiers, cache_salt on block 0, prompt-embedding
   * digests), each written as a string: text as is, integers in decimal,
   * bytes in hex, tuples as [a,b].
   */
  readonly extraKeys: readonly (readonly string[] | null)[] | null;
  readonly groupIdx: number | null;
}

export interface BlockRemoved {
  readonly type: 'BlockRemoved';
  readonly blockHashes: BlockHashes;
  readonly medium: string | null;
  readonly groupIdx: number | null;
}

export interface AllBlocksCleared {
  readonly type: 'AllBlocksCleared';
}

export type KvEvent = BlockStored | BlockRemoved | AllBlocksCleared;

export interface KvEventBatch {
  /** The engine's wall-clock time of the batch, in seconds. */
  readonly ts: number;
  readonly events: readonly KvEvent[];
  readonly dataParallelRank: number | null;
  /** Events of types this decoder does not know, skipped. */
  readonly unknown: number;
}

export class KvEventDecodeError extends Error {
  constructor(reason: string) {
    super(`malformed KV event batch: ${reason}`);
    this.name = 'KvEventDecodeError';
  }
}

function fail(reason: string): never {
  throw new KvEventDecodeError(reason);
}

// Maps become objects, 64-bit integers BigInts (never lossy numbers).
const decoder = new Decoder({
  useBigInt64: true,
  maxArrayLength: MAX_TOKENS_PER_EVENT,
  maxMapLength: 256,
  maxStrLength: 1 << 16,
  maxBinLength: 1 << 16,
  maxExtLength: 1 << 16,
});

/** Decode one msgpack KVEventBatch payload. */
export function decodeKvEventBatch(payload: Uint8Array): KvEventBatch {
  if (payload.length === 0) fail('empty payload');
  let root: unknown;
  try {
    root = decoder.decode(payload);
  } catch {
    fail('not valid msgpack');
  }
  return batchFromDecoded(root);
}

type Fields = Record<string, unknown>;
const isMap = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/**
 * The typed batch from an already decoded msgpack value (what decodeKvEventBatch
 * does after parsing; the benchmark feeds it msgpackr's output to compare).
 */
export function batchFromDecoded(root: unknown): KvEventBatch {
  let ts: unknown;
  let rawEvents: unknown;
  let rank: unknown;
  if (Array.isArray(root)) [ts, rawEvents, rank] = root;
  else if (isMap(root)) ({ ts, events: rawEvents, data_parallel_rank: rank } = root);
  else fail('batch is neither an array nor a map');
  if (typeof ts !== 'number') fail('ts is not a number');
  if (!Array.isArray(rawEvents)) fail('events is not an array');
  if (rawEvents.length > MAX_EVENTS_PER_BATCH) fail(`more than ${MAX_EVENTS_PER_BATCH} events`);
  const events: KvEvent[] = [];
  let unknown = 0;
  for (const raw of rawEvents) {
    const ev = decodeEvent(raw);
    if (ev) events.push(ev);
    else unknown++;
  }
  return { ts, events, dataParallelRank: optionalInt(rank, 'data_parallel_rank'), unknown };
}

function decodeEvent(raw: unknown): KvEvent | undefined {
  if (Array.isArray(raw)) {
    const tag = raw[0];
    if (typeof tag !== 'string') fail('event tag is not a string');
    switch (tag) {
      case 'BlockStored':
        if (raw.length < 5) fail('BlockStored has fewer than 5 fields');
        return blockStored(raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9]);
      case 'BlockRemoved':
        if (raw.length < 2) fail('BlockRemoved has no block_hashes');
        return blockRemoved(raw[1], raw[2], raw[3]);
      case 'AllBlocksCleared':
        return { type: 'AllBlocksCleared' };
      default:
        return undefined;
    }
  }
  if (!isMap(raw)) fail('event is neither an array nor a map');
  const tag = raw.type;
  if (typeof tag !== 'string') fail('event type is not a string');
  switch (tag) {
    case 'BlockStored':
      return blockStored(raw.block_hashes, raw.parent_block_hash, raw.token_ids, raw.block_size, raw.lora_id, raw.medium, raw.lora_name, raw.extra_keys, raw.group_idx);
    case 'BlockRemoved':
      return blockRemoved(raw.block_hashes, raw.medium, raw.group_idx);
    case 'AllBlocksCleared':
      return { type: 'AllBlocksCleared' };
    default:
      return undefined;
  }
}

function blockStored(
  hashes: unknown,
  parent: unknown,
  tokens: unknown,
  blockSize: unknown,
  loraId: unknown,
  medium: unknown,
  loraName: unknown,
  extraKeys: unknown,
  groupIdx: unknown,
): BlockStored {
  const blockHashes = hashList(hashes);
  let parentBlockHash: EngineHash | null = null;
  if (parent !== null && parent !== undefined) {
    hashWords(parent, HASH_SCRATCH, 0);
    parentBlockHash = { hi: HASH_SCRATCH[0], lo: HASH_SCRATCH[1] };
  }
  const size = optionalInt(blockSize, 'block_size');
  if (size === null || size < 1 || size > MAX_BLOCK_SIZE) fail(`block_size is not an integer in [1, ${MAX_BLOCK_SIZE}]`);
  return {
    type: 'BlockStored',
    blockHashes,
    parentBlockHash,
    tokenIds: tokenList(tokens),
    blockSize: size,
    loraId: optionalInt(loraId, 'lora_id'),
    medium: optionalName(medium, 'medium'),
    loraName: optionalName(loraName, 'lora_name'),
    extraKeys: extraKeyList(extraKeys),
    groupIdx: optionalInt(groupIdx, 'group_idx'),
  };
}

function blockRemoved(hashes: unknown, medium: unknown, groupIdx: unknown): BlockRemoved {
  return { type: 'BlockRemoved', blockHashes: hashList(hashes), medium: optionalName(medium, 'medium'), groupIdx: optionalInt(groupIdx, 'group_idx') };
}

const HASH_SCRATCH = new Uint32Array(2);
const TWO_32 = 0x1_0000_0000;
const MIN_INT64 = -(1n << 63n);
const TWO_64 = 1n << 64n;
const LOW_32 = 0xffff_ffffn;

/** Write a wire hash's high and low words at out[at], out[at + 1]. */
function hashWords(v: unknown, out: Uint32Array, at: number): void {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) fail('block hash is not an integer');
    out[at] = Math.floor(v / TWO_32) >>> 0;
    out[at + 1] = v >>> 0;
  } else if (typeof v === 'bigint') {
    if (v < MIN_INT64 || v >= TWO_64) fail('block hash is outside 64 bits');
    const u = v < 0n ? v + TWO_64 : v;
    out[at] = Number(u >> 32n);
    out[at + 1] = Number(u & LOW_32);
  } else if (v instanceof Uint8Array) {
    const n = v.length;
    if (n === 0 || n > MAX_HASH_BYTES) fail(`block hash bytes are not 1 to ${MAX_HASH_BYTES} long`);
    let hi = 0;
    let lo = 0;
    for (let i = Math.max(0, n - 8); i < n; i++) {
      hi = ((hi << 8) | (lo >>> 24)) >>> 0;
      lo = ((lo << 8) | v[i]) >>> 0;
    }
    out[at] = hi;
    out[at + 1] = lo;
  } else {
    fail('block hash is neither an integer nor bytes');
  }
}

function hashList(raw: unknown): BlockHashes {
  if (!Array.isArray(raw)) fail('block_hashes is not an array');
  const count = raw.length;
  if (count > MAX_HASHES_PER_EVENT) fail(`more than ${MAX_HASHES_PER_EVENT} block hashes`);
  const hi = new Uint32Array(count);
  const lo = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    hashWords(raw[i], HASH_SCRATCH, 0);
    hi[i] = HASH_SCRATCH[0];
    lo[i] = HASH_SCRATCH[1];
  }
  return { hi, lo, count };
}

function tokenList(raw: unknown): Uint32Array {
  if (!Array.isArray(raw)) fail('token_ids is not an array');
  const n = raw.length;
  if (n > MAX_TOKENS_PER_EVENT) fail(`more than ${MAX_TOKENS_PER_EVENT} token ids`);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const t = raw[i];
    if (typeof t !== 'number' || t >>> 0 !== t) fail('token id is not a 32-bit unsigned integer');
    out[i] = t;
  }
  return out;
}

/** A small non-negative integer, however the encoder wrote it (a BigInt when as int64/uint64). */
function optionalInt(v: unknown, field: string): number | null {
  if (v === null || v === undefined) return null;
  const n = typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) fail(`${field} is not a non-negative integer`);
  return n;
}

function optionalName(v: unknown, field: string): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') fail(`${field} is not a string`);
  if (v.length > MAX_NAME_LENGTH) fail(`${field} is longer than ${MAX_NAME_LENGTH} characters`);
  return v;
}

function extraKeyList(raw: unknown): readonly (readonly string[] | null)[] | null {
  if (raw === null || raw === undefined) return null;
  if (!Array.isArray(raw)) fail('extra_keys is not an array');
  if (raw.length > MAX_HASHES_PER_EVENT) fail(`more than ${MAX_HASHES_PER_EVENT} extra_keys entries`);
  const out: (readonly string[] | null)[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const e = raw[i];
    if (e === null || e === undefined) out[i] = null;
    else if (Array.isArray(e)) {
      if (e.length > MAX_EXTRA_KEYS_PER_BLOCK) fail(`more than ${MAX_EXTRA_KEYS_PER_BLOCK} extra keys in a block`);
      out[i] = e.map((x) => extraKeyText(x, 0));
    } else out[i] = [extraKeyText(e, 0)];
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function extraKeyText(v: unknown, depth: number): string {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') s = String(v);
  else if (v === null) s = 'null';
  else if (v instanceof Uint8Array) {
    if (v.length * 2 > MAX_NAME_LENGTH) fail('an extra key is too long');
    s = '';
    for (const b of v) s += HEX[b];
  } else if (Array.isArray(v) && depth < 2) {
    if (v.length > MAX_EXTRA_KEYS_PER_BLOCK) fail('an extra key is too long');
    s = `[${v.map((x) => extraKeyText(x, depth + 1)).join(',')}]`;
  } else fail('an extra key is not a string, number, bytes or tuple');
  if (s.length > MAX_NAME_LENGTH) fail('an extra key is too long');
  return s;
}
