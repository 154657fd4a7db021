// The hand-assembled WASM XXH64 against xxhash-wasm, the reference.
import xxhash from 'xxhash-wasm';
import { describe, expect, it } from 'vitest';
import { wasmMemory, xxh64At } from '../src/prefix/xxh64-chain.ts';
import { seeded } from './helpers/scheduling.ts';

const { h64Raw } = await xxhash();

describe('WASM XXH64', () => {
  it('equals xxhash-wasm for every length 0..300 and random seeds', () => {
    const rnd = seeded(11);
    for (let len = 0; len <= 300; len++) {
      const bytes = Uint8Array.from({ length: len }, () => Math.floor(rnd() * 256));
      const seed = BigInt(Math.floor(rnd() * 2 ** 32)) * BigInt(Math.floor(rnd() * 2 ** 32));
      const at = 16 + (len % 7); // unaligned starts too
      wasmMemory(at + len).set(bytes, at);
      expect(xxh64At(at, len, BigInt.asUintN(64, seed)), `len ${len}`).toBe(h64Raw(bytes, BigInt.asUintN(64, seed)));
    }
  });

  it('matches the published XXH64 test vectors', () => {
    const mem = wasmMemory(16);
    expect(xxh64At(0, 0, 0n)).toBe(0xef46db3751d8e999n); // XXH64("") seed 0
    mem.set(Buffer.from('abc'), 0);
    expect(xxh64At(0, 3, 0n)).toBe(0x44bc2cf5ad770999n); // XXH64("abc") seed 0
  });
});
