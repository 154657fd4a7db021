// The JSON body read as it arrives must give exactly what JSON.parse gives for
// the whole body, wherever the chunks are cut, or give up (undefined) so the
// caller parses the whole body and reports its usual error.
import { describe, expect, it } from 'vitest';
import { StreamingJsonReader, escapeCut, utf8Cut } from '../src/openai/streaming-json.ts';
import { receivedBody } from '../src/openai/request-body.ts';
import { parseRequestBody } from '../src/openai/request.ts';
import { blockHashes } from '../src/prefix/hash.ts';
import { mulberry32 } from '../src/random.ts';

function readInChunks(body: Buffer, cuts: number[]): { value: unknown } | undefined {
  const r = new StreamingJsonReader();
  let at = 0;
  for (const c of [...cuts, body.length]) {
    r.push(body.subarray(at, c));
    at = c;
  }
  return r.end();
}

function randomCuts(rand: () => number, n: number, count: number): number[] {
  const cuts = Array.from({ length: count }, () => Math.floor(rand() * n));
  return [...new Set(cuts)].sort((a, b) => a - b);
}

const ALPHABET = ['a', 'b', ' ', '\n', '\t', '"', '\\', '/', 'é', 'ü', '中', '😀', '\u0001', '\u2028', '\ud83d', 'x'];

