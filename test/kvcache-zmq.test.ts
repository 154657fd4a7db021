// The ZMQ transport of vLLM KV events, both ends, over real sockets on 127.0.0.1:
// llm-epp's KvEventSubscriber (bind and connect modes, sequence gaps and resets, replay,
// malformed frames, close) against the simulator's KvEventPublisher and raw zeromq
// sockets. ZMQ's slow joiner (a PUB drops what it sends before the subscription reaches
// it) is handled by publishing until a message arrives, never by fixed sleeps.
import { afterEach, describe, expect, it } from 'vitest';
import { Publisher, Router } from 'zeromq';
import { Unpackr } from 'msgpackr';
import { KvEventSubscriber, type KvEventMessage, type KvEventSubscriberOptions, type KvSequenceGap } from '../src/kvcache/zmq-subscriber.ts';
import { SequenceTracker } from '../src/kvcache/sequence-tracker.ts';
import { REPLAY_END_SEQ, publisherBinds, readSeq, seqFrame } from '../src/kvcache/zmq-frames.ts';
import { KvEventPublisher, type KvEventPublisherOptions } from '../bench/sim/kv-publisher.ts';
import { encodeKvEventBatch } from '../bench/sim/kv-batch-encoding.ts';
import type { KvEvent } from '../bench/sim/kv-cache.ts';
import { thrown } from './helpers/thrown.ts';

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });
const decode = (payload: Uint8Array): unknown => unpackr.unpack(payload);

/** A BlockStored whose single token id tags the batch, so a test can tell batches apart. */
function stored(tag: number): KvEvent {
  return { type: 'BlockStored', blockHashes: [BigInt(tag) + 1000n], parentBlockHash: null, tokenIds: [tag], blockSize: 1, loraId: null, loraName: null, medium: 'GPU' };
}

/** The tag of a map-format, array-batch payload made by stored(). */
function tagOf(payload: Uint8Array): number {
  const batch = decode(payload) as [number, { token_ids: number[] }[], number];
  return batch[1][0].token_ids[0];
}

async function until(cond: () => boolean, what: string, step?: () => void): Promise<void> {
  const deadline = Date.now() + 8000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    step?.();
    await new Promise((r) => setTimeout(r, 10));
  }
}

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

interface Rig {
  sub: KvEventSubscriber;
  log: string[];
  msgs: KvEventMessage[];
  gaps: KvSequenceGap[];
  errors: unknown[];
}

function subscriber(opts: Partial<KvEventSubscriberOptions> = {}): Rig {
  const log: string[] = [];
  const msgs: KvEventMessage[] = [];
  const gaps: KvSequenceGap[] = [];
  const errors: unknown[] = [];
  const sub = new KvEventSubscriber({
    onMessage: (m) => {
      msgs.push(m);
      log.push(`msg ${m.source}/${m.seq}${m.replayed ? ' replayed' : ''}`);
    },
    onGap: (g) => {
      gaps.push(g);
      log.push(`gap ${g.kind} ${g.expected}->${g.got} ${g.replay}`);
    },
    onDisconnect: (s) => log.push(`disconnect ${s}`),
    onReconnect: (s) => log.push(`reconnect ${s}`),
    onError: (e) => errors.push(e),
    ...opts,
  });
  closers.push(() => sub.close());
  return { sub, log, msgs, gaps, errors };
}

function publisher(opts: Partial<KvEventPublisherOptions> & { topic: string }): KvEventPublisher {
  const pub = new KvEventPublisher({ endpoint: 'tcp://127.0.0.1:*', ...opts });
  closers.push(() => pub.close());
  return pub;
}

/** Publishes tagged batches until one reaches `rig` from `source`/`topic` (the subscription is live). */
async function warm(rig: Rig, pub: KvEventPublisher, source: string | undefined): Promise<void> {
  const seen = () => rig.msgs.some((m) => m.source === source && m.topic === pub.topic);
  await until(seen, `first message from ${pub.topic}`, () => pub.publish([stored(0)]));
}

