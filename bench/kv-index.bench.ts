// The precise prefix index (KvBlockIndex) at size:
// 1. Lookup cost for an 8k-token and a 100k-token prompt over 10 and 64 pods,
//    at EPP block sizes 16 and 64: pod i holds the first (i + 1) / pods of the
//    prompt (so the walk visits every pod's holder on the early blocks), in an
//    index also holding 200k unrelated blocks; podCacheSize = pods, so all of
//    them are kept (the default 10 would cap the walk at 10 holders a block). Request-key hashing of the
//    prompt is timed separately (the floor of any lookup: it must be done).
// 2. Memory per indexed block at 1M blocks (engine blocks of 16, 10 pods),
//    from heap + ArrayBuffer deltas around a full fill, and what clearPod
//    (a scan of the whole index) costs at that size.
// Run with --expose-gc for stable memory figures:
//   npx node --expose-gc bench/kv-index.bench.ts
import { KvBlockIndex } from '../src/kvcache/block-index.ts';
import type { BlockStored } from '../src/kvcache/events.ts';
import { keySeed, requestKeys } from '../src/kvcache/request-keys.ts';

const gc = (globalThis as { gc?: () => void }).gc;
const MODEL = 'Qwen/Qwen2.5-7B-Instruct';
const SEED = keySeed('', MODEL, undefined, undefined);

let rngState = 7;
const tokens = (n: number) =>
  Uint32Array.from({ length: n }, () => {
    rngState = (Math.imul(rngState, 1103515245) + 12345) >>> 0;
    return rngState % 151_000;
  });
let nextHash = 1;

/** BlockStored events (engine blocks of 16, at most 512 blocks each) storing `t` on a pod from the chain root. */
function storeAll(idx: KvBlockIndex, pod: number, t: Uint32Array): void {
  const blocks = Math.floor(t.length / 16);
  let parent: { hi: number; lo: number } | null = null;
  for (let at = 0; at < blocks; at += 512) {
    const n = Math.min(512, blocks - at);
    const hi = new Uint32Array(n).fill(pod + 1);
    const lo = Uint32Array.from({ length: n }, () => nextHash++);
    const ev: BlockStored = {
      type: 'BlockStored',
      blockHashes: { hi, lo, count: n },
      parentBlockHash: parent,
      tokenIds: t.subarray(at * 16, (at + n) * 16),
      blockSize: 16,
      loraId: null,
      medium: 'GPU',
      loraName: null,
      extraKeys: null,
      groupIdx: null,
    };
    idx.blockStored(pod, ev, MODEL);
    parent = { hi: hi[n - 1], lo: lo[n - 1] };
  }
}

function median(fn: () => void, minMs = 400): number {
  for (let i = 0; i < 5; i++) fn();
  const t: number[] = [];
  const end = performance.now() + minMs;
  while (performance.now() < end || t.length < 20) {
    const t0 = performance.now();
    fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[t.length >> 1];
}

console.log(`node ${process.version}\n`);
console.log('| EPP block | prompt tokens | request blocks | pods | hash µs (floor) | lookup µs | best pod blocks |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const blockSize of [16, 64]) {
  for (const promptTokens of [8_000, 100_000]) {
    const prompt = tokens(promptTokens);
    for (const pods of [10, 64]) {
      const idx = new KvBlockIndex({ blockSize, podCacheSize: pods });
      for (let i = 0; i < 200_000 / 256; i++) storeAll(idx, i % pods, tokens(256 * 16));
      for (let p = 0; p < pods; p++) storeAll(idx, p, prompt.subarray(0, Math.floor((promptTokens * (p + 1)) / pods)));
      const keys = requestKeys(prompt, SEED, blockSize, 1 << 20);
      const hashUs = median(() => requestKeys(prompt, SEED, blockSize, 1 << 20)) * 1000;
      let best = 0;
      const lookupUs =
        median(() => {
          best = 0;
          for (const m of idx.lookup(keys).matches) best = Math.max(best, m.blocks);
        }) * 1000;
      console.log(`| ${blockSize} | ${promptTokens} | ${keys.count} | ${pods} | ${hashUs.toFixed(0)} | ${lookupUs.toFixed(0)} | ${best} |`);
    }
  }
}

console.log('\n| EPP block | engine blocks | request keys | entries | heap + ArrayBuffer growth MB | bytes per engine block | typed arrays MB | fill s | clearPod ms |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
const BLOCKS = Number(process.env.BLOCKS ?? 1_000_000);
// ArrayBuffers are released after the collection that finds them dead: collect, let it settle, collect again.
const heap = async () => {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
/** Fill a fresh index with BLOCKS engine blocks and report; the index is garbage once this returns. */
async function fill(blockSize: number): Promise<string> {
  const before = await heap();
  const idx = new KvBlockIndex({ blockSize });
  const t0 = performance.now();
  for (let b = 0; b < BLOCKS; b += 64) storeAll(idx, (b / 64) % 10, tokens(Math.min(64, BLOCKS - b) * 16));
  const fillS = (performance.now() - t0) / 1000;
  const grown = (await heap()) - before;
  const s = idx.stats();
  const t1 = performance.now();
  idx.clearPod(3);
  const clearMs = performance.now() - t1;
  return `| ${blockSize} | ${s.engineBlocks} | ${s.keys} | ${s.entries} | ${(grown / 2 ** 20).toFixed(0)} | ${(grown / s.engineBlocks).toFixed(0)} | ${(s.bytes / 2 ** 20).toFixed(0)} | ${fillS.toFixed(1)} | ${clearMs.toFixed(1)} |`;
}
for (const blockSize of [16, 64]) console.log(await fill(blockSize));
if (!gc) console.log('\n(run with --expose-gc for the memory figures)');
