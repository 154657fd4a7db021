// KV-event batch decoding: both vLLM encodings (positional arrays with the tag
// first, maps with "type"), hashes as uint64, int64 and digest bytes, unknown
// fields and event types, bounds, and truncated or garbage payloads. The
// msgpack bytes are written here, with msgpackr or by hand where the exact
// wire format matters.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  type BlockRemoved,
  type BlockStored,
  KvEventDecodeError,
  MAX_EVENTS_PER_BATCH,
  MAX_HASHES_PER_EVENT,
  decodeKvEventBatch,
} from '../src/kvcache/events.ts';
import { thrown } from './helpers/thrown.ts';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const pack = (v: unknown) => new Uint8Array(packr.pack(v));

/** A value written verbatim into a hand-assembled payload. */
const raw = (hex: string) => Buffer.from(hex.replace(/\s/g, ''), 'hex');
const fixarray = (n: number) => raw((0x90 + n).toString(16));
const str = (s: string) => Buffer.from(packr.pack(s));
const f64 = (x: number) => {
  const b = Buffer.alloc(9);
  b[0] = 0xcb;
  b.writeDoubleBE(x, 1);
  return b;
};

const words = (h: { hi: Uint32Array; lo: Uint32Array; count: number }) =>
  Array.from({ length: h.count }, (_, i) => ((BigInt(h.hi[i]) << 32n) | BigInt(h.lo[i])).toString(16));

describe('decodeKvEventBatch: positional encoding (vLLM ≤ 0.23)', () => {
  it('reads [ts, events, dp_rank] with tag-first events, uint64 and int64 hashes by hand', () => {
    // ["BlockStored", [uint64 2^64-1, int64 -2, 7], uint64 parent, [1, 2, 300, 70000], 4, null, "GPU"]
    const stored = Buffer.concat([
      fixarray(7),
      str('BlockStored'),
      fixarray(3),
      raw('cf ffffffffffffffff'),
      raw('d3 fffffffffffffffe'),
      raw('07'),
      raw('cf 8000000000000001'),
      fixarray(4),
      raw('01 02 cd012c ce00011170'),
      raw('04 c0'),
      str('GPU'),
    ]);
    const removed = Buffer.concat([fixarray(3), str('BlockRemoved'), fixarray(1), raw('d3 ffffffffffffffff'), raw('c0')]);
    const cleared = Buffer.concat([fixarray(1), str('AllBlocksCleared')]);
    const payload = Buffer.concat([fixarray(3), f64(1789095808.5), fixarray(3), stored, removed, cleared, raw('02')]);
    const batch = decodeKvEventBatch(payload);
    expect(batch.ts).toBe(1789095808.5);
    expect(batch.dataParallelRank).toBe(2);
    expect(batch.unknown).toBe(0);
    expect(batch.events.map((e) => e.type)).toEqual(['BlockStored', 'BlockRemoved', 'AllBlocksCleared']);
    const s = batch.events[0] as BlockStored;
    // int64 −2 is the same 64 bits as uint64 2^64 − 2.
    expect(words(s.blockHashes)).toEqual(['ffffffffffffffff', 'fffffffffffffffe', '7']);
    expect(s.parentBlockHash).toEqual({ hi: 0x80000000, lo: 1 });
    expect(Array.from(s.tokenIds)).toEqual([1, 2, 300, 70000]);
    expect(s.tokenIds).toBeInstanceOf(Uint32Array);
    expect(s).toMatchObject({ blockSize: 4, loraId: null, medium: 'GPU', loraName: null, extraKeys: null, groupIdx: null });
    const r = batch.events[1] as BlockRemoved;
    expect(words(r.blockHashes)).toEqual(['ffffffffffffffff']);
    expect(r.medium).toBeNull();
  });

  it('reads the trailing optional fields and ignores fields it does not know', () => {
    const ev = ['BlockStored', [5n], null, [9, 9], 2, 3, 'CPU', 'adapter-a', [['adapter-a', 'salt']], 0, 'full_attention', null, 'a future field'];
    const batch = decodeKvEventBatch(pack([1.25, [ev, ['BlockRemoved', [5n], 'CPU', 1, 'future']], null]));
    const s = batch.events[0] as BlockStored;
    expect(s).toMatchObject({ loraId: 3, medium: 'CPU', loraName: 'adapter-a', extraKeys: [['adapter-a', 'salt']], groupIdx: 0, parentBlockHash: null });
    expect((batch.events[1] as BlockRemoved).groupIdx).toBe(1);
    expect(batch.dataParallelRank).toBeNull();
  });

  it('skips unknown event types and counts them', () => {
    const batch = decodeKvEventBatch(pack([1, [['BlockMigrated', [1n], 'x'], ['AllBlocksCleared'], { type: 'SomethingNew', a: 1 }], 0]));
    expect(batch.events.map((e) => e.type)).toEqual(['AllBlocksCleared']);
    expect(batch.unknown).toBe(2);
  });
});

