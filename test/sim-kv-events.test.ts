// The simulator's KV-cache events on the wire, read by a real ZMQ SUB and decoded with
// msgpackr: what a vLLM pod would publish for the same workload (BlockStored with parent
// chaining and token ids, one BlockRemoved per evicted block, AllBlocksCleared on reset, LoRA
// ids), in both encodings, both socket directions, and a restart's sequence going back to 0.
// Also the fleet flags that set it up, and pods on their own addresses.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpack } from 'msgpackr';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Subscriber } from 'zeromq';
import { fleetPlanFromArgs, startFleet, type Fleet } from '../bench/sim/fleet.ts';
import { KvCache, extendHashChain, hashToBigInt, type HashChain, type KvEvent } from '../bench/sim/kv-cache.ts';
import { kvEventsFromFlags } from '../bench/sim/kv-events-config.ts';
import { startSimPod, type SimPod, type SimPodOptions } from '../bench/sim/server.ts';

interface Msg {
  topic: string;
  seq: bigint;
  events: unknown[];
}

/** A SUB on the pod's stream; `next()` waits for one message (failing after 5 s). */
class Sub {
  readonly sock = new Subscriber({ linger: 0, receiveTimeout: 5000 });

  constructor(endpoint: string, bind = false) {
    if (bind) this.sock.bindSync(endpoint);
    else this.sock.connect(endpoint);
    this.sock.subscribe('kv@');
  }

  async next(): Promise<Msg> {
    const [topic, seq, payload] = await this.sock.receive();
    const batch = unpack(payload) as [number, unknown[], number];
    return { topic: topic.toString(), seq: seq.readBigUInt64BE(), events: batch[1] };
  }
}

