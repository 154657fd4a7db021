// Encodes the simulator's KV events as vLLM's msgpack KVEventBatch (vllm/distributed/
// kv_events.py, shared/reference/vllm.md §4.3), byte-compatible with what msgspec writes:
// - events: 'map' — vLLM ≥ 0.24 (PR #42892): a map with the class name under "type" and
//   the named fields, fields that have a default left out when they hold it; 'array' —
//   vLLM ≤ 0.23: a positional array with the class name first and trailing defaulted
//   fields left out (BlockStored then has 8 elements, up to lora_name);
// - batch: 'array' — [ts, events, data_parallel_rank], as a vLLM 0.26.0 capture shows;
//   'map' — {ts, events, data_parallel_rank}, as the newest source declares it;
// - ts is always a float64 (a Python float), block hashes are integers in the smallest
//   msgpack integer format that holds them up to 2^32, 64-bit ones as int64 (below 2^63)
//   or uint64 — never floats; token ids and sizes are plain unsigned integers.
import { Packr } from 'msgpackr';
import type { KvEvent } from './kv-cache.ts';

export type KvEventFormat = 'map' | 'array';
export type KvBatchShape = 'array' | 'map';

export interface KvBatchEncoding {
  /** Event encoding. Default 'map'. */
  format?: KvEventFormat;
  /** Batch encoding. Default 'array'. */
  batch?: KvBatchShape;
  /** data_parallel_rank. Default 0. */
  dataParallelRank?: number;
}

// Plain maps (no msgpackr records), fixmap/map16/map32 by size as Python's msgpack does.
const packr = new Packr({ useRecords: false, variableMapSize: true });

const UINT32_LIMIT = 0x1_0000_0000n;

/** A hash as msgpack will write it: a number up to 32 bits, else a BigInt (int64/uint64). */
function wireHash(h: bigint): number | bigint {
  return h < UINT32_LIMIT ? Number(h) : h;
}

function encodeEvent(ev: KvEvent, format: KvEventFormat): unknown {
  switch (ev.type) {
    case 'BlockStored': {
      const hashes = ev.blockHashes.map(wireHash);
      const parent = ev.parentBlockHash === null ? null : wireHash(ev.parentBlockHash);
      if (format === 'array') return ['BlockStored', hashes, parent, ev.tokenIds, ev.blockSize, ev.loraId, ev.medium, ev.loraName];
      return {
        type: 'BlockStored',
        block_hashes: hashes,
        parent_block_hash: parent,
        token_ids: ev.tokenIds,
        block_size: ev.blockSize,
        lora_id: ev.loraId,
        medium: ev.medium,
        lora_name: ev.loraName,
      };
    }
    case 'BlockRemoved': {
      const hashes = ev.blockHashes.map(wireHash);
      if (format === 'array') return ['BlockRemoved', hashes, ev.medium];
      return { type: 'BlockRemoved', block_hashes: hashes, medium: ev.medium };
    }
    case 'AllBlocksCleared':
      return format === 'array' ? ['AllBlocksCleared'] : { type: 'AllBlocksCleared' };
  }
}

function float64(x: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = 0xcb;
  b.writeDoubleBE(x, 1);
  return b;
}

/** One KVEventBatch; `ts` in wall-clock seconds. */
export function encodeKvEventBatch(events: readonly KvEvent[], ts: number, enc: KvBatchEncoding = {}): Buffer {
  const format = enc.format ?? 'map';
  const packedEvents = packr.pack(events.map((e) => encodeEvent(e, format)));
  const rank = packr.pack(enc.dataParallelRank ?? 0);
  // msgpackr would write an integral ts as an integer; Python's float stays a float64.
  if ((enc.batch ?? 'array') === 'array') return Buffer.concat([Buffer.of(0x93), float64(ts), packedEvents, rank]);
  return Buffer.concat([Buffer.of(0x83), packr.pack('ts'), float64(ts), packr.pack('events'), packedEvents, packr.pack('data_parallel_rank'), rank]);
}
