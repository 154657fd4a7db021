import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { Engine, stepDurationMs, DEFAULT_TIMING, type EngineOptions, type RequestResult } from '../bench/sim/engine.ts';
import { KvCache, extendHashChain, type HashChain, type KvEvent } from '../bench/sim/kv-cache.ts';
import { startSimPod, renderChat, completionPrompts, type SimPod } from '../bench/sim/server.ts';
import { fleetPlanFromArgs } from '../bench/sim/fleet.ts';
import { countTokens, tokenize } from '../bench/sim/tokens.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { extractMetrics, getEngine } from '../src/metrics/engines.ts';

/** Deterministic distinct text of `tokens` tokens (4 characters each). */
function text(seed: string, tokens: number): string {
  let s = '';
  for (let i = 0; s.length < tokens * 4; i++) s += `${seed}${i}`.padEnd(4, '.').slice(-4);
  return s.slice(0, tokens * 4);
}

/** Run one request to completion in virtual time (timeScale 0). */
function run(engine: Engine, prompt: string, maxTokens = 4): Promise<RequestResult> {
  return new Promise((resolve) => engine.submit({ promptTokens: tokenize(prompt), maxTokens, onFinish: resolve }));
}

function fastEngine(o: Partial<EngineOptions> = {}): Engine {
  return new Engine({ model: 'm', timeScale: 0, numGpuBlocks: 2000, ...o });
}

const prefillTime = (r: RequestResult) => r.firstTokenTime! - r.firstScheduledTime!;

describe('simulator KV cache', () => {
  it('hashes full blocks only, chained: equal prefixes give equal hashes, a different first block changes the whole chain', () => {
    const a: HashChain = { hi: [], lo: [], seed: 0 };
    const b: HashChain = { hi: [], lo: [], seed: 0 };
    const c: HashChain = { hi: [], lo: [], seed: 0 };
    const t1 = tokenize(text('x', 40));
    const t2 = tokenize(text('x', 32) + text('y', 8));
    const t3 = tokenize('zzzz' + text('x', 39));
    extendHashChain(a, t1, t1.length, 16);
    extendHashChain(b, t2, t2.length, 16);
    extendHashChain(c, t3, t3.length, 16);
    expect(a.hi.length).toBe(2); // 40 tokens = 2 full blocks of 16
    expect([a.hi[0], a.lo[0], a.hi[1], a.lo[1]]).toEqual([b.hi[0], b.lo[0], b.hi[1], b.lo[1]]);
    expect(c.lo[0]).not.toBe(a.lo[0]);
    expect(c.lo[1]).not.toBe(a.lo[1]);
  });

  it('reuses freed blocks on a hit and evicts the least recently freed block first, with BlockStored/BlockRemoved events', () => {
    const events: KvEvent[] = [];
    const kv = new KvCache({ numGpuBlocks: 5, blockSize: 2, onEvent: (e) => events.push(e) });
    expect(kv.numUsableBlocks).toBe(4); // block 0 is the null block
    const chainOf = (ids: number[]) => {
      const ch: HashChain = { hi: [], lo: [], seed: 0 };
      extendHashChain(ch, ids, ids.length, 2);
      return ch;
    };
    const a = [1, 2, 3, 4];
    const ca = chainOf(a);
    const blocksA = kv.allocate(2)!;
    kv.cacheBlocks(blocksA, ca, a, 0, 2);
    expect(events.at(-1)).toMatchObject({ type: 'BlockStored', blockHashes: [expect.any(BigInt), expect.any(BigInt)], parentBlockHash: null, tokenIds: a });
    kv.release([...blocksA].reverse());
    expect(kv.usage()).toBe(0);
    expect(kv.lookup(ca, 10)).toEqual(blocksA);
    // Two new 2-block requests: the first takes the two never-used blocks, the second must evict A's.
    const b = kv.allocate(2)!;
    expect(b.some((x) => blocksA.includes(x))).toBe(false);
    expect(kv.lookup(ca, 10)).toEqual(blocksA);
    const c = kv.allocate(2)!;
    expect(kv.allocate(1)).toBeNull();
    expect(c.sort()).toEqual([...blocksA].sort());
    expect(kv.lookup(ca, 10)).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'BlockRemoved' });
    expect((events.at(-1) as { blockHashes: bigint[] }).blockHashes).toHaveLength(2);
    expect(kv.usage()).toBe(1);
  });
});