/** Publishes `n` batches and waits until the last one is delivered. */
async function publishAndWait(rig: Rig, pub: KvEventPublisher, n: number, tag = 1): Promise<bigint> {
  let last = 0n;
  for (let i = 0; i < n; i++) last = pub.publish([stored(tag)]);
  await until(() => rig.msgs.some((m) => m.topic === pub.topic && m.seq === last && !m.replayed), `seq ${last}`);
  return last;
}

describe('framing and sequence helpers', () => {
  it('encodes and reads 8-byte big-endian sequences, and the replay end marker is -1 signed', () => {
    expect(seqFrame(258n).toString('hex')).toBe('0000000000000102');
    expect(readSeq(seqFrame(2n ** 64n - 2n))).toBe(2n ** 64n - 2n);
    expect(readSeq(Buffer.alloc(3))).toBeUndefined();
    expect(seqFrame(REPLAY_END_SEQ).readBigInt64BE()).toBe(-1n);
  });

  it("follows vLLM's bind-or-connect rule", () => {
    expect(publisherBinds('tcp://*:5557')).toBe(true);
    expect(publisherBinds('tcp://[::]:5557')).toBe(true);
    expect(publisherBinds('ipc:///tmp/kv')).toBe(true);
    expect(publisherBinds('inproc://kv')).toBe(true);
    expect(publisherBinds('tcp://10.0.0.7:5557')).toBe(false);
  });

  it('classifies first, next, gap and reset, and evicts the least recently seen topic past the cap', () => {
    const t = new SequenceTracker(2);
    expect(t.check('a', 5n)).toEqual({ kind: 'first' });
    t.commit('a', 5n);
    expect(t.check('a', 6n)).toEqual({ kind: 'next' });
    expect(t.check('a', 9n)).toEqual({ kind: 'gap', expected: 6n });
    expect(t.check('a', 5n)).toEqual({ kind: 'reset', expected: 6n });
    t.commit('b', 0n);
    t.commit('a', 6n); // a is now the most recently seen
    t.commit('c', 0n); // evicts b
    expect(t.size).toBe(2);
    expect(t.evicted).toBe(1);
    expect(t.check('b', 1n)).toEqual({ kind: 'first' });
    expect(t.check('a', 7n)).toEqual({ kind: 'next' });
  });
});

describe('KVEventBatch encoding (simulated vLLM)', () => {
  const hashes = [7n, 2n ** 40n + 3n, 2n ** 63n + 5n, 2n ** 64n - 1n];
  const ev: KvEvent = { type: 'BlockStored', blockHashes: hashes, parentBlockHash: 2n ** 63n, tokenIds: [1, 300, 70_000], blockSize: 1, loraId: 3, loraName: 'adapter-a', medium: 'GPU' };

  it('map events in an array batch: type-tagged maps, defaults omitted, ts a float64, hashes exact 64-bit integers', () => {
    const payload = encodeKvEventBatch([ev, { type: 'BlockRemoved', blockHashes: [9n], medium: 'GPU' }, { type: 'AllBlocksCleared' }], 1700000000, { dataParallelRank: 2 });
    expect(payload[0]).toBe(0x93); // fixarray of 3
    expect(payload[1]).toBe(0xcb); // float64 even for an integral ts
    expect(decode(payload)).toEqual([
      1700000000,
      [
        {
          type: 'BlockStored',
          block_hashes: [7, 2n ** 40n + 3n, 2n ** 63n + 5n, 2n ** 64n - 1n],
          parent_block_hash: 2n ** 63n,
          token_ids: [1, 300, 70_000],
          block_size: 1,
          lora_id: 3,
          medium: 'GPU',
          lora_name: 'adapter-a',
        },
        { type: 'BlockRemoved', block_hashes: [9], medium: 'GPU' },
        { type: 'AllBlocksCleared' },
      ],
      2,
    ]);
    // uint64 (0xcf) for hashes at or above 2^63, never a float (0xcb) or an extension.
    expect(payload.includes(Buffer.from('cf8000000000000005', 'hex'))).toBe(true);
  });

  it('positional events (vLLM <= 0.23) and a map batch', () => {
    expect(decode(encodeKvEventBatch([ev, { type: 'BlockRemoved', blockHashes: [9n], medium: 'GPU' }, { type: 'AllBlocksCleared' }], 1.5, { format: 'array' }))).toEqual([
      1.5,
      [['BlockStored', [7, 2n ** 40n + 3n, 2n ** 63n + 5n, 2n ** 64n - 1n], 2n ** 63n, [1, 300, 70_000], 1, 3, 'GPU', 'adapter-a'], ['BlockRemoved', [9], 'GPU'], ['AllBlocksCleared']],
      0,
    ]);
    expect(decode(encodeKvEventBatch([{ type: 'AllBlocksCleared' }], 2.25, { batch: 'map' }))).toEqual({ ts: 2.25, events: [{ type: 'AllBlocksCleared' }], data_parallel_rank: 0 });
  });
});