const post = async (pod: SimPod, path: string, body: unknown = {}) => {
  const res = await request(`http://${pod.host}:${pod.port}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.statusCode, text: await res.body.text() };
};

/**
 * ZMQ's slow joiner: what a PUB sends before the subscription reaches it is lost. Publish
 * (an AllBlocksCleared per reset of the empty cache) until one arrives, then read up to the
 * last one sent. The publisher's sequence must be at 0 when this starts (a new or restarted
 * pod); returns the number of batches published.
 */
async function sync(pod: SimPod, sub: Sub): Promise<number> {
  sub.sock.receiveTimeout = 100;
  let posted = 0;
  let got: Msg | undefined;
  while (got === undefined) {
    if (posted === 100) throw new Error('no KV event reached the subscriber');
    expect((await post(pod, '/reset_prefix_cache')).status).toBe(200);
    posted++;
    try {
      got = await sub.next();
    } catch (e) {
      if ((e as { code?: string }).code !== 'EAGAIN') throw e;
    }
  }
  sub.sock.receiveTimeout = 5000;
  while (got.seq < BigInt(posted - 1)) got = await sub.next();
  expect(got.seq).toBe(BigInt(posted - 1));
  expect(got.events).toHaveLength(1);
  expect([{ type: 'AllBlocksCleared' }, ['AllBlocksCleared']]).toContainEqual(got.events[0]);
  return posted;
}

/** Starts a streamed completion and waits for its first chunk; `done` gives the whole stream. */
async function streaming(pod: SimPod, body: object): Promise<{ done: Promise<string> }> {
  const res = await request(`http://127.0.0.1:${pod.port}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'sim-model', ...body, stream: true }) });
  let text = '';
  const first = new Promise<void>((resolve) => res.body.once('data', () => resolve()));
  const done = new Promise<string>((resolve, reject) => {
    res.body.on('data', (c: Buffer) => (text += c.toString()));
    res.body.on('end', () => resolve(text));
    res.body.on('error', reject);
  });
  await first;
  return { done };
}

const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

/** The simulator's chain hashes of these token ids (what BlockStored must carry). */
function chainHashes(tokens: number[], blockSize: number, seed = 0): bigint[] {
  const c: HashChain = { hi: [], lo: [], seed };
  extendHashChain(c, tokens, tokens.length, blockSize);
  return c.hi.map((h, i) => hashToBigInt(h, c.lo[i]));
}

const big = (x: unknown) => BigInt(x as number | bigint);

describe('simulated pod KV events on the wire', () => {
  let pod: SimPod | undefined;
  let sub: Sub | undefined;
  afterEach(async () => {
    sub?.sock.close();
    await pod?.close();
    pod = sub = undefined;
  });

  const start = async (o: Partial<SimPodOptions> = {}) => {
    pod = await startSimPod({ model: 'sim-model', timeScale: 0, numGpuBlocks: 5, blockSize: 4, kvEvents: { bindPort: 0 }, ...o });
    sub = new Sub(pod.kvEvents!.endpoint);
    return { pod, sub };
  };

  it('a request → BlockStored (map encoding) with its full blocks\' token ids, chained to the cached prefix', async () => {
    const { pod, sub } = await start({ numGpuBlocks: 9 });
    expect(pod.kvEvents!.topic).toBe(`kv@127.0.0.1:${pod.port}@sim-model`);
    expect(pod.kvEvents!.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    await sync(pod, sub);

    // 10 prompt tokens, blocks of 4: two full blocks are cached; the tail (2 tokens) is not.
    const a = ids(100, 10);
    expect((await post(pod, '/v1/completions', { model: 'sim-model', prompt: a, max_tokens: 1 })).status).toBe(200);
    const m1 = await sub.next();
    expect(m1.topic).toBe(pod.kvEvents!.topic);
    const [h0, h1] = chainHashes(a, 4);
    expect(m1.events).toHaveLength(1);
    const e1 = m1.events[0] as Record<string, unknown>;
    expect(e1).toMatchObject({ type: 'BlockStored', parent_block_hash: null, token_ids: a.slice(0, 8), block_size: 4, lora_id: null, medium: 'GPU' });
    expect((e1.block_hashes as unknown[]).map(big)).toEqual([h0, h1]);

    // The same 8 tokens then 8 new ones: two prefix hits, two new blocks whose parent is block 1.
    const b = [...a.slice(0, 8), ...ids(500, 8)];
    const r = JSON.parse((await post(pod, '/v1/completions', { model: 'sim-model', prompt: b, max_tokens: 1 })).text);
    expect(r.usage.prompt_tokens).toBe(16);
    const e2 = (await sub.next()).events[0] as Record<string, unknown>;
    expect(e2).toMatchObject({ type: 'BlockStored', token_ids: ids(500, 8), block_size: 4 });
    expect(big(e2.parent_block_hash)).toBe(h1);
    expect((e2.block_hashes as unknown[]).map(big)).toEqual(chainHashes(b, 4).slice(2));
  });

  it('eviction → one BlockRemoved per evicted block (least recently freed first); /reset_prefix_cache → AllBlocksCleared', async () => {
    const { pod, sub } = await start();
    await sync(pod, sub);
    const a = ids(1, 8);
    await post(pod, '/v1/completions', { model: 'sim-model', prompt: a, max_tokens: 1 });
    const stored = (await sub.next()).events[0] as { block_hashes: unknown[] };
    const [a0, a1] = stored.block_hashes.map(big);
    // 4 usable blocks: a 15-token prompt needs all of them, evicting A's (its tail block first).
    expect((await post(pod, '/v1/completions', { model: 'sim-model', prompt: ids(50, 15), max_tokens: 1 })).status).toBe(200);
    const m = await sub.next();
    expect(m.events.map((e) => (e as { type: string }).type)).toEqual(['BlockRemoved', 'BlockRemoved', 'BlockStored']);
    expect(m.events.slice(0, 2)).toEqual([
      { type: 'BlockRemoved', block_hashes: [expect.anything()], medium: 'GPU' },
      { type: 'BlockRemoved', block_hashes: [expect.anything()], medium: 'GPU' },
    ]);
    expect(m.events.slice(0, 2).map((e) => big((e as { block_hashes: unknown[] }).block_hashes[0]))).toEqual([a1, a0]);
    expect((m.events[2] as { token_ids: number[] }).token_ids).toEqual(ids(50, 12));

    expect((await post(pod, '/reset_prefix_cache')).status).toBe(200);
    expect((await sub.next()).events).toEqual([{ type: 'AllBlocksCleared' }]);
    expect(pod.engine.kv.numCachedBlocks).toBe(0);
  });

  it('a LoRA request\'s blocks carry lora_id and lora_name; the array encoding puts the tag first', async () => {
    const { pod, sub } = await start({ loraModules: ['sql-lora'], kvEvents: { bindPort: 0, format: 'array' } });
    await sync(pod, sub);
    await post(pod, '/v1/completions', { model: 'sql-lora', prompt: ids(7, 8), max_tokens: 1 });
    const e = (await sub.next()).events[0] as unknown[];
    expect(e[0]).toBe('BlockStored');
    expect(e.slice(2, 8)).toEqual([null, ids(7, 8), 4, 1, 'GPU', 'sql-lora']);
    // An adapter's blocks never match the base model's.
    expect((e[1] as unknown[]).map(big)).not.toEqual(chainHashes(ids(7, 8), 4));
  });

  it('/sim/restart: running requests aborted, cache emptied without AllBlocksCleared, the sequence back to 0', async () => {
    const { pod, sub: first } = await start({ timeScale: 1, numGpuBlocks: 2000 });
    const before = await sync(pod, first);
    await post(pod, '/v1/completions', { model: 'sim-model', prompt: ids(1, 8), max_tokens: 1 });
    expect((await first.next()).seq).toBe(BigInt(before));
    // A long request is running when the pod restarts: it ends, unfinished.
    const long = await streaming(pod, { prompt: ids(1, 40), max_tokens: 5000 });
    expect(pod.engine.numRunning).toBe(1);
    expect(pod.engine.kv.numCachedBlocks).toBeGreaterThan(0);
    expect((await post(pod, '/sim/restart')).status).toBe(200);
    expect(await long.done).not.toContain('"finish_reason":"length"');
    expect(pod.engine.numRunning).toBe(0);
    expect(pod.engine.kv.numCachedBlocks).toBe(0);
    expect(pod.engine.metrics.success.abort).toBe(0);
    // A new subscriber (the old one holds the running request's events): the first batch after
    // the restart is numbered 0 and is the reset sync() sends, so the restart published nothing.
    first.sock.close();
    sub = new Sub(pod.kvEvents!.endpoint);
    await sync(pod, sub);
  });

  it('/reset_prefix_cache is refused while requests hold blocks, unless ?reset_running_requests=true preempts them', async () => {
    const { pod, sub } = await start({ timeScale: 1, numGpuBlocks: 2000 });
    await sync(pod, sub);
    const running = await streaming(pod, { prompt: ids(1, 40), max_tokens: 200 });
    expect((await sub.next()).events[0]).toMatchObject({ type: 'BlockStored', token_ids: ids(1, 40) });
    expect((await post(pod, '/reset_prefix_cache')).status).toBe(409);
    expect((await post(pod, '/reset_prefix_cache?reset_running_requests=true')).status).toBe(200);
    let m = await sub.next();
    while (!m.events.some((e) => (e as { type: string }).type === 'AllBlocksCleared')) m = await sub.next();
    expect(m.events.at(-1)).toEqual({ type: 'AllBlocksCleared' });
    expect(pod.engine.metrics.preemptions).toBe(1);
    // The preempted request is computed again from its prompt and completes.
    const text = await running.done;
    expect(text).toContain('"finish_reason":"length"');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('connects to a subscriber that binds (--kv-events-endpoint), the pod known by its topic', async () => {
    sub = new Sub('tcp://127.0.0.1:*', true);
    const endpoint = sub.sock.lastEndpoint!;
    pod = await startSimPod({ model: 'sim-model', timeScale: 0, kvEvents: { connect: endpoint } });
    expect(pod.kvEvents!.endpoint).toBe(endpoint);
    await sync(pod, sub);
    await post(pod, '/v1/completions', { model: 'sim-model', prompt: ids(1, 16), max_tokens: 1 });
    const m = await sub.next();
    expect(m.topic).toBe(`kv@127.0.0.1:${pod.port}@sim-model`);
    expect((m.events[0] as { token_ids: number[] }).token_ids).toEqual(ids(1, 16));
  });
});

describe('simulator KV cache, as vLLM\'s block pool', () => {
  it('keeps a second copy of a block two requests computed (both stored, each removed on its own eviction)', () => {
    const events: KvEvent[] = [];
    const kv = new KvCache({ numGpuBlocks: 5, blockSize: 2, onEvent: (e) => events.push(e) });
    const tokens = [1, 2, 3, 4];
    const chain: HashChain = { hi: [], lo: [], seed: 0 };
    extendHashChain(chain, tokens, 4, 2);
    const first = kv.allocate(2)!;
    const second = kv.allocate(2)!;
    kv.cacheBlocks(first, chain, tokens, 0, 2);
    kv.cacheBlocks(second, chain, tokens, 0, 2, { id: 3, name: 'x' });
    expect(events.map((e) => e.type)).toEqual(['BlockStored', 'BlockStored']);
    expect(events[1]).toMatchObject({ blockHashes: chainHashes(tokens, 2), loraId: 3, loraName: 'x' });
    expect(kv.numCachedBlocks).toBe(4);
    expect(kv.lookup(chain, 2)).toEqual(first);
    // The first copy is evicted first (freed first); the second still answers lookups.
    kv.release([...first].reverse());
    kv.release([...second].reverse());
    expect(kv.allocate(2)).toEqual([...first].reverse());
    expect(events.at(-1)).toEqual({ type: 'BlockRemoved', blockHashes: chainHashes(tokens, 2).reverse(), medium: 'GPU' });
    expect(kv.lookup(chain, 2)).toEqual(second);
    expect(kv.numCachedBlocks).toBe(2);
  });
});

describe('fleet KV-event flags', () => {
  let fleet: Fleet | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await fleet?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    fleet = dir = undefined;
  });

  it('--kv-events-port: every pod binds that one port on its own address, listed in the endpoints file (discover mode)', async () => {
    // A port free on the pods' addresses (found by binding one, then released).
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.1.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    dir = mkdtempSync(join(tmpdir(), 'sim-kv-'));
    const file = join(dir, 'endpoints.yaml');
    const plan = fleetPlanFromArgs(['--pods', '2', '--port', '0', '--kv-events-port', String(port), '--endpoints-file', file]);
    if (plan === 'help') throw new Error('unexpected help');
    expect(plan.addressPerPod).toBe(true);
    fleet = await startFleet(plan);
    expect(fleet.pods.map((p) => p.host)).toEqual(['127.0.1.1', '127.0.1.2']);
    expect(fleet.pods.map((p) => p.kvEvents!.endpoint)).toEqual([`tcp://127.0.1.1:${port}`, `tcp://127.0.1.2:${port}`]);
    const yaml = readFileSync(file, 'utf8');
    for (const p of fleet.pods) expect(yaml).toContain(`address: ${p.host}\n    port: ${p.port}`);
    // The second pod, found as <endpoint IP>:<port>, publishes under its own endpoint key.
    const second = fleet.pods[1];
    const sub = new Sub(`tcp://${second.host}:${port}`);
    try {
      await sync(second, sub);
      await post(second, '/v1/completions', { model: 'sim-model', prompt: ids(3, 16), max_tokens: 1 });
      expect((await sub.next()).topic).toBe(`kv@127.0.1.2:${second.port}@sim-model`);
    } finally {
      sub.sock.close();
    }
  });

  it('maps flags and vLLM\'s --kv-events-config onto the pods, and rejects what cannot work', () => {
    expect(kvEventsFromFlags({})).toBeUndefined();
    expect(kvEventsFromFlags({ endpoint: 'tcp://10.0.0.9:5557', format: 'array' })).toEqual({ kvEvents: { format: 'array', connect: 'tcp://10.0.0.9:5557' }, ownAddress: false });
    expect(kvEventsFromFlags({ port: 5557, replayPort: 5558 })).toEqual({ kvEvents: { format: 'map', bindPort: 5557, replayPort: 5558 }, ownAddress: true });
    const config = '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558","buffer_steps":500,"hwm":1000}';
    expect(kvEventsFromFlags({ config })).toEqual({ kvEvents: { format: 'map', bindPort: 5557, replayPort: 5558, bufferSteps: 500, sendHighWaterMark: 1000 }, ownAddress: true });
    expect(kvEventsFromFlags({ config: '{"enable_kv_cache_events":true,"endpoint":"tcp://epp.ns:5557"}' })).toEqual({ kvEvents: { format: 'map', connect: 'tcp://epp.ns:5557' }, ownAddress: false });
    expect(kvEventsFromFlags({ config: '{"enable_kv_cache_events":false,"endpoint":"tcp://*:5557"}' })).toBeUndefined();
    expect(() => kvEventsFromFlags({ config: '{"enable_kv_cache_events":true,"topic":"kv@x"}' })).toThrow(/leave topic out/);
    expect(() => kvEventsFromFlags({ config: '{"enable_kv_cache_events":true,"endpoint":"ipc:///tmp/kv"}' })).toThrow(/tcp:\/\/HOST:PORT/);
    expect(() => kvEventsFromFlags({ config: '{"enable_kv_cache_events":true,"bogus":1}' })).toThrow(/unknown field "bogus"/);
    expect(() => kvEventsFromFlags({ config: '{nope' })).toThrow(/not valid JSON/);
    expect(() => kvEventsFromFlags({ port: 1, endpoint: 'tcp://a:1' })).toThrow(/exclude each other/);
    expect(() => kvEventsFromFlags({ format: 'json', port: 1 })).toThrow(/map or array/);
    expect(() => kvEventsFromFlags({ replayPort: 1 })).toThrow(/need --kv-events-port/);
    expect(() => kvEventsFromFlags({ endpoint: 'tcp://*:5557' })).toThrow(/use --kv-events-port/);
    expect(() => fleetPlanFromArgs(['--kv-events-port', '5557', '--host', '0.0.0.0'])).toThrow(/own loopback address/);
    expect(fleetPlanFromArgs(['--address-per-pod'])).toMatchObject({ addressPerPod: true });
    expect(fleetPlanFromArgs(['--kv-events-endpoint', 'tcp://127.0.0.1:5557'])).not.toHaveProperty('addressPerPod');
  });
});
