import xxhash from 'xxhash-wasm';
import { describe, expect, it } from 'vitest';
import { blockHashes, seedHash } from '../src/prefix/hash.ts';
import { PrefixIndex } from '../src/prefix/indexer.ts';

const { h64Raw } = await xxhash();
const hex = (h: { hi: Uint32Array; lo: Uint32Array }, i: number) => ((BigInt(h.hi[i]) << 32n) | BigInt(h.lo[i])).toString(16);

describe('prefix block hashing', () => {
  it('chains XXH64 over full blocks: h0 = XXH64(model ‖ salt), h_i = XXH64(block ‖ LE64(h_{i-1}))', () => {
    const text = 'a'.repeat(64) + 'b'.repeat(64) + 'tail';
    const h = blockHashes(text, 'llama', undefined, 64, 100);
    expect(h.count).toBe(2); // the partial tail is not hashed
    const le = (v: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      return b;
    };
    const h0 = h64Raw(Buffer.from('llama'), 0n);
    const h1 = h64Raw(Buffer.concat([Buffer.from('a'.repeat(64)), le(h0)]), 0n);
    const h2 = h64Raw(Buffer.concat([Buffer.from('b'.repeat(64)), le(h1)]), 0n);
    expect(hex(h, 0)).toBe(h1.toString(16));
    expect(hex(h, 1)).toBe(h2.toString(16));
    expect(seedHash('llama', 'salt')).toBe(h64Raw(Buffer.from('llamasalt'), 0n));
  });

  it('cuts blocks on UTF-8 bytes and caps at maxBlocks', () => {
    expect(blockHashes('é'.repeat(64), 'm', undefined, 64, 100).count).toBe(2); // 128 bytes
    expect(blockHashes('x'.repeat(6400), 'm', undefined, 64, 10).count).toBe(10);
    expect(blockHashes('short', 'm', undefined, 64, 10).count).toBe(0);
  });
});

describe('prefix index', () => {
  const hashes = (text: string) => blockHashes(text, 'm', undefined, 4, 100_000);

  it('matches consecutive blocks from the start, per endpoint', () => {
    const idx = new PrefixIndex(16);
    idx.ensureEndpoint('a', 100);
    idx.ensureEndpoint('b', 100);
    idx.add('a', hashes('AAAABBBBCCCCDDDD'));
    idx.add('b', hashes('AAAABBBBXXXX'));
    const m = idx.match(hashes('AAAABBBBCCCCEEEE'));
    expect(m.total).toBe(4);
    expect(m.matched.get('a')).toBe(3);
    expect(m.matched.get('b')).toBe(2);
    expect(idx.match(hashes('ZZZZAAAA')).matched.size).toBe(0);
  });

  it('evicts least recently used blocks at capacity, and a re-sent block becomes most recent', () => {
    const idx = new PrefixIndex(16);
    idx.ensureEndpoint('a', 3);
    idx.add('a', hashes('1111'));
    idx.add('a', hashes('2222'));
    idx.add('a', hashes('3333'));
    idx.add('a', hashes('1111')); // touch
    idx.add('a', hashes('4444')); // evicts 2222
    expect(idx.podSize('a')).toBe(3);
    expect(idx.match(hashes('1111')).matched.get('a')).toBe(1);
    expect(idx.match(hashes('2222')).matched.get('a')).toBeUndefined();
    idx.ensureEndpoint('a', 1); // shrinking evicts down to the new capacity
    expect(idx.podSize('a')).toBe(1);
    expect(idx.match(hashes('4444')).matched.get('a')).toBe(1);
  });

  it('keeps matching when the lookup stamp wraps around', () => {
    const idx = new PrefixIndex(16);
    idx.ensureEndpoint('a', 10);
    idx.add('a', hashes('AAAABBBB'));
    idx.setStampForTest(0x7fffffff - 3);
    for (let i = 0; i < 10; i++) expect(idx.match(hashes('AAAABBBB')).matched.get('a')).toBe(2);
  });

  it('grows past its initial size, and removing an endpoint frees its entries', () => {
    const idx = new PrefixIndex(16);
    idx.ensureEndpoint('a', 10_000);
    idx.ensureEndpoint('b', 10_000);
    const long = Array.from({ length: 3000 }, (_, i) => String(i).padStart(4, '0')).join('');
    idx.add('a', hashes(long));
    idx.add('b', hashes(long.slice(0, 4000)));
    expect(idx.size).toBe(4000);
    const m = idx.match(hashes(long));
    expect(m.matched.get('a')).toBe(3000);
    expect(m.matched.get('b')).toBe(1000);
    idx.removeEndpoint('a');
    expect(idx.size).toBe(1000);
    expect(idx.match(hashes(long)).matched.get('a')).toBeUndefined();
    expect(idx.match(hashes(long)).matched.get('b')).toBe(1000);
    idx.ensureEndpoint('c', 10); // reuses the freed id
    idx.add('c', hashes('abcdabcd'));
    expect(idx.match(hashes('abcdabcd')).matched.get('c')).toBe(2);
  });
});