describe('KvEventSubscriber', () => {
  it('bind mode: two pods connect to the bound socket, each delivered under its own topic, no source', async () => {
    const rig = subscriber();
    const endpoint = await rig.sub.bind('tcp://127.0.0.1:*');
    expect(endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const a = publisher({ endpoint, topic: 'kv@10.0.0.1:8000@m' });
    const b = publisher({ endpoint, topic: 'kv@10.0.0.2:8000@m', format: 'array' });
    expect(a.endpoint).toBe(endpoint); // no wildcard: the publisher connected
    await warm(rig, a, undefined);
    await warm(rig, b, undefined);
    a.publish([stored(11)]);
    b.publish([stored(22)]);
    await until(() => rig.msgs.filter((m) => tagOfAny(m.payload) > 0).length === 2, 'both tagged batches');
    const tagged = rig.msgs.filter((m) => tagOfAny(m.payload) > 0).map((m) => [m.source, m.topic, tagOfAny(m.payload)]);
    expect(tagged.sort()).toEqual([
      [undefined, 'kv@10.0.0.1:8000@m', 11],
      [undefined, 'kv@10.0.0.2:8000@m', 22],
    ]);
    expect(rig.gaps).toEqual([]);
    await expect(rig.sub.bind('tcp://127.0.0.1:*')).rejects.toThrow(/already bound/);
  });

  it('connect mode: sources added and removed; nothing arrives from a removed source', async () => {
    const rig = subscriber();
    const a = publisher({ topic: 'kv@a@m' });
    // `bind` overrides vLLM's rule, which would connect to a concrete address.
    const b = publisher({ topic: 'kv@b@m', endpoint: 'tcp://127.0.0.1:0', bind: true });
    expect(b.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
    rig.sub.addSource('a', a.endpoint);
    rig.sub.addSource('b', b.endpoint);
    await warm(rig, a, 'a');
    await warm(rig, b, 'b');
    expect(rig.msgs.every((m) => m.source === (m.topic === 'kv@a@m' ? 'a' : 'b'))).toBe(true);

    expect(rig.sub.removeSource('a')).toBe(true);
    expect(rig.sub.removeSource('a')).toBe(false);
    expect(rig.sub.has('a')).toBe(false);
    const fromA = rig.msgs.filter((m) => m.source === 'a').length;
    // A second socket on the same publisher: once it receives, a still-open 'a' would have too.
    rig.sub.addSource('a2', a.endpoint);
    await warm(rig, a, 'a2');
    await publishAndWait(rig, a, 20);
    expect(rig.msgs.filter((m) => m.source === 'a').length).toBe(fromA);
    expect(rig.sub.sourceCount).toBe(2);

    // A simulator step loop publishes synchronously, well past zeromq.js's 512 synchronous sends.
    for (let i = 0; i < 2000; i++) b.publish([stored(3)]);
    expect(b.errors).toBe(0);
    await publishAndWait(rig, b, 1, 4);
  });

  it('refuses bad sources: duplicate id, too many, bad endpoint, oversized id', () => {
    const { sub } = subscriber({ maxSources: 2 });
    sub.addSource('a', 'tcp://127.0.0.1:1');
    expect(thrown(() => sub.addSource('a', 'tcp://127.0.0.1:2'), Error).message).toMatch(/already added/);
    sub.addSource('b', 'tcp://127.0.0.1:2');
    expect(thrown(() => sub.addSource('c', 'tcp://127.0.0.1:3'), Error).message).toMatch(/too many/);
    sub.removeSource('b');
    expect(thrown(() => sub.addSource('c', 'http://x:1'), Error).message).toMatch(/tcp:\/\//);
    expect(thrown(() => sub.addSource('c', 'tcp://127.0.0.1:3', 'nope'), Error).message).toMatch(/replayEndpoint/);
    expect(thrown(() => sub.addSource('x'.repeat(300), 'tcp://127.0.0.1:3'), Error).message).toMatch(/at most 256/);
    expect(thrown(() => new KvEventSubscriber({ onMessage: () => {}, maxPayloadBytes: 0 }), Error).message).toMatch(/maxPayloadBytes/);
  });

  it('reports a sequence gap before delivering the message after it; a throwing handler does not stop the loop', async () => {
    let throwOnce = true;
    const rig = subscriber({
      onMessage: (m) => {
        rig.msgs.push(m);
        rig.log.push(`msg ${m.source}/${m.seq}`);
        if (tagOf(m.payload) === 5 && throwOnce) {
          throwOnce = false;
          throw new Error('handler bug');
        }
      },
    });
    const pub = publisher({ topic: 'kv@p@m' });
    rig.sub.addSource('p', pub.endpoint);
    await warm(rig, pub, 'p');
    const last = await publishAndWait(rig, pub, 3, 5);
    pub.publish([stored(1)], { drop: true });
    pub.publish([stored(1)], { drop: true });
    const got = pub.publish([stored(1)]);
    await until(() => rig.msgs.some((m) => m.seq === got), 'message after the gap');
    expect(rig.gaps).toEqual([{ source: 'p', topic: 'kv@p@m', expected: last + 1n, got, kind: 'gap', missing: 2n, replay: 'none' }]);
    expect(rig.log.slice(-2)).toEqual([`gap gap ${last + 1n}->${got} none`, `msg p/${got}`]);
    expect(rig.sub.stats.gaps).toBe(1);
    expect(rig.errors.map(String)).toEqual(['Error: handler bug']);
    expect(rig.sub.stats.callbackErrors).toBe(1);
  });

  it('a restarted publisher: disconnect and reconnect reported, then a reset', async () => {
    const rig = subscriber();
    const pub = publisher({ topic: 'kv@p@m' });
    rig.sub.addSource('p', pub.endpoint);
    await warm(rig, pub, 'p');
    // Far enough ahead that the restarted publisher cannot count back up to last + 1 unseen.
    const last = await publishAndWait(rig, pub, 300);
    const endpoint = pub.endpoint;
    await pub.restart();
    expect(pub.endpoint).toBe(endpoint);
    expect(pub.nextSeq).toBe(0n);
    const before = rig.msgs.length;
    await until(() => rig.msgs.length > before, 'a message from the restarted publisher', () => pub.publish([stored(2)]));
    expect(rig.log).toContain('disconnect p');
    expect(rig.log).toContain('reconnect p');
    expect(rig.log.indexOf('disconnect p')).toBeLessThan(rig.log.indexOf('reconnect p'));
    const gap = rig.gaps.at(-1)!;
    expect(gap).toMatchObject({ source: 'p', kind: 'reset', expected: last + 1n, replay: 'none' });
    expect(gap.got).toBe(rig.msgs[before].seq);
    expect(gap.missing).toBe(gap.got);
    expect(rig.sub.stats.resets).toBe(1);
  });

  it('fills a gap from the replay socket: replayed batches in order, then the live one', async () => {
    const rig = subscriber();
    const pub = publisher({ topic: 'kv@p@m', replayEndpoint: 'tcp://127.0.0.1:*' });
    expect(pub.replayEndpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    rig.sub.addSource('p', pub.endpoint, pub.replayEndpoint);
    await warm(rig, pub, 'p');
    const last = await publishAndWait(rig, pub, 2);
    for (const tag of [41, 42, 43]) pub.publish([stored(tag)], { drop: true });
    const got = pub.publish([stored(44)]);
    await until(() => rig.msgs.some((m) => m.seq === got), 'the live message after the gap');
    expect(rig.gaps).toEqual([{ source: 'p', topic: 'kv@p@m', expected: last + 1n, got, kind: 'gap', missing: 3n, replay: 'ok' }]);
    const tail = rig.msgs.slice(-4);
    expect(tail.map((m) => [m.seq, m.replayed, tagOf(m.payload)])).toEqual([
      [last + 1n, true, 41],
      [last + 2n, true, 42],
      [last + 3n, true, 43],
      [got, false, 44],
    ]);
    expect(rig.log.at(-5)).toBe(`gap gap ${last + 1n}->${got} ok`);
    expect(rig.sub.stats).toMatchObject({ replaysOk: 1, replayedMessages: 3 });
    // The stream continues from the live message.
    await publishAndWait(rig, pub, 1);
    expect(rig.gaps.length).toBe(1);
  });

  it('after a restart, replays the new stream from seq 0', async () => {
    const rig = subscriber();
    const pub = publisher({ topic: 'kv@p@m', replayEndpoint: 'tcp://127.0.0.1:*' });
    rig.sub.addSource('p', pub.endpoint, pub.replayEndpoint);
    await warm(rig, pub, 'p');
    await publishAndWait(rig, pub, 300);
    await pub.restart();
    await until(() => rig.log.includes('reconnect p'), 'reconnect');
    pub.publish([stored(50)], { drop: true });
    pub.publish([stored(51)], { drop: true });
    const before = rig.msgs.length;
    await until(() => rig.msgs.length > before, 'the restarted stream', () => pub.publish([stored(52)]));
    await until(() => rig.msgs.some((m) => !m.replayed && m.seq === rig.gaps.at(-1)?.got), 'the live message');
    const gap = rig.gaps.at(-1)!;
    expect(gap).toMatchObject({ kind: 'reset', replay: 'ok' });
    expect(gap.got).toBeGreaterThanOrEqual(2n);
    const replayed = rig.msgs.filter((m) => m.replayed);
    expect(replayed.map((m) => m.seq)).toEqual(Array.from({ length: Number(gap.got) }, (_, i) => BigInt(i)));
    expect(replayed.slice(0, 2).map((m) => tagOf(m.payload))).toEqual([50, 51]);
  });

  it('a replay that times out is reported as failed and the live message still follows', async () => {
    const rig = subscriber({ replayTimeoutMs: 200 });
    const silent = new Router({ linger: 0 });
    closers.push(() => silent.close());
    await silent.bind('tcp://127.0.0.1:*');
    const pub = publisher({ topic: 'kv@p@m' });
    rig.sub.addSource('p', pub.endpoint, silent.lastEndpoint!);
    await warm(rig, pub, 'p');
    await publishAndWait(rig, pub, 1);
    pub.publish([stored(1)], { drop: true });
    const got = pub.publish([stored(1)]);
    await until(() => rig.msgs.some((m) => m.seq === got), 'the live message');
    expect(rig.gaps).toHaveLength(1);
    expect(rig.gaps[0]).toMatchObject({ kind: 'gap', replay: 'failed', missing: 1n });
    expect(rig.gaps[0].replayError).toMatch(/timed out after 200 ms/);
    expect(rig.log.slice(-2)).toEqual([`gap gap ${got - 1n}->${got} failed`, `msg p/${got}`]);
    expect(rig.sub.stats.replaysFailed).toBe(1);
  });

  it('a replay the publisher can no longer cover is reported as failed, nothing replayed', async () => {
    const rig = subscriber();
    const pub = publisher({ topic: 'kv@p@m', replayEndpoint: 'tcp://127.0.0.1:*', bufferSteps: 2 });
    rig.sub.addSource('p', pub.endpoint, pub.replayEndpoint);
    await warm(rig, pub, 'p');
    const last = await publishAndWait(rig, pub, 1);
    for (let i = 0; i < 3; i++) pub.publish([stored(1)], { drop: true });
    const got = pub.publish([stored(1)]);
    await until(() => rig.msgs.some((m) => m.seq === got), 'the live message');
    expect(rig.gaps[0]).toMatchObject({ kind: 'gap', expected: last + 1n, got, replay: 'failed' });
    expect(rig.gaps[0].replayError).toMatch(new RegExp(`seq ${last + 3n} where ${last + 1n} was due`));
    expect(rig.msgs.some((m) => m.replayed)).toBe(false);
  });

  it('counts and skips malformed messages; topics outside the filter never arrive', async () => {
    const rig = subscriber({ maxPayloadBytes: 1024 });
    const raw = new Publisher({ linger: 0 });
    closers.push(() => raw.close());
    await raw.bind('tcp://127.0.0.1:*');
    rig.sub.addSource('raw', raw.lastEndpoint!);
    const topic = 'kv@raw@m';
    let seq = 0n;
    const valid = (tag: number) => raw.send([topic, seqFrame(seq++), encodeKvEventBatch([stored(tag)], 1)]);
    await until(() => rig.msgs.length > 0, 'the first raw message', () => void valid(0));
    await until(() => rig.msgs.at(-1)!.seq === seq - 1n, 'the warm-up messages');
    await raw.send([topic, seqFrame(seq)]);
    await raw.send([topic, Buffer.alloc(3), encodeKvEventBatch([stored(1)], 1)]);
    await raw.send(['kv@' + 'x'.repeat(300), seqFrame(seq), encodeKvEventBatch([stored(1)], 1)]);
    await raw.send([topic, seqFrame(seq), Buffer.alloc(1500)]);
    await raw.send([topic, seqFrame(seq), Buffer.alloc(1), Buffer.alloc(1)]);
    await raw.send(['other@x', seqFrame(seq), encodeKvEventBatch([stored(1)], 1)]);
    await valid(99);
    await until(() => rig.msgs.some((m) => tagOf(m.payload) === 99), 'the message after the malformed ones');
    expect(rig.sub.stats).toMatchObject({ malformedFrameCount: 2, malformedSeq: 1, oversizedTopic: 1, oversizedPayload: 1, gaps: 0, resets: 0 });
    expect(new Set(rig.msgs.map((m) => m.topic))).toEqual(new Set([topic]));

    // Over twice the cap, libzmq refuses the frame and drops the connection; ZMQ reconnects.
    await raw.send([topic, seqFrame(seq++), Buffer.alloc(3000)]);
    await until(() => rig.log.includes('disconnect raw'), 'the dropped connection');
    await until(() => rig.msgs.some((m) => tagOf(m.payload) === 77), 'a message after the reconnect', () => void valid(77));
    expect(rig.log).toContain('reconnect raw');
    expect(rig.sub.stats.oversizedPayload).toBe(1);
  });

  it('close() ends pending receives and replays cleanly; nothing can be added after', async () => {
    const rig = subscriber({ replayTimeoutMs: 60_000 });
    const silent = new Router({ linger: 0 });
    closers.push(() => silent.close());
    await silent.bind('tcp://127.0.0.1:*');
    const pub = publisher({ topic: 'kv@p@m' });
    await rig.sub.bind('tcp://127.0.0.1:*');
    rig.sub.addSource('idle', 'tcp://127.0.0.1:1');
    rig.sub.addSource('p', pub.endpoint, silent.lastEndpoint!);
    await warm(rig, pub, 'p');
    pub.publish([stored(1)], { drop: true });
    pub.publish([stored(1)]);
    await until(() => rig.sub.stats.gaps === 1, 'the gap (its replay now waits on a silent router)');
    const delivered = rig.msgs.length;
    await rig.sub.close();
    expect(rig.msgs.length).toBe(delivered);
    expect(rig.gaps).toEqual([]); // the replay was aborted, not reported
    expect(rig.errors).toEqual([]);
    expect(rig.sub.sourceCount).toBe(0);
    expect(thrown(() => rig.sub.addSource('q', pub.endpoint), Error).message).toMatch(/closed/);
    await expect(rig.sub.bind('tcp://127.0.0.1:*')).rejects.toThrow(/closed/);
  });
});

/** The tag of a payload in either event format. */
function tagOfAny(payload: Uint8Array): number {
  const [, events] = decode(payload) as [number, unknown[]];
  const e = events[0];
  return Array.isArray(e) ? (e[3] as number[])[0] : (e as { token_ids: number[] }).token_ids[0];
}