function randomString(rand: () => number, len: number): string {
  let s = '';
  while (s.length < len) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

function randomValue(rand: () => number, depth: number): unknown {
  const k = rand();
  if (depth > 3 || k < 0.3) return randomString(rand, rand() < 0.3 ? 3000 + Math.floor(rand() * 6000) : Math.floor(rand() * 40));
  if (k < 0.4) return Math.floor(rand() * 1e6) / 7;
  if (k < 0.45) return rand() < 0.5 ? null : rand() < 0.5;
  if (k < 0.7) return Array.from({ length: Math.floor(rand() * 5) }, () => randomValue(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = 0, n = Math.floor(rand() * 5); i < n; i++) o[randomString(rand, 1 + Math.floor(rand() * 12))] = randomValue(rand, depth + 1);
  return o;
}

describe('StreamingJsonReader', () => {
  it('gives JSON.parse\'s value for random bodies cut at random places', () => {
    const rand = mulberry32(7);
    for (let round = 0; round < 150; round++) {
      const value = { model: 'm', body: randomValue(rand, 0), tail: randomString(rand, 5000) };
      // Pretty-printed bodies too: whitespace outside strings is the skeleton's.
      const body = Buffer.from(round % 3 === 0 ? JSON.stringify(value, null, 2) : JSON.stringify(value));
      const got = readInChunks(body, randomCuts(rand, body.length, 1 + Math.floor(rand() * 40)));
      expect(got, `round ${round}`).toBeDefined();
      expect(got!.value).toEqual(JSON.parse(body.toString('utf8')));
    }
  });

  it('cuts inside every escape and every multi-byte character', () => {
    const s = 'start ' + 'x'.repeat(3000) + ' \\" \\\\ \\n \\u00e9 \\ud83d\\ude00 é 中 😀 end';
    const body = Buffer.from(`{"prompt":"${s}","k":"\\u0041"}`);
    const expected = JSON.parse(body.toString('utf8'));
    for (let cut = 1; cut < body.length; cut++) {
      expect(readInChunks(body, [cut])?.value, `cut at ${cut}`).toEqual(expected);
    }
    // One byte at a time.
    expect(readInChunks(body, Array.from({ length: body.length - 1 }, (_, i) => i + 1))?.value).toEqual(expected);
  });

  it('keeps long keys, key order, __proto__ and duplicate keys as JSON.parse does', () => {
    const long = 'k'.repeat(5000);
    const body = Buffer.from(`{"z":1,"${long}":"${'v'.repeat(4000)}","__proto__":{"x":"${'p'.repeat(3000)}"},"a":"1","a":"${'2'.repeat(2500)}"}`);
    const got = readInChunks(body, [3, 100, 4000, 9000, 12000]);
    const want = JSON.parse(body.toString('utf8'));
    expect(got?.value).toEqual(want);
    expect(Object.keys(got!.value as object)).toEqual(Object.keys(want));
    expect(Object.getPrototypeOf(got!.value)).toBe(Object.prototype);
  });

  it('gives up when a later duplicate key replaces a long string (JSON.parse keeps the last)', () => {
    const long = 'v'.repeat(3000);
    for (const b of [`{"a":"${long}","a":"short"}`, `{"a":"${long}","a":"${long}x"}`, `{"a":{"b":"${long}"},"a":[1]}`]) {
      expect(readInChunks(Buffer.from(b), [100])).toBeUndefined();
    }
    // Arrays index their elements: a long string in a nested array lands where it was.
    const nested = Buffer.from(JSON.stringify({ m: [1, [2, 'x'.repeat(300), { c: ['y'.repeat(400)] }], 'z'.repeat(500)] }));
    expect(readInChunks(nested, [7, 200])?.value).toEqual(JSON.parse(nested.toString('utf8')));
  });

  it('gives up on what JSON.parse would reject', () => {
    const long = 'y'.repeat(4000);
    const bad = [
      `{"prompt":"${long}\u0001"}`, // a raw control character inside a long string
      `{"prompt":"${long}\\x"}`, // an unknown escape
      `{"prompt":"${long}\\u12"}`, // a short \\u escape
      `{"prompt":"${long}"`, // truncated
      `{"prompt":"${long}"}}`, // trailing bracket
      `{"prompt":"${long}"} x`, // trailing data
      `{"prompt":"${long}",}`, // trailing comma
      `["${long}"`, // unclosed array
      `{"prompt":"${long}`, // unclosed string
    ];
    for (const b of bad) {
      expect(() => JSON.parse(b)).toThrow();
      expect(readInChunks(Buffer.from(b), [10, 2000]), b.slice(-12)).toBeUndefined();
    }
    // Invalid UTF-8 inside a long string and in the skeleton.
    const invalidLong = Buffer.concat([Buffer.from(`{"prompt":"${long}`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    expect(readInChunks(invalidLong, [100, 4003])).toBeUndefined();
    const invalidShort = Buffer.concat([Buffer.from('{"k":"'), Buffer.from([0xff]), Buffer.from(`","p":"${long}"}`)]);
    expect(readInChunks(invalidShort, [3])).toBeUndefined();
  });

  it('leaves a client string of the placeholder\'s shape alone (long strings are put back by path, not by text)', () => {
    // The placeholder is "llm-epp:" and 32 hex digits, random per process; a client string of that shape stays.
    const body = Buffer.from(JSON.stringify({ a: 'llm-epp:' + '0123456789abcdef'.repeat(2), b: ['llm-epp:' + 'f'.repeat(32)], p: 'q'.repeat(5000) }));
    expect(readInChunks(body, [50, 3000])?.value).toEqual(JSON.parse(body.toString('utf8')));
  });

  it('stops reading ahead for bodies that are mostly skeleton (token ids), and for deep nesting', () => {
    const tokens = Buffer.from(JSON.stringify({ model: 'm', prompt: Array.from({ length: 30_000 }, (_, i) => i) }));
    expect(readInChunks(tokens, [16_384, 32_768])).toBeUndefined();
    const deep = Buffer.from('['.repeat(600) + ']'.repeat(600));
    expect(readInChunks(deep, [300])).toBeUndefined();
  });

  it('escapeCut finds an escape cut by the end of a piece', () => {
    const at = (s: string) => escapeCut(Buffer.from(s));
    expect(at('abc')).toBe(3);
    expect(at('abc\\')).toBe(3);
    expect(at('abc\\\\')).toBe(5);
    expect(at('abc\\\\\\')).toBe(5);
    expect(at('abc\\n')).toBe(5);
    expect(at('abc\\u00')).toBe(3);
    expect(at('abc\\u00e9')).toBe(9);
    expect(at('abc\\\\u00')).toBe(8);
  });

  it('utf8Cut finds a character cut by the end of a piece', () => {
    const b = Buffer.from('aé中😀');
    expect(utf8Cut(b)).toBe(b.length);
    expect(utf8Cut(b.subarray(0, b.length - 1))).toBe(b.length - 4);
    expect(utf8Cut(b.subarray(0, b.length - 3))).toBe(b.length - 4);
    expect(utf8Cut(b.subarray(0, 2))).toBe(1);
    expect(utf8Cut(b.subarray(0, 5))).toBe(3);
  });

  it('gives parseRequestBody the same request and prefix hashes as the whole body, the routing text in flat parts', () => {
    const long = (seed: number, n: number) => Array.from({ length: n }, (_, i) => `w${(seed * 31 + i * 17) % 997}é `).join('');
    const cases: [string, unknown][] = [
      ['/v1/completions', { model: 'm', prompt: long(1, 40_000) }], // ≈ 240 KB: a head and an unjoined rest
      ['/v1/completions', { model: 'm', prompt: [long(2, 20_000), long(3, 20_000)] }],
      ['/v1/chat/completions', { model: 'm', tools: [{ type: 'function', function: { name: 'f' } }], messages: [{ role: 'system', content: long(4, 30_000) }, { role: 'user', content: [{ type: 'text', text: long(5, 9_000) }] }] }],
      ['/v1/chat/completions', { model: 'm', messages: Array.from({ length: 300 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: long(i, 60) })) }],
      ['/v1/messages', { model: 'm', system: long(6, 20_000), messages: [{ role: 'user', content: long(7, 20_000) }] }],
      ['/v1/responses', { model: 'm', instructions: long(8, 15_000), input: [{ role: 'user', content: long(9, 15_000) }] }],
    ];
    for (const [path, value] of cases) {
      const body = Buffer.from(JSON.stringify(value));
      const chunks: Buffer[] = [];
      for (let o = 0; o < body.length; o += 16_384) chunks.push(body.subarray(o, o + 16_384));
      const r = new StreamingJsonReader();
      for (const c of chunks) r.push(c);
      const json = r.end();
      expect(json, path).toBeDefined();
      // The 240 KB prompt is left unjoined, with its pieces.
      if (typeof (value as { prompt?: unknown }).prompt === 'string') expect(json!.pieces).toHaveLength(1);
      const streamed = parseRequestBody(receivedBody(chunks, body.length, json), path);
      const whole = parseRequestBody(body, path);
      expect(streamed.body).toEqual(whole.body);
      expect(streamed.routingText).toBe(whole.routingText);
      expect(streamed.routingParts.join('')).toBe(whole.routingText);
      expect(whole.routingParts.join('')).toBe(whole.routingText);
      const hashes = blockHashes(whole.routingText, 'm', undefined, 64, 8192);
      expect(blockHashes(streamed.routingParts, 'm', undefined, 64, 8192)).toEqual(hashes);
      expect(blockHashes(streamed.routingParts, 'm', undefined, 64, 100)).toEqual(blockHashes(whole.routingText, 'm', undefined, 64, 100));
    }
  });

  it('keeps an escaped surrogate pair cut by a chunk in one piece, so the pieces encode as the whole string', () => {
    const body = Buffer.from('{"model":"m","prompt":"' + 'x'.repeat(300) + '\\ud83d\\ude00é'.repeat(6000) + '"}');
    const whole = parseRequestBody(body, '/v1/completions');
    const want = blockHashes(whole.routingText, 'm', undefined, 64, 8192);
    expect(want.count).toBeGreaterThan(500);
    for (let size = 97; size < 140; size++) {
      const chunks: Buffer[] = [];
      for (let o = 0; o < body.length; o += size) chunks.push(body.subarray(o, o + size));
      const r = new StreamingJsonReader();
      for (const c of chunks) r.push(c);
      const streamed = parseRequestBody(receivedBody(chunks, body.length, r.end()), '/v1/completions');
      expect(streamed.routingParts.length, `chunk size ${size}`).toBeGreaterThan(1);
      expect(blockHashes(streamed.routingParts, 'm', undefined, 64, 8192), `chunk size ${size}`).toEqual(want);
    }
  });
});

describe('BodyBuffer: the reader on the request path', () => {
  it('reads a body of several chunks as it arrives, keeps the chunks as received, and counts them until release', async () => {
    const { BodyBuffer } = await import('../src/extproc/body-buffer.ts');
    const budget = { used: 0, limit: 1 << 20 };
    const buf = new BodyBuffer(budget, 1 << 20);
    const text = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'é'.repeat(3000) }] });
    const whole = Buffer.from(text);
    const chunks = [whole.subarray(0, 1000), whole.subarray(1000, 3001), whole.subarray(3001)];
    for (const c of chunks) buf.append(c);
    const body = buf.take();
    // Read ahead while it arrived (not parsed whole at the end).
    expect(body.json?.value).toEqual(JSON.parse(text));
    expect(body.chunks).toHaveLength(3);
    body.chunks.forEach((c, i) => expect(c).toBe(chunks[i]));
    expect(budget.used).toBe(whole.length);
    buf.release();
    expect(budget.used).toBe(0);
    // One chunk: parsed whole later, nothing read ahead.
    const one = new BodyBuffer(budget, 1 << 20);
    one.append(whole);
    expect(one.take().json).toBeUndefined();
    one.release();
  });
});
