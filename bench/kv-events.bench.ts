// KV-event throughput on one core: decoding vLLM's msgpack KVEventBatch with
// msgpackr and with @msgpack/msgpack, in both event encodings (positional
// arrays, vLLM ≤ 0.23; maps with "type", vLLM ≥ 0.24) and both hash forms
// (64-bit integers, 32-byte digests), then decoding plus indexing into
// KvBlockIndex at EPP block sizes 16 and 64. Floors measured in the same run:
// the msgpack library's parse alone (decoding) and the request-key chain over
// the same tokens (indexing).
//
// The stream is a simulated vLLM step loop over 8 pods: each batch has 8
// BlockStored of 1–64 blocks × 16 tokens (new prompts, continuations of a
// sequence's tip, branches from the middle of one) and 2 BlockRemoved of 1–16
// earlier blocks.
//   npx node bench/kv-events.bench.ts
import { decode } from '@msgpack/msgpack';
import { Packr, Unpackr } from 'msgpackr';
import { KvBlockIndex } from '../src/kvcache/block-index.ts';
import { batchFromDecoded, decodeKvEventBatch, type KvEventBatch } from '../src/kvcache/events.ts';
import { keySeed, requestKeys } from '../src/kvcache/request-keys.ts';

const PODS = 8;
const BATCHES = Number(process.env.BATCHES ?? 600);
const REPS = Number(process.env.REPS ?? 5);

let seed = 42;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const int = (n: number) => Math.floor(rnd() * n);
const hash64 = () => (BigInt(int(2 ** 32)) << 32n) | BigInt(int(2 ** 32));

type Encoding = 'array' | 'map';
type HashForm = 'int' | 'bytes';

interface Stored {
  hashes: bigint[];
  parent: bigint | null;
  tokens: number[];
}

/** One simulated step per batch: what each pod's engine stored and evicted. */
function simulate(): { pod: number; stored: Stored[]; removed: bigint[][] }[] {
  const chains: bigint[][][] = Array.from({ length: PODS }, () => []);
  const pools: bigint[][] = Array.from({ length: PODS }, () => []);
  const out: { pod: number; stored: Stored[]; removed: bigint[][] }[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const pod = b % PODS;
    const stored: Stored[] = [];
    for (let e = 0; e < 8; e++) {
      const n = 1 + int(64);
      const hashes = Array.from({ length: n }, hash64);
      const tokens = Array.from({ length: n * 16 }, () => int(151_000));
      const mine = chains[pod];
      const r = rnd();
      let parent: bigint | null = null;
      if (mine.length > 0 && r < 0.5) {
        const c = mine[int(mine.length)];
        parent = c[c.length - 1];
        c.push(...hashes);
      } else if (mine.length > 0 && r < 0.7) {
        const c = mine[int(mine.length)];
        const at = int(c.length);
        parent = c[at];
        mine.push([...c.slice(0, at + 1), ...hashes]);
      } else mine.push(hashes.slice());
      if (mine.length > 64) mine.splice(0, mine.length - 64);
      pools[pod].push(...hashes);
      stored.push({ hashes, parent, tokens });
    }
    const removed = [0, 1].map(() => pools[pod].splice(int(Math.max(1, pools[pod].length - 16)), 1 + int(16)));
    out.push({ pod, stored, removed });
  }
  return out;
}

const packr = new Packr({ useRecords: false, variableMapSize: true });

function encode(step: ReturnType<typeof simulate>[number], enc: Encoding, form: HashForm): Uint8Array {
  const h = (v: bigint) => {
    if (form === 'int') return v;
    const b = Buffer.alloc(32, 0x5a);
    b.writeBigUInt64BE(v, 24);
    return b;
  };
  const events: unknown[] = step.stored.map((s) =>
    enc === 'array'
      ? ['BlockStored', s.hashes.map(h), s.parent === null ? null : h(s.parent), s.tokens, 16, null, 'GPU', null]
      : {
          type: 'BlockStored',
          block_hashes: s.hashes.map(h),
          parent_block_hash: s.parent === null ? null : h(s.parent),
          token_ids: s.tokens,
          block_size: 16,
          lora_id: null,
          medium: 'GPU',
          lora_name: null,
          extra_keys: s.hashes.map(() => null),
          group_idx: 0,
          kv_cache_spec_kind: 'full_attention',
        },
  );
  for (const r of step.removed) events.push(enc === 'array' ? ['BlockRemoved', r.map(h), 'GPU'] : { type: 'BlockRemoved', block_hashes: r.map(h), medium: 'GPU', group_idx: 0 });
  return new Uint8Array(packr.pack([1_789_095_808.25, events, 0]));
}

