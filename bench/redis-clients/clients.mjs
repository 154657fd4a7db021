// Uniform adapter over ioredis / iovalkey / node-redis for the stream workload.
// Each adapter returns entries as { id: string, b: Buffer }.
export const PORT = Number(process.env.REDIS_PORT ?? 6390);
export const KEY = process.env.STREAM_KEY ?? 'bench:stream';
export const now = () => performance.timeOrigin + performance.now(); // ms, comparable across processes

function ioFamily(mod, name, extra = {}) {
  const Redis = mod.default ?? mod.Redis;
  return async (opts = {}) => {
    const c = new Redis({ port: PORT, host: '127.0.0.1', lazyConnect: true, ...extra, ...opts });
    c.on('error', () => {}); // caller may attach its own; never let 'error' be unhandled
    await c.connect();
    const parse = (entries) => entries.map(([id, fields]) => {
      // fields: [fieldBuf, valBuf, ...]
      let b;
      for (let i = 0; i < fields.length; i += 2) if (fields[i].toString() === 'b') b = fields[i + 1];
      return { id: id.toString(), b };
    });
    return {
      name, raw: c,
      xadd: (key, buf) => c.xadd(key, 'MAXLEN', '~', 5000, '*', 'b', buf),
      xread: async (key, id, block, count) => {
        const r = await c.xreadBuffer('BLOCK', block, 'COUNT', count, 'STREAMS', key, id);
        if (!r) return null;
        return parse(r[0][1]);
      },
      xrange: async (key, start, count) => parse(await c.xrangeBuffer(key, start, '+', 'COUNT', count)),
      del: (key) => c.del(key),
      trim: (key, n) => c.xtrim(key, 'MAXLEN', n),
      xlen: (key) => c.xlen(key),
      quit: () => c.quit(),
    };
  };
}

async function nodeRedis(opts = {}) {
  const { createClient, RESP_TYPES } = await import('redis');
  const base = createClient({ socket: { port: PORT, host: '127.0.0.1' }, ...opts });
  base.on('error', () => {});
  await base.connect();
  const c = base.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  const parse = (messages) => messages.map((m) => ({ id: m.id.toString(), b: m.message.b }));
  const TRIM = { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 5000 } };
  return {
    name: 'redis', raw: base,
    xadd: (key, buf) => c.xAdd(key, '*', { b: buf }, TRIM),
    xread: async (key, id, block, count) => {
      const r = await c.xRead({ key, id }, { BLOCK: block, COUNT: count });
      if (!r) return null;
      return parse(r[0].messages);
    },
    xrange: async (key, start, count) => parse(await c.xRange(key, start, '+', { COUNT: count })),
    del: (key) => c.del(key),
    trim: (key, n) => c.xTrim(key, 'MAXLEN', n),
    xlen: (key) => c.xLen(key),
    quit: () => base.quit(),
  };
}

export async function makeClient(name, opts) {
  switch (name) {
    case 'ioredis': return ioFamily(await import('ioredis'), 'ioredis', { enableAutoPipelining: true })(opts);
    case 'ioredis-noap': return ioFamily(await import('ioredis'), 'ioredis-noap')(opts);
    case 'iovalkey': return ioFamily(await import('iovalkey'), 'iovalkey', { enableAutoPipelining: true })(opts);
    case 'redis': return nodeRedis(opts);
    default: throw new Error('unknown client ' + name);
  }
}

// Deterministic pseudo-random payload: 64 KiB xorshift pool; entry seq uses a window of it.
const POOL = Buffer.alloc(65536);
{ let x = 0x9e3779b9 >>> 0; for (let i = 0; i < POOL.length; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; POOL[i] = x & 0xff; } }
export const SIZE = 4096;
export function payload(seq) {
  const b = Buffer.allocUnsafe(SIZE);
  const off = (seq * 97) % (POOL.length - SIZE);
  POOL.copy(b, 12, off, off + SIZE - 12);
  b.writeUInt32LE(seq, 8);
  return b; // bytes 0..8 = send timestamp (written at send time)
}
export function verify(b) {
  if (!Buffer.isBuffer(b) || b.length !== SIZE) return false;
  const seq = b.readUInt32LE(8);
  const off = (seq * 97) % (POOL.length - SIZE);
  return POOL.compare(b, 12, SIZE, off, off + SIZE - 12) === 0 ? true : false;
}