describe('simulator engine', () => {
  it('a cached prefix makes the second request\'s prefill shorter, and the metrics count the hit', async () => {
    const e = fastEngine();
    const shared = text('sys', 2000);
    const first = await run(e, shared + text('q1', 100));
    const second = await run(e, shared + text('q2', 100));
    expect(first.cachedTokens).toBe(0);
    // All full blocks of the 2000 shared tokens are hits (2000 = 125 blocks of 16).
    expect(second.cachedTokens).toBe(2000);
    expect(prefillTime(second)).toBeLessThan(prefillTime(first) / 3);
    expect(e.metrics.prefixCacheHits).toBe(2000);
    expect(e.metrics.prefixCacheQueries).toBe(first.promptTokens + second.promptTokens);
    const off = fastEngine({ enablePrefixCaching: false });
    await run(off, shared + text('q1', 100));
    const noCache = await run(off, shared + text('q2', 100));
    expect(noCache.cachedTokens).toBe(0);
  });

  it('evicts cached prefixes when other prompts need the blocks', async () => {
    // 64 usable blocks × 16 = 1008 tokens; each prompt of 600 tokens needs 38 blocks.
    const e = fastEngine({ numGpuBlocks: 65 });
    const a = text('A', 600);
    await run(e, a);
    expect((await run(e, a)).cachedTokens).toBe(592);
    await run(e, text('B', 600));
    await run(e, text('C', 600));
    expect((await run(e, a)).cachedTokens).toBe(0);
    expect(e.kv.numCachedBlocks).toBeLessThanOrEqual(64);
  });

  it('queues requests beyond max_num_seqs and preempts when the KV cache runs out', async () => {
    const e = new Engine({ model: 'm', timeScale: 1, maxNumSeqs: 2, numGpuBlocks: 2000 });
    const done: Promise<RequestResult>[] = [];
    for (let i = 0; i < 5; i++) done.push(new Promise((r) => e.submit({ promptTokens: tokenize(text(`r${i}`, 50)), maxTokens: 200, onFinish: r })));
    await new Promise((r) => setTimeout(r, 60));
    expect(e.numRunning).toBe(2);
    expect(e.numWaiting).toBe(3);
    e.close();
    await Promise.all(done);

    // 9 usable blocks of 16 tokens: two requests of 64 prompt + 60 output tokens (8 blocks each) cannot both finish.
    const tight = fastEngine({ numGpuBlocks: 10 });
    const results = await Promise.all([run(tight, text('p', 64), 60), run(tight, text('q', 64), 60)]);
    expect(results.map((r) => r.completionTokens)).toEqual([60, 60]);
    expect(tight.metrics.preemptions).toBeGreaterThan(0);
    expect(tight.kv.usage()).toBe(0);
  });

  it('step time grows with the uncached prefill tokens and with batch size (vllm.md §6.3)', () => {
    const one = stepDurationMs(DEFAULT_TIMING, [{ n: 1, context: 1000, prefill: false }]);
    const batch = stepDurationMs(DEFAULT_TIMING, Array.from({ length: 256 }, () => ({ n: 1, context: 4000, prefill: false })));
    const prefill = stepDurationMs(DEFAULT_TIMING, [{ n: 8192, context: 0, prefill: true }]);
    expect(one).toBeGreaterThan(5);
    expect(one).toBeLessThan(8); // ≈ 6.5 ms: weight read + overhead
    expect(batch).toBeGreaterThan(one * 3);
    expect(prefill).toBeGreaterThan(200); // ≈ 0.26 s for a full 8192-token chunk
    expect(prefill).toBeLessThan(400);
  });

  it('its /metrics page agrees with its state and parses with llm-epp\'s own collector mapping', async () => {
    const e = new Engine({ model: 'sim-model', timeScale: 1, maxNumSeqs: 1, numGpuBlocks: 1000, loraModules: ['ad1'], maxLoras: 1 });
    const pending = [0, 1, 2].map((i) => new Promise<RequestResult>((r) => e.submit({ promptTokens: tokenize(text(`m${i}`, 100)), maxTokens: 500, lora: i === 2 ? 'ad1' : undefined, onFinish: r })));
    await new Promise((r) => setTimeout(r, 50));
    const samples = parsePrometheusText(e.renderMetrics());
    const m = extractMetrics(getEngine('vllm')!, samples);
    expect(m.runningRequests).toBe(e.numRunning);
    expect(m.waitingQueueSize).toBe(e.numWaiting);
    expect(m.runningRequests + m.waitingQueueSize).toBe(3);
    expect(m.kvCacheUsage).toBeCloseTo(e.kvCacheUsage, 9);
    expect(m.kvCacheUsage).toBeGreaterThan(0);
    expect(m.cacheBlockSize).toBe(16);
    expect(m.cacheNumGpuBlocks).toBe(1000);
    expect(m.lora?.waitingModels).toContain('ad1');
    expect(samples.get('vllm:prefix_cache_queries_total')?.[0].value).toBe(e.metrics.prefixCacheQueries);
    e.close();
    await Promise.all(pending);
    const after = parsePrometheusText(e.renderMetrics());
    expect(after.get('vllm:num_requests_running')?.[0].value).toBe(0);
    expect(after.get('vllm:kv_cache_usage_perc')?.[0].value).toBe(0);
    const success = after.get('vllm:request_success_total')!.find((s) => s.labels.finished_reason === 'abort');
    expect(success?.value).toBe(3);
    // Histogram buckets are cumulative and end at +Inf = _count.
    const ttft = after.get('vllm:time_to_first_token_seconds_bucket')!;
    expect(ttft.at(-1)!.labels.le).toBe('+Inf');
    expect(ttft.at(-1)!.value).toBe(after.get('vllm:time_to_first_token_seconds_count')![0].value);
  });
});

