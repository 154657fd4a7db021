// Engine-side KV events for the precise-index tests, shaped as vLLM's block
// pool emits them: block hashes chained over the tokens (the engine's own
// hash, unrelated to llm-epp's request keys: here a 64-bit FNV-style mix),
// one BlockStored per run of newly full blocks with the parent block's hash,
// BlockRemoved by engine hash.
import type { BlockRemoved, BlockStored, EngineHash } from '../../src/kvcache/events.ts';

/** Engine hashes of every full block of `tokens` (blocks of `blockSize`); `salt` stands for the engine's hash seed and extra keys. */
export function engineHashes(tokens: Uint32Array, blockSize: number, salt = 0): EngineHash[] {
  const out: EngineHash[] = [];
  let hi = 0x811c9dc5 ^ salt;
  let lo = 0x01000193;
  for (let j = 0; (j + 1) * blockSize <= tokens.length; j++) {
    for (let i = j * blockSize; i < (j + 1) * blockSize; i++) {
      hi = Math.imul(hi ^ tokens[i], 0x01000193) >>> 0;
      lo = Math.imul(lo ^ hi ^ (tokens[i] >>> 7), 0x5bd1e995) >>> 0;
    }
    out.push({ hi, lo });
  }
  return out;
}

export interface StoredOptions {
  medium?: string | null;
  loraName?: string | null;
  extraKeys?: (readonly string[] | null)[] | null;
  groupIdx?: number | null;
  /** The engine hashes to use (default: engineHashes(tokens, blockSize)). */
  hashes?: EngineHash[];
}

const list = (hashes: readonly EngineHash[]) => ({
  hi: Uint32Array.from(hashes, (h) => h.hi),
  lo: Uint32Array.from(hashes, (h) => h.lo),
  count: hashes.length,
});

/** BlockStored for engine blocks [from, from + n) of `tokens`. */
export function stored(tokens: Uint32Array, blockSize: number, from: number, n: number, opts: StoredOptions = {}): BlockStored {
  const hashes = opts.hashes ?? engineHashes(tokens, blockSize);
  return {
    type: 'BlockStored',
    blockHashes: list(hashes.slice(from, from + n)),
    parentBlockHash: from === 0 ? null : hashes[from - 1],
    tokenIds: tokens.slice(from * blockSize, (from + n) * blockSize),
    blockSize,
    loraId: null,
    medium: opts.medium === undefined ? 'GPU' : opts.medium,
    loraName: opts.loraName ?? null,
    extraKeys: opts.extraKeys ?? null,
    groupIdx: opts.groupIdx ?? null,
  };
}

/** The same blocks announced on another tier without tokens (vLLM's CPU offloading). */
export function offloaded(hashes: readonly EngineHash[], medium: string): BlockStored {
  return {
    type: 'BlockStored',
    blockHashes: list(hashes),
    parentBlockHash: null,
    tokenIds: new Uint32Array(0),
    blockSize: 16,
    loraId: null,
    medium,
    loraName: null,
    extraKeys: null,
    groupIdx: null,
  };
}

export function removed(hashes: readonly EngineHash[], medium: string | null = 'GPU'): BlockRemoved {
  return { type: 'BlockRemoved', blockHashes: list(hashes), medium, groupIdx: null };
}

/** Deterministic pseudo-random token ids below `vocab`. */
export function randomTokens(n: number, seed: number, vocab = 151_000): Uint32Array {
  let s = seed >>> 0;
  return Uint32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % vocab;
  });
}
