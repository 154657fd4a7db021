// Batches on the wire between replicas (a Redis stream entry holds a list of
// them): msgpack, short keys, block hashes as raw bytes (little-endian uint32
// pairs, as every platform Node runs on stores them). Decoding never trusts
// the input: anything unexpected is an error for the caller to count.
import { Packr } from 'msgpackr';
import type { LoadRecord, PrefixRecord, SessionRecord, SyncBatch } from './batch.ts';

const packr = new Packr({ useRecords: false, moreTypes: false });
const VERSION = 1;

type Wire = {
  v: number;
  o: string;
  t: number;
  p?: [string, string, Uint8Array][];
  l?: [string, number, number, number][];
  s?: [string, string, string][];
  f?: boolean;
  g?: boolean;
};

export function encodeBatches(batches: readonly SyncBatch[]): Buffer {
  return packr.pack(
    batches.map((b): Wire => ({
      v: VERSION,
      o: b.origin,
      t: b.at,
      ...(b.prefix?.length ? { p: b.prefix.map((r) => [r.plugin, r.endpoint, new Uint8Array(r.words.buffer, r.words.byteOffset, r.words.byteLength)]) } : {}),
      ...(b.load?.length ? { l: b.load.map((r) => [r.endpoint, r.inFlight, r.tokens, r.dispatched]) } : {}),
      ...(b.sessions?.length ? { s: b.sessions.map((r) => [r.plugin, r.session, r.endpoint]) } : {}),
      ...(b.full ? { f: true } : {}),
      ...(b.gone ? { g: true } : {}),
    })),
  );
}

/** The batches of one entry; throws on anything that is not what encodeBatches wrote (the caller counts it). */
export function decodeBatches(buf: Buffer): SyncBatch[] {
  const raw: unknown = packr.unpack(buf);
  if (!Array.isArray(raw)) throw new Error('not a list of batches');
  return raw.map((w: Wire) => {
    if (!w || typeof w !== 'object' || w.v !== VERSION) throw new Error(`unknown batch version ${String(w?.v).slice(0, 20)}`);
    const list = <T,>(x: unknown, what: string): T[] => {
      if (x === undefined) return [];
      if (!Array.isArray(x)) throw new Error(`${what} is not a list`);
      return x as T[];
    };
    const prefix: PrefixRecord[] = list<[string, string, Uint8Array]>(w.p, 'prefix').map(([plugin, endpoint, bytes]) => {
      if (!(bytes instanceof Uint8Array) || bytes.byteLength % 8 !== 0) throw new Error('prefix words are not uint32 pairs');
      // Copied: the hashes must be 4-byte aligned, the decoded bytes need not be.
      const words = new Uint32Array(bytes.byteLength / 4);
      new Uint8Array(words.buffer).set(bytes);
      return { plugin, endpoint, words };
    });
    const load: LoadRecord[] = list<[string, number, number, number]>(w.l, 'load').map(([endpoint, inFlight, tokens, dispatched]) => ({ endpoint, inFlight, tokens, dispatched }));
    const sessions: SessionRecord[] = list<[string, string, string]>(w.s, 'sessions').map(([plugin, session, endpoint]) => ({ plugin, session, endpoint }));
    return { origin: w.o, at: w.t, prefix, load, sessions, ...(w.f ? { full: true } : {}), ...(w.g ? { gone: true } : {}) };
  });
}
