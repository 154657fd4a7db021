// The framing vLLM's KV-event publisher (vllm/distributed/kv_events.py) puts around each
// msgpack batch, shared by llm-epp's subscriber and the simulator's publisher so both ends
// agree byte for byte:
// - the PUB message is (topic, 8-byte big-endian sequence number, payload);
// - the replay ROUTER answers (sequence, payload) per buffered batch and ends with the
//   sequence −1 as a signed 8-byte value (eight 0xff bytes) and an empty payload;
// - a publisher binds when its endpoint names a wildcard host or a local transport, and
//   connects otherwise (so a central subscriber can bind and every engine connect to it).

export const SEQ_BYTES = 8;

/** The replay stream's end marker: −1 as a signed 64-bit value, read back as unsigned. */
export const REPLAY_END_SEQ = 0xffff_ffff_ffff_ffffn;

/** Encodes a sequence number (0 ≤ seq < 2^64) as its 8-byte big-endian frame. */
export function seqFrame(seq: bigint): Buffer {
  const b = Buffer.allocUnsafe(SEQ_BYTES);
  b.writeBigUInt64BE(seq);
  return b;
}

/** Reads an 8-byte big-endian unsigned sequence frame; undefined when the frame is not 8 bytes. */
export function readSeq(frame: Uint8Array): bigint | undefined {
  if (frame.length !== SEQ_BYTES) return undefined;
  return new DataView(frame.buffer, frame.byteOffset, SEQ_BYTES).getBigUint64(0);
}

/** vLLM's rule for a PUB endpoint: bind for `*`, `::`, ipc:// and inproc://, connect otherwise. */
export function publisherBinds(endpoint: string): boolean {
  return endpoint.includes('*') || endpoint.includes('::') || endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://');
}

/**
 * The per-frame size libzmq itself refuses (ZMQ_MAXMSGSIZE) for a payload cap: a frame up to
 * twice the cap is received, counted and skipped; a larger one makes libzmq drop the peer's
 * connection before buffering it, so one frame can never cost more than this.
 */
export function socketFrameLimit(maxPayloadBytes: number): number {
  return maxPayloadBytes * 2;
}