describe('simulator pod (HTTP)', () => {
  let pod: SimPod | undefined;
  afterEach(async () => {
    await pod?.close();
    pod = undefined;
  });

  const post = async (path: string, body: unknown) => {
    const res = await request(`http://127.0.0.1:${pod!.port}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  it('streams chat completions as vLLM does: role chunk, one chunk per token, finish_reason on the last, usage chunk, [DONE]', async () => {
    pod = await startSimPod({ model: 'sim-model', timeScale: 0.01, enablePromptTokensDetails: true, name: 'p0' });
    const messages = [{ role: 'system', content: text('s', 200) }, { role: 'user', content: 'hello' }];
    const r = await post('/v1/chat/completions', { model: 'sim-model', messages, max_tokens: 5, stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/event-stream');
    expect(r.headers['x-sim-pod']).toBe('p0');
    const events = r.text.split('\n\n').filter(Boolean).map((l) => l.replace(/^data: /, ''));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const tokens = chunks.filter((c) => c.choices.length && c.choices[0].delta.content);
    expect(tokens).toHaveLength(5);
    expect(tokens.at(-1).choices[0].finish_reason).toBe('length');
    const usage = chunks.at(-1);
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual({ prompt_tokens: countTokens(renderChat(messages)), completion_tokens: 5, total_tokens: countTokens(renderChat(messages)) + 5, prompt_tokens_details: { cached_tokens: 0 } });
    // Same system prompt again: its full blocks are cached.
    const again = await post('/v1/chat/completions', { model: 'sim-model', messages: [messages[0], { role: 'user', content: 'other' }], max_tokens: 2 });
    const j = JSON.parse(again.text);
    expect(j.object).toBe('chat.completion');
    expect(j.usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(192);
    expect(j.choices[0].message.content).toHaveLength(8);
  });

  it('serves completions (string, token ids, batches), /v1/models, /health, and clear errors', async () => {
    pod = await startSimPod({ model: 'sim-model', timeScale: 0, loraModules: ['sql-lora'] });
    const batch = JSON.parse((await post('/v1/completions', { model: 'sql-lora', prompt: ['abcd efgh', [1, 2, 3]], max_tokens: 3 })).text);
    expect(batch.choices.map((c: { index: number }) => c.index)).toEqual([0, 1]);
    expect(batch.usage).toMatchObject({ prompt_tokens: 3 + 3, completion_tokens: 6 });
    const models = JSON.parse(await (await request(`http://127.0.0.1:${pod.port}/v1/models`)).body.text());
    expect(models.data.map((d: { id: string; parent: string | null }) => [d.id, d.parent])).toEqual([['sim-model', null], ['meta-llama/Llama-3.1-8B-Instruct', null], ['sql-lora', 'sim-model']]);
    // The README's requests name the model the simulator's timing describes: answered, echoed back (was 404).
    const readme = await post('/v1/chat/completions', { model: 'meta-llama/Llama-3.1-8B-Instruct', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
    expect(readme.status).toBe(200);
    expect(JSON.parse(readme.text).model).toBe('meta-llama/Llama-3.1-8B-Instruct');
    expect((await request(`http://127.0.0.1:${pod.port}/health`)).statusCode).toBe(200);
    expect((await post('/v1/completions', { model: 'nope', prompt: 'x' })).status).toBe(404);
    expect((await post('/v1/completions', { model: 'sim-model' })).status).toBe(400);
    expect((await post('/v1/chat/completions', { model: 'sim-model', messages: [] })).status).toBe(400);
    const long = await post('/v1/completions', { model: 'sim-model', prompt: 'x'.repeat(4 * 140_000), max_tokens: 1 });
    expect(long.status).toBe(400);
    expect(JSON.parse(long.text).error.message).toMatch(/maximum context length/);
    const bad = await request(`http://127.0.0.1:${pod.port}/v1/completions`, { method: 'POST', body: '{not json' });
    expect(bad.statusCode).toBe(400);
    expect(JSON.parse(await bad.body.text()).error.type).toBe('BadRequestError');
    expect(() => completionPrompts([])).toThrow(/prompt must be/);
  });

  it('a client that disconnects aborts its request and frees its KV blocks; /sim/reset zeroes everything', async () => {
    pod = await startSimPod({ model: 'sim-model', timeScale: 1 });
    const ac = new AbortController();
    const res = await request(`http://127.0.0.1:${pod.port}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'sim-model', prompt: text('long', 500), max_tokens: 5000, stream: true }),
      signal: ac.signal,
    });
    expect(res.statusCode).toBe(200);
    for await (const _ of res.body) break; // first chunk arrived: the request is running
    expect(pod.engine.numRunning).toBe(1);
    expect(pod.engine.kvCacheUsage).toBeGreaterThan(0);
    ac.abort();
    await expect.poll(() => pod!.engine.numRunning, { timeout: 2000 }).toBe(0);
    expect(pod.engine.kvCacheUsage).toBe(0);
    expect(pod.engine.metrics.success.abort).toBe(1);
    expect((await post('/sim/reset', {})).status).toBe(200);
    expect(pod.engine.metrics.success.abort).toBe(0);
    expect(pod.engine.kv.numCachedBlocks).toBe(0);
  });

  it('fleet flags cover every engine constant and reject bad values', () => {
    const plan = fleetPlanFromArgs(['--pods', '3', '--port', '9000', '--num-gpu-blocks', '500', '--max-num-seqs', '8', '--time-scale', '0.5', '--compute-ms-per-token', '0.1', '--enable-prefix-caching', 'false', '--lora-modules', 'a,b']);
    expect(plan).toMatchObject({ pods: 3, basePort: 9000, pod: { numGpuBlocks: 500, maxNumSeqs: 8, timeScale: 0.5, enablePrefixCaching: false, loraModules: ['a', 'b'], timing: { computeMsPerToken: 0.1 } } });
    expect(() => fleetPlanFromArgs(['--num-gpu-blocks', '1.5'])).toThrow(/--num-gpu-blocks must be an integer/);
    expect(() => fleetPlanFromArgs(['--bogus'])).toThrow();
  });
});
