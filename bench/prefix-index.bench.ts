// Prefix index memory and lookup cost at full size: 128 endpoints × 31,250
// blocks (the default lruCapacityPerServer), every block distinct, then
// lookups of a 100k-token prompt. Run with --expose-gc for stable heap figures:
//   npx node --expose-gc bench/prefix-index.bench.ts
import { blockHashes } from '../src/prefix/hash.ts';
import { PrefixIndex } from '../src/prefix/indexer.ts';

const PODS = Number(process.env.PODS ?? 128);
const CAP = Number(process.env.CAP ?? 31_250);
const gc = (globalThis as { gc?: () => void }).gc;
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);

gc?.();
const rss0 = process.memoryUsage().rss;
const idx = new PrefixIndex();
// Fill: each pod gets CAP distinct blocks, in prompts of 1,024 blocks.
const t0 = performance.now();
let seq = 0;
for (let p = 0; p < PODS; p++) {
  const key = `10.0.${p >> 8}.${p & 255}:8000`;
  idx.ensureEndpoint(key, CAP);
  for (let added = 0; added < CAP; added += 1024) {
    const text = `pod ${p} prompt ${seq++} `.padEnd(64, '.').repeat(1024);
    idx.add(key, blockHashes(text, 'm', String(seq), 64, 1024));
  }
}
const fillMs = performance.now() - t0;
gc?.();
const mem = process.memoryUsage();

// Lookups: a 100k-token prompt (6,250 blocks) that one pod holds in full.
const long = 'shared system prompt '.repeat(20_000).slice(0, 400_000);
const hashes = blockHashes(long, 'm', undefined, 64, 1 << 20);
idx.add('10.0.0.0:8000', hashes);
let lookups = 0;
const t1 = performance.now();
while (performance.now() - t1 < 1000) {
  idx.match(hashes);
  lookups++;
}
const matchMs = (performance.now() - t1) / lookups;
const hashMs = (() => {
  const t = performance.now();
  for (let i = 0; i < 20; i++) blockHashes(long, 'm', undefined, 64, 1 << 20);
  return (performance.now() - t) / 20;
})();

console.log(
  JSON.stringify(
    {
      node: process.version,
      endpoints: PODS,
      capacityPerEndpoint: CAP,
      entries: idx.size,
      fillSeconds: +(fillMs / 1000).toFixed(2),
      indexTypedArraysMB: +mb(idx.bytes),
      rssGrowthMB: +mb(mem.rss - rss0),
      rssMB: +mb(mem.rss),
      heapUsedMB: +mb(mem.heapUsed),
      arrayBuffersMB: +mb(mem.arrayBuffers),
      hash100kTokensMs: +hashMs.toFixed(3),
      match100kTokensMs: +matchMs.toFixed(3),
    },
    null,
    2,
  ),
);