const steps = simulate();
const eventsPerPass = steps.reduce((n, s) => n + s.stored.length + s.removed.length, 0);
const tokensPerPass = steps.reduce((n, s) => n + s.stored.reduce((m, e) => m + e.tokens.length, 0), 0);

/** Median events/s over REPS passes of `fn` over the whole stream (after one warm-up pass), and the spread. */
function rate(fn: () => void): { median: number; min: number; max: number } {
  fn();
  const r: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    fn();
    r.push(eventsPerPass / ((performance.now() - t0) / 1000));
  }
  r.sort((a, b) => a - b);
  return { median: r[r.length >> 1], min: r[0], max: r[r.length - 1] };
}

const fmt = (x: { median: number; min: number; max: number }) =>
  `${(x.median / 1000).toFixed(0)}k | ${(x.min / 1000).toFixed(0)}k–${(x.max / 1000).toFixed(0)}k`;

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });
// decodeKvEventBatch parses with @msgpack/msgpack; msgpackr's output goes through the same walk.
const libraries: [string, (b: Uint8Array) => unknown, (b: Uint8Array) => KvEventBatch][] = [
  ['msgpackr', (b) => unpackr.unpack(b), (b) => batchFromDecoded(unpackr.unpack(b))],
  ['@msgpack/msgpack', (b) => decode(b, { useBigInt64: true }), decodeKvEventBatch],
];

console.log(`node ${process.version}; ${steps.length} batches, ${eventsPerPass} events, ${tokensPerPass} tokens per pass; median of ${REPS} passes (min–max)\n`);
console.log('| encoding | hashes | library | parse only (floor), events/s | spread | decode to typed events, events/s | spread | MB/s |');
console.log('|---|---|---|---:|---|---:|---|---:|');
const payloads = new Map<string, Uint8Array[]>();
for (const enc of ['array', 'map'] as const) {
  for (const form of ['int', 'bytes'] as const) {
    const bufs = steps.map((s) => encode(s, enc, form));
    payloads.set(`${enc}/${form}`, bufs);
    const bytes = bufs.reduce((n, b) => n + b.length, 0);
    for (const [name, parse, full] of libraries) {
      const floor = rate(() => {
        for (const b of bufs) parse(b);
      });
      const r = rate(() => {
        for (const b of bufs) full(b);
      });
      console.log(`| ${enc} | ${form} | ${name} | ${fmt(floor)} | ${fmt(r)} | ${((bytes / eventsPerPass) * r.median / 1e6).toFixed(0)} |`);
    }
  }
}

console.log('\n| encoding | EPP block | index | decode + index, events/s | spread | key chain alone (floor), events/s | spread |');
console.log('|---|---:|---|---:|---|---:|---|');
const tokenArrays = steps.flatMap((s) => s.stored.map((e) => Uint32Array.from(e.tokens)));
function ingest(idx: KvBlockIndex, bufs: Uint8Array[], podOffset: number): void {
  for (let i = 0; i < bufs.length; i++) {
    const batch = decodeKvEventBatch(bufs[i]);
    const pod = steps[i].pod + podOffset;
    for (const ev of batch.events) {
      if (ev.type === 'BlockStored') idx.blockStored(pod, ev, 'm');
      else if (ev.type === 'BlockRemoved') idx.blockRemoved(pod, ev);
      else idx.clearPod(pod);
    }
  }
}
for (const blockSize of [16, 64]) {
  const seedKey = keySeed('', 'm', undefined, undefined);
  const floor = rate(() => {
    for (const t of tokenArrays) requestKeys(t, seedKey, blockSize, 1 << 20);
  });
  for (const enc of ['array', 'map'] as const) {
    const bufs = payloads.get(`${enc}/int`) ?? [];
    // Fresh: a new index per pass, so the pass includes growing its tables from empty.
    const fresh = rate(() => ingest(new KvBlockIndex({ blockSize }), bufs, 0));
    // Warm: one index; each pass is the same stream from 8 new pods (same request keys, new engine blocks, holders past podCacheSize evicted).
    const warm = new KvBlockIndex({ blockSize });
    let pass = 0;
    const steady = rate(() => ingest(warm, bufs, PODS * pass++));
    console.log(`| ${enc} | ${blockSize} | fresh | ${fmt(fresh)} | ${fmt(floor)} |`);
    console.log(`| ${enc} | ${blockSize} | warm (${warm.stats().keys} keys, ${warm.stats().entries} entries) | ${fmt(steady)} | ${fmt(floor)} |`);
  }
}
