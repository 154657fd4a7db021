// Prefix-block hashing cost for long prompts: the chained XXH64 over 64-byte
// blocks (16 tokens × 4 chars). Compares llm-epp's implementation (the whole
// chain in one WASM call) with xxhash-wasm called once per block, and with the
// native @node-rs/xxhash when NODE_RS_XXHASH points at an install of it (kept
// out of the project's dependencies):
//   NODE_RS_XXHASH=/tmp/xxb/node_modules/@node-rs/xxhash npx node bench/prefix-hash.bench.ts
import xxhash from 'xxhash-wasm';
import { blockHashes } from '../src/prefix/hash.ts';

const { h64Raw } = await xxhash();

const sizes = [16_000, 64_000, 400_000]; // ≈ 4k, 16k, 100k tokens
const text = (n: number) => {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `token${i % 977} `;
  return s.slice(0, n);
};

function time(fn: () => void, minMs = 1000): number {
  for (let i = 0; i < 5; i++) fn();
  let runs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn();
    runs++;
  }
  return (performance.now() - t0) / runs;
}

const rows: string[] = ['| prompt | blocks | candidate | ms per prompt | ns per block |', '|---|---:|---|---:|---:|'];
type Xxh64 = (input: Buffer, seed?: bigint) => bigint;
let native: Xxh64 | undefined;
if (process.env.NODE_RS_XXHASH) native = ((await import(process.env.NODE_RS_XXHASH)) as { xxh64: Xxh64 }).xxh64;

for (const n of sizes) {
  const t = text(n);
  const blocks = Math.floor(Buffer.byteLength(t) / 64);
  const ours = time(() => blockHashes(t, 'meta-llama/Llama-3.1-8B-Instruct', undefined, 64, 1 << 20));
  rows.push(`| ${n / 1000} KB | ${blocks} | one WASM call per prompt (llm-epp) | ${ours.toFixed(3)} | ${((ours * 1e6) / blocks).toFixed(0)} |`);
  {
    const bytes = Buffer.from(t);
    const scratch = new Uint8Array(72);
    const view = new DataView(scratch.buffer);
    const ms = time(() => {
      let prev = h64Raw(Buffer.from('meta-llama/Llama-3.1-8B-Instruct'), 0n);
      for (let i = 0; i < blocks; i++) {
        scratch.set(bytes.subarray(i * 64, i * 64 + 64));
        view.setBigUint64(64, prev, true);
        prev = h64Raw(scratch, 0n);
      }
    });
    rows.push(`| ${n / 1000} KB | ${blocks} | xxhash-wasm, one call per block | ${ms.toFixed(3)} | ${((ms * 1e6) / blocks).toFixed(0)} |`);
  }
  if (native) {
    const xxh64 = native;
    const bytes = Buffer.from(t);
    const scratch = Buffer.alloc(72);
    const ms = time(() => {
      let prev = xxh64(Buffer.from('meta-llama/Llama-3.1-8B-Instruct'), 0n);
      for (let i = 0; i < blocks; i++) {
        bytes.copy(scratch, 0, i * 64, i * 64 + 64);
        scratch.writeBigUInt64LE(prev, 64);
        prev = xxh64(scratch, 0n);
      }
    });
    rows.push(`| ${n / 1000} KB | ${blocks} | @node-rs/xxhash (native) | ${ms.toFixed(3)} | ${((ms * 1e6) / blocks).toFixed(0)} |`);
  }
}
console.log(`node ${process.version}\n` + rows.join('\n'));
