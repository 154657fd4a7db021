// precise-prefix-cache-producer end to end below the ext_proc layer: real ZMQ
// (the simulator's publisher connecting to the producer's bound socket), the
// engines' events decoded and indexed, and each request's match read by
// prefix-cache-scorer. BlockStored → route there; BlockRemoved → not any
// more; AllBlocksCleared → gone; a sequence gap without replay → cleared; an
// endpoint that leaves the pool → its blocks gone.
import { afterEach, describe, expect, it } from 'vitest';
import { KvEventPublisher } from '../bench/sim/kv-publisher.ts';
import type { KvEvent } from '../bench/sim/kv-cache.ts';
import type { Endpoint } from '../src/pool/endpoint.ts';
import { CycleState } from '../src/scheduling/framework.ts';
import { PREFIX_MATCH } from '../src/scheduling/producers/approx-prefix.ts';
import type { PrecisePrefixProducer } from '../src/scheduling/producers/precise-prefix.ts';
import { TOKENIZED_PROMPT } from '../src/scheduling/producers/token-producer.ts';
import { create, makePool, request } from './helpers/scheduling.ts';

const BS = 16;
const tokens = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup() {
  const { pool, endpoints } = makePool([{}, {}]);
  const producer = create<PrecisePrefixProducer>('precise-prefix-cache-producer', { tokenProcessorConfig: { blockSizeTokens: BS }, kvEventsConfig: { zmqEndpoint: 'tcp://127.0.0.1:*', discoverPods: false } }, pool);
  await producer.start();
  cleanup.push(() => producer.stop());
  const pubs = [];
  for (const ep of endpoints) {
    const pub = new KvEventPublisher({ endpoint: producer.ingest.boundEndpoint!, bind: false, topic: `kv@${ep.key}@sim-model`, format: 'map' });
    cleanup.push(async () => pub.close());
    pubs.push(pub);
  }
  return { pool, endpoints, producer, pubs };
}

function match(producer: PrecisePrefixProducer, endpoints: readonly Endpoint[], ids: number[]) {
  const st = new CycleState(request({ model: 'sim-model', prompt: 'x' }));
  st.set(TOKENIZED_PROMPT, { ids: Uint32Array.from(ids), backend: 'local' });
  producer.produce(st, endpoints);
  const r = st.get(PREFIX_MATCH)!;
  return endpoints.map((e) => r.matched.get(e.key) ?? 0);
}

const stored = (hashes: bigint[], ids: number[], parent: bigint | null = null): KvEvent => ({ type: 'BlockStored', blockHashes: hashes, parentBlockHash: parent, tokenIds: ids, blockSize: BS, loraId: null, loraName: null, medium: 'GPU' });

/** Publish until the producer has seen it (ZMQ's slow joiner), then settle. */
async function until(cond: () => boolean, send?: () => void): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) {
    send?.();
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(cond()).toBe(true);
}

describe('precise-prefix-cache-producer with real KV events', () => {
  it('BlockStored routes there, BlockRemoved and AllBlocksCleared take it back', async () => {
    const { endpoints, producer, pubs } = await setup();
    const prompt = tokens(64);
    // Pod 2 stores the prompt's 4 blocks (engine hashes are its own business).
    await until(() => match(producer, endpoints, prompt)[1] === 4, () => pubs[1].publish([stored([11n, 12n, 13n, 14n], prompt)]));
    expect(match(producer, endpoints, prompt)).toEqual([0, 4]);
    // A longer prompt sharing the first 4 blocks still matches 4 there.
    expect(match(producer, endpoints, [...prompt, ...tokens(32, 500)])).toEqual([0, 4]);
    // Evicting block 3 leaves 2 leading blocks.
    pubs[1].publish([{ type: 'BlockRemoved', blockHashes: [13n], medium: 'GPU' }]);
    await until(() => match(producer, endpoints, prompt)[1] === 2);
    pubs[1].publish([{ type: 'AllBlocksCleared' }]);
    await until(() => match(producer, endpoints, prompt)[1] === 0);
  });

  it('a sequence gap without a replay socket clears that pod only; an endpoint leaving the pool drops its blocks', async () => {
    const { pool, endpoints, producer, pubs } = await setup();
    const a = tokens(32);
    const b = tokens(32, 1000);
    await until(() => match(producer, endpoints, a)[0] === 2, () => pubs[0].publish([stored([1n, 2n], a)]));
    await until(() => match(producer, endpoints, b)[1] === 2, () => pubs[1].publish([stored([3n, 4n], b)]));
    // A batch lost on the way (numbered, never sent): the next one reveals the gap.
    pubs[0].publish([stored([5n], tokens(16, 2000))], { drop: true });
    pubs[0].publish([stored([6n], tokens(16, 3000))]);
    await until(() => match(producer, endpoints, a)[0] === 0);
    expect(match(producer, endpoints, b)[1]).toBe(2);
    expect(producer.ingest.uncertain.has(endpoints[0].key)).toBe(false);
    pool.replaceAll([{ address: endpoints[0].address, port: endpoints[0].port, name: endpoints[0].name }]);
    expect(producer.index.stats().keys).toBeLessThan(4);
    expect(match(producer, [pool.list()[0]], b)).toEqual([0]);
  });

  it('without tokens it scores with its approximate side index, learnt from its own picks', async () => {
    const { endpoints, producer } = await setup();
    const body = { model: 'sim-model', prompt: 'You are a careful assistant. '.repeat(20) };
    const st = new CycleState(request(body));
    producer.produce(st, endpoints);
    producer.preRequest(st, endpoints[1], new Map());
    await new Promise((r) => setImmediate(r));
    const st2 = new CycleState(request(body));
    producer.produce(st2, endpoints);
    const r = st2.get(PREFIX_MATCH)!;
    expect(r.matched.get(endpoints[1].key)).toBe(r.total);
    expect(r.matched.get(endpoints[0].key) ?? 0).toBe(0);
  });
});

describe('precise-prefix-cache-producer configuration', () => {
  it('refuses the estimate token backend (its ids are not the engine tokens), where llm-d silently degrades', async () => {
    const { loadConfig, parseConfigText } = await import('../src/scheduling/config.ts');
    const { createRegistry } = await import('../src/builtin-plugins.ts');
    const { context } = await import('./helpers/scheduling.ts');
    const yaml = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: token-producer\n- type: precise-prefix-cache-producer\n- type: prefix-cache-scorer\n  parameters: {prefixMatchInfoProducerName: precise-prefix-cache-producer}\n';
    expect(() => loadConfig(parseConfigText(yaml, 't'), createRegistry(), context(makePool([]).pool), 't')).toThrow(/needs the engine's real token ids, but token-producer "token-producer" uses the estimate backend/);
  });
});