describe('decodeKvEventBatch: map encoding (vLLM ≥ 0.24, PR #42892)', () => {
  it('reads events with a "type" key in any field order, defaults left out, unknown fields ignored', () => {
    const payload = pack({
      events: [
        {
          token_ids: [11, 12, 13, 14],
          locality: 'node-1',
          type: 'BlockStored',
          block_size: 2,
          block_hashes: [1n << 40n, 2n ** 63n + 9n],
          parent_block_hash: null,
          lora_id: null,
          medium: 'GPU',
          lora_name: null,
          extra_keys: [null, null],
          group_idx: 0,
          kv_cache_spec_kind: 'full_attention',
        },
        { type: 'BlockRemoved', block_hashes: [-5n], session_id: 'abc' },
        { type: 'AllBlocksCleared' },
      ],
      ts: 3.5,
      data_parallel_rank: 1,
      future_batch_field: [1, 2, 3],
    });
    const batch = decodeKvEventBatch(payload);
    expect(batch).toMatchObject({ ts: 3.5, dataParallelRank: 1, unknown: 0 });
    const s = batch.events[0] as BlockStored;
    expect(words(s.blockHashes)).toEqual(['10000000000', '8000000000000009']);
    expect(s).toMatchObject({ blockSize: 2, extraKeys: [null, null], groupIdx: 0, medium: 'GPU' });
    const r = batch.events[1] as BlockRemoved;
    expect(words(r.blockHashes)).toEqual(['fffffffffffffffb']);
    expect(r).toMatchObject({ medium: null, groupIdx: null });
  });

  it('accepts an array batch holding map events (the vLLM 0.26 capture) and a map batch holding array events', () => {
    const ev = { type: 'BlockStored', block_hashes: [1], parent_block_hash: 2, token_ids: [3], block_size: 1, lora_id: null, medium: 'GPU', lora_name: null };
    expect(decodeKvEventBatch(pack([1.5, [ev], 0])).events).toHaveLength(1);
    expect(decodeKvEventBatch(pack({ ts: 1.5, events: [['BlockStored', [1], 2, [3], 1, null, 'GPU']] })).events).toHaveLength(1);
  });
});

describe('decodeKvEventBatch: hashes', () => {
  it('takes the last 8 bytes of a digest, big-endian, and left-pads short ones', () => {
    const digest = Buffer.alloc(32, 0xaa);
    digest.writeBigUInt64BE(0x0123456789abcdefn, 24);
    const batch = decodeKvEventBatch(pack([1, [['BlockRemoved', [digest, Buffer.from([1, 2, 3])], 'GPU']], 0]));
    expect(words((batch.events[0] as BlockRemoved).blockHashes)).toEqual(['123456789abcdef', '10203']);
  });

  it('reads a digest parent hash and signed/unsigned forms of one value alike', () => {
    const p = Buffer.alloc(8);
    p.writeBigUInt64BE(0xfedcba9876543210n);
    const a = decodeKvEventBatch(pack([1, [['BlockStored', [-1n], p, [1], 1, null, null]], 0])).events[0] as BlockStored;
    const b = decodeKvEventBatch(pack([1, [['BlockStored', [2n ** 64n - 1n], 0xfedcba9876543210n, [1], 1, null, null]], 0])).events[0] as BlockStored;
    expect(a.parentBlockHash).toEqual({ hi: 0xfedcba98, lo: 0x76543210 });
    expect(b.parentBlockHash).toEqual(a.parentBlockHash);
    expect(words(a.blockHashes)).toEqual(words(b.blockHashes));
  });

  it('rejects hashes that are neither integers nor bytes, and empty digests', () => {
    for (const h of ['abc', 1.5, Buffer.alloc(0), [1]]) {
      thrown(() => decodeKvEventBatch(pack([1, [['BlockRemoved', [h], null]], 0])), KvEventDecodeError, String(h));
    }
  });
});

describe('decodeKvEventBatch: extra keys', () => {
  it('writes each block’s extra keys as strings: text, integers, bytes in hex, tuples as [a,b]', () => {
    const extra = [['lora-x', 'salt-1'], null, [Buffer.from([0xde, 0xad]), 7, ['mm-hash', 12]], 'bare-mm-hash'];
    const s = decodeKvEventBatch(pack([1, [['BlockStored', [1, 2, 3, 4], null, [1, 2, 3, 4], 1, null, null, 'lora-x', extra]], 0])).events[0] as BlockStored;
    expect(s.extraKeys).toEqual([['lora-x', 'salt-1'], null, ['dead', '7', '[mm-hash,12]'], ['bare-mm-hash']]);
  });
});

