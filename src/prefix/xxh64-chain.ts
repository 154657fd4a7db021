// The prefix-block hash chain in one WebAssembly call per prompt.
//
// Hashing block by block through a generic XXH64 binding crosses the JS/WASM
// boundary and converts a BigInt for every 64-byte block (~170 ns a block);
// here the prompt's bytes are encoded straight into WASM memory and a small
// hand-assembled module walks the whole chain: for each block it copies the
// block to a scratch area, appends the previous hash as 8 little-endian
// bytes and takes XXH64 (seed 0) of that, exactly GAIE's chain. XXH64 is the
// public algorithm (Yann Collet's spec); the module is assembled below from
// its steps, and test/xxh64-chain.test.ts checks it against xxhash-wasm.

const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

// ---- a tiny WebAssembly assembler ----

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(v: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** An unsigned 64-bit constant as WASM's signed i64.const. */
const i64c = (v: bigint) => [0x42, ...sleb(BigInt.asIntN(64, v))];
const i32c = (v: number) => [0x41, ...sleb(BigInt(v))];
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const I64 = { add: 0x7c, sub: 0x7d, mul: 0x7e, xor: 0x85, rotl: 0x89, shr_u: 0x88, extend_i32_u: 0xad };
const I32 = { add: 0x6a, shl: 0x74, gt_u: 0x4b, ge_u: 0x4f, le_u: 0x4d, lt_u: 0x49, sub: 0x6b };
const load64 = (offset: number) => [0x29, 0x00, ...uleb(offset)]; // align hint 1: unaligned reads are fine
const load32u = [0x35, 0x00, 0x00];
const load8u = [0x31, 0x00, 0x00];
const store64 = [0x37, 0x00, 0x00];
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const IF = [0x04, 0x40];
const ELSE = 0x05;
const END = 0x0b;
const br = (d: number) => [0x0c, d];
const brIf = (d: number) => [0x0d, d];

/** acc + x * P2, rotl 31, * P1 — with `x` already on the stack after `acc`. */
const roundTail = [...i64c(P2), I64.mul, I64.add, ...i64c(31n), I64.rotl, ...i64c(P1), I64.mul];

// xxh64(ptr i32, len i32, seed i64) -> i64
// locals: 3 end i32, 4 limit i32, 5..8 v1..v4 i64, 9 h i64
function xxh64Body(): number[] {
  const [ptr, len, seed, end, limit, v1, v2, v3, v4, h] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const round = (v: number, off: number) => [...get(v), ...get(ptr), ...load64(off), ...roundTail, ...set(v)];
  const merge = (v: number) => [...get(h), ...i64c(0n), ...get(v), ...roundTail, I64.xor, ...i64c(P1), I64.mul, ...i64c(P4), I64.add, ...set(h)];
  return [
    ...get(ptr), ...get(len), I32.add, ...set(end),
    // len >= 32: four lanes over 32-byte stripes
    ...get(len), ...i32c(32), I32.ge_u,
    ...IF,
      ...get(end), ...i32c(32), I32.sub, ...set(limit),
      ...get(seed), ...i64c(P1), I64.add, ...i64c(P2), I64.add, ...set(v1),
      ...get(seed), ...i64c(P2), I64.add, ...set(v2),
      ...get(seed), ...set(v3),
      ...get(seed), ...i64c(P1), I64.sub, ...set(v4),
      ...LOOP,
        ...round(v1, 0), ...round(v2, 8), ...round(v3, 16), ...round(v4, 24),
        ...get(ptr), ...i32c(32), I32.add, ...set(ptr),
        ...get(ptr), ...get(limit), I32.le_u, ...brIf(0),
      END,
      ...get(v1), ...i64c(1n), I64.rotl,
      ...get(v2), ...i64c(7n), I64.rotl, I64.add,
      ...get(v3), ...i64c(12n), I64.rotl, I64.add,
      ...get(v4), ...i64c(18n), I64.rotl, I64.add, ...set(h),
      ...merge(v1), ...merge(v2), ...merge(v3), ...merge(v4),
    ELSE,
      ...get(seed), ...i64c(P5), I64.add, ...set(h),
    END,
    ...get(h), ...get(len), I64.extend_i32_u, I64.add, ...set(h),
    // 8-byte tail words
    ...BLOCK, ...LOOP,
      ...get(ptr), ...i32c(8), I32.add, ...get(end), I32.gt_u, ...brIf(1),
      ...get(h), ...i64c(0n), ...get(ptr), ...load64(0), ...roundTail, I64.xor,
      ...i64c(27n), I64.rotl, ...i64c(P1), I64.mul, ...i64c(P4), I64.add, ...set(h),
      ...get(ptr), ...i32c(8), I32.add, ...set(ptr),
      ...br(0),
    END, END,
    // a 4-byte tail word
    ...get(ptr), ...i32c(4), I32.add, ...get(end), I32.le_u,
    ...IF,
      ...get(h), ...get(ptr), ...load32u, ...i64c(P1), I64.mul, I64.xor,
      ...i64c(23n), I64.rotl, ...i64c(P2), I64.mul, ...i64c(P3), I64.add, ...set(h),
      ...get(ptr), ...i32c(4), I32.add, ...set(ptr),
    END,
    // remaining bytes
    ...BLOCK, ...LOOP,
      ...get(ptr), ...get(end), I32.ge_u, ...brIf(1),
      ...get(h), ...get(ptr), ...load8u, ...i64c(P5), I64.mul, I64.xor,
      ...i64c(11n), I64.rotl, ...i64c(P1), I64.mul, ...set(h),
      ...get(ptr), ...i32c(1), I32.add, ...set(ptr),
      ...br(0),
    END, END,
    // avalanche
    ...get(h), ...get(h), ...i64c(33n), I64.shr_u, I64.xor, ...i64c(P2), I64.mul, ...set(h),
    ...get(h), ...get(h), ...i64c(29n), I64.shr_u, I64.xor, ...i64c(P3), I64.mul, ...set(h),
    ...get(h), ...get(h), ...i64c(32n), I64.shr_u, I64.xor,
    END,
  ];
}

// chain(text i32, blockBytes i32, count i32, seed i64, out i32, scratch i32)
// locals: 6 i i32, 7 prev i64, 8 src i32
function chainBody(): number[] {
  const [text, bb, count, seed, out, scratch, i, prev, src] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  return [
    ...get(seed), ...set(prev),
    ...get(text), ...set(src),
    ...BLOCK, ...LOOP,
      ...get(i), ...get(count), I32.ge_u, ...brIf(1),
      ...get(scratch), ...get(src), ...get(bb), 0xfc, 0x0a, 0x00, 0x00, // memory.copy
      ...get(scratch), ...get(bb), I32.add, ...get(prev), ...store64,
      ...get(scratch), ...get(bb), ...i32c(8), I32.add, ...i64c(0n), 0x10, 0x00, ...set(prev), // call xxh64
      ...get(out), ...get(i), ...i32c(3), I32.shl, I32.add, ...get(prev), ...store64,
      ...get(src), ...get(bb), I32.add, ...set(src),
      ...get(i), ...i32c(1), I32.add, ...set(i),
      ...br(0),
    END, END,
    END,
  ];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function func(locals: [count: number, type: number][], code: number[]): number[] {
  const body = [...vec(locals.map(([n, t]) => [...uleb(n), t])), ...code];
  return [...uleb(body.length), ...body];
}

const I32T = 0x7f;
const I64T = 0x7e;
const name = (s: string) => [...uleb(s.length), ...Buffer.from(s)];

function moduleBytes(): Uint8Array {
  const types = vec([
    [0x60, ...vec([[I32T], [I32T], [I64T]]), ...vec([[I64T]])], // (i32, i32, i64) -> i64
    [0x60, ...vec([[I32T], [I32T], [I32T], [I64T], [I32T], [I32T]]), 0x00], // (i32, i32, i32, i64, i32, i32) -> ()
  ]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types),
    ...section(3, vec([[0], [1]])),
    ...section(5, vec([[0x00, 1]])), // one memory, min 1 page
    ...section(7, vec([
      [...name('memory'), 0x02, 0],
      [...name('xxh64'), 0x00, 0],
      [...name('chain'), 0x00, 1],
    ])),
    ...section(10, vec([
      func([[2, I32T], [5, I64T]], xxh64Body()),
      func([[1, I32T], [1, I64T], [1, I32T]], chainBody()),
    ])),
  ];
  return Uint8Array.from(bytes);
}

// The project compiles without the DOM lib, which is where TypeScript keeps
// the WebAssembly types: describe the little that is used.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
const WA = (globalThis as unknown as {
  WebAssembly: { Module: new (bytes: Uint8Array) => object; Instance: new (m: object, imports: object) => { exports: unknown } };
}).WebAssembly;

interface Exports {
  memory: WasmMemory;
  xxh64(ptr: number, len: number, seed: bigint): bigint;
  chain(text: number, blockBytes: number, count: number, seed: bigint, out: number, scratch: number): void;
}

const instance = new WA.Instance(new WA.Module(moduleBytes()), {});
const wasm = instance.exports as unknown as Exports;

/** Make sure WASM memory holds `bytes`; returns a fresh view of it. */
export function wasmMemory(bytes: number): Uint8Array {
  const have = wasm.memory.buffer.byteLength;
  if (have < bytes) wasm.memory.grow(Math.ceil((bytes - have) / 65536));
  return new Uint8Array(wasm.memory.buffer);
}

/** XXH64 of memory[ptr, ptr+len) (exported for tests). */
export function xxh64At(ptr: number, len: number, seed: bigint): bigint {
  return BigInt.asUintN(64, wasm.xxh64(ptr, len, seed));
}

/**
 * Run the chain over `count` blocks of `blockBytes` at memory[text]. Hashes
 * land as little-endian u64 at memory[out]; scratch needs blockBytes + 8.
 */
export function runChain(text: number, blockBytes: number, count: number, seed: bigint, out: number, scratch: number): void {
  wasm.chain(text, blockBytes, count, BigInt.asIntN(64, seed), out, scratch);
}