describe('decodeKvEventBatch: malformed input', () => {
  const valid = pack([
    1.25,
    [
      ['BlockStored', [2n ** 63n + 1n, 5n], 7n, Array.from({ length: 32 }, (_, i) => i * 1000), 16, null, 'GPU', null],
      { type: 'BlockRemoved', block_hashes: [Buffer.alloc(32, 1)], medium: 'GPU' },
      ['AllBlocksCleared'],
    ],
    0,
  ]);

  it('turns every truncation of a valid payload into a KvEventDecodeError', () => {
    expect(decodeKvEventBatch(valid).events).toHaveLength(3);
    for (let n = 0; n < valid.length; n++) thrown(() => decodeKvEventBatch(valid.subarray(0, n)), KvEventDecodeError, `cut at ${n}`);
  });

  it('either decodes or throws KvEventDecodeError on random bytes and on corrupted payloads', () => {
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    let errors = 0;
    for (let i = 0; i < 2000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) bytes = Uint8Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256));
      else {
        bytes = valid.slice();
        for (let k = 0; k < 3; k++) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
      }
      try {
        decodeKvEventBatch(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(KvEventDecodeError);
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(1000);
  });

  it('refuses a length header that claims more than the payload holds without allocating it', () => {
    // [ts, events: array32 of 2^32 − 1 elements, …] with nothing after the header.
    thrown(() => decodeKvEventBatch(Buffer.concat([fixarray(3), f64(1), raw('dd ffffffff')])), KvEventDecodeError);
    thrown(() => decodeKvEventBatch(Buffer.concat([fixarray(3), f64(1), fixarray(1), fixarray(4), str('BlockStored'), raw('dd ffffffff')])), KvEventDecodeError);
  });

  it('enforces the bounds on events per batch and hashes per event', () => {
    const many = Array.from({ length: MAX_EVENTS_PER_BATCH + 1 }, () => ['AllBlocksCleared']);
    expect(thrown(() => decodeKvEventBatch(pack([1, many, 0])), KvEventDecodeError).message).toContain(`more than ${MAX_EVENTS_PER_BATCH} events`);
    const hashes = Array.from({ length: MAX_HASHES_PER_EVENT + 1 }, (_, i) => i);
    expect(thrown(() => decodeKvEventBatch(pack([1, [['BlockRemoved', hashes, null]], 0])), KvEventDecodeError).message).toContain('block hashes');
  });

  it('names the problem without quoting the payload', () => {
    const secret = 'tenant-secret-'.repeat(100);
    const cases: [unknown, string][] = [
      [[1, [['BlockStored', [1], null, [1, -1], 1, null, null]], 0], 'token id'],
      [[1, [['BlockStored', [1], null, [1, 2 ** 32], 1, null, null]], 0], 'token id'],
      [[1, [['BlockStored', [1], null, [1], 0, null, null]], 0], 'block_size'],
      [[1, [['BlockStored', [1], null, [1], 1, null, null, secret]], 0], 'lora_name'],
      [[1, [['BlockStored', [1], null, [1], 1, null, 7]], 0], 'medium'],
      [[1, [['BlockStored', [1], null, [1]]], 0], 'fewer than 5'],
      [[1, [[42]], 0], 'tag'],
      [[1, [{ block_hashes: [] }], 0], 'type'],
      [[1, ['nope'], 0], 'neither an array nor a map'],
      [['1', [], 0], 'ts'],
      [[1, {}, 0], 'events'],
      [[1, [], 'x'], 'data_parallel_rank'],
      ['just a string', 'batch'],
      [[1, [{ type: 'BlockStored', block_hashes: [1], token_ids: [1], block_size: 1, extra_keys: [[{ a: 1 }]] }], 0], 'extra key'],
    ];
    for (const [value, reason] of cases) {
      const err = thrown(() => decodeKvEventBatch(pack(value)), KvEventDecodeError, reason);
      expect(err.message).toContain(reason);
      expect(err.message).not.toContain('tenant-secret');
      expect(err.message.length).toBeLessThan(120);
    }
  });

  it('rejects an empty payload and trailing bytes after the batch', () => {
    thrown(() => decodeKvEventBatch(new Uint8Array(0)), KvEventDecodeError);
    thrown(() => decodeKvEventBatch(Buffer.concat([valid, raw('c0')])), KvEventDecodeError);
  });
});
