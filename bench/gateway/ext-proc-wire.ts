// The gateway's ext_proc messages on the wire, written and read by hand: the
// ProcessingRequests it sends are encoded straight into gRPC frames (one
// allocation each, header values as their raw bytes), and the streamed body
// replies that carry most of the bytes are read without a protobuf decode,
// the body left as a view of the received frame. Anything else is decoded by
// protobufjs (src/extproc/proto.ts). Field numbers: proto/envoy/service/ext_proc/v3.
import type { ProcessingResponse } from '../../src/extproc/messages.ts';
import { decodeResponse } from '../../src/extproc/proto.ts';
import { varintLength, writeVarint } from '../../src/extproc/varint.ts';

/** gRPC length-prefixed message header: compressed flag + 4-byte length. */
export const FRAME_HEADER = 5;
/** A body chunk above this size goes out as its own write after a small header write instead of being copied. */
const COPY_LIMIT = 16_384;

const SERVED_NAMESPACE = 'envoy.lb';
const SERVED_KEY = 'x-gateway-destination-endpoint-served';
/** protocol_config (11): request_body_mode = response_body_mode = FULL_DUPLEX_STREAMED (4). */
const PROTOCOL_CONFIG = Buffer.from([0x5a, 0x04, 0x08, 0x04, 0x10, 0x04]);
/** HttpBody.end_of_stream (2) = true. */
const EOS_FIELD = Buffer.from([0x10, 0x01]);

export { varintLength };

/** Size of a length-delimited field (one-byte tag) holding `len` bytes. */
const field = (len: number) => 1 + varintLength(len) + len;

function writeTagLen(buf: Buffer, at: number, tag: number, len: number): number {
  buf[at++] = tag;
  return writeVarint(buf, at, len);
}

function frame(total: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + total);
  out[0] = 0;
  out.writeUInt32BE(total, 1);
  return out;
}

export interface HeadersMessage {
  /** Header names and values, flat: name, value, name, value… (values as latin1, i.e. their raw bytes). */
  pairs: readonly string[];
  endOfStream: boolean;
  /** Announce FULL_DUPLEX_STREAMED for both bodies (the first message of a stream). */
  protocolConfig?: boolean;
  /** metadata_context envoy.lb x-gateway-destination-endpoint-served (response headers). */
  served?: string;
}

/**
 * A framed ProcessingRequest with request_headers (2) or response_headers (3):
 * HttpHeaders{headers(1): HeaderMap{headers(1): HeaderValue{key(1), raw_value(3)}…}, end_of_stream(3)}.
 */
export function encodeHeaders(which: 'request' | 'response', m: HeadersMessage): Buffer {
  const { pairs } = m;
  let map = 0;
  for (let i = 0; i < pairs.length; i += 2) map += field(field(pairs[i].length) + field(pairs[i + 1].length));
  const http = field(map) + (m.endOfStream ? 2 : 0);
  let total = field(http) + (m.protocolConfig ? PROTOCOL_CONFIG.length : 0);
  let value = 0;
  let entry = 0;
  let struct = 0;
  let nsEntry = 0;
  let metadata = 0;
  if (m.served !== undefined) {
    value = field(m.served.length);
    entry = field(SERVED_KEY.length) + field(value);
    struct = field(entry);
    nsEntry = field(SERVED_NAMESPACE.length) + field(struct);
    metadata = field(nsEntry);
    total += field(metadata);
  }
  const out = frame(total);
  let at = writeTagLen(out, FRAME_HEADER, which === 'request' ? 0x12 : 0x1a, http);
  at = writeTagLen(out, at, 0x0a, map); // HttpHeaders.headers
  for (let i = 0; i < pairs.length; i += 2) {
    const k = pairs[i];
    const v = pairs[i + 1];
    at = writeTagLen(out, at, 0x0a, field(k.length) + field(v.length)); // HeaderMap.headers
    at = writeTagLen(out, at, 0x0a, k.length); // HeaderValue.key
    at += out.write(k, at, 'latin1');
    at = writeTagLen(out, at, 0x1a, v.length); // HeaderValue.raw_value
    at += out.write(v, at, 'latin1');
  }
  if (m.endOfStream) {
    out[at++] = 0x18; // HttpHeaders.end_of_stream
    out[at++] = 1;
  }
  if (m.served !== undefined) {
    at = writeTagLen(out, at, 0x42, metadata); // ProcessingRequest.metadata_context
    at = writeTagLen(out, at, 0x0a, nsEntry); // Metadata.filter_metadata entry
    at = writeTagLen(out, at, 0x0a, SERVED_NAMESPACE.length);
    at += out.write(SERVED_NAMESPACE, at, 'latin1');
    at = writeTagLen(out, at, 0x12, struct); // entry value: Struct
    at = writeTagLen(out, at, 0x0a, entry); // Struct.fields entry
    at = writeTagLen(out, at, 0x0a, SERVED_KEY.length);
    at += out.write(SERVED_KEY, at, 'latin1');
    at = writeTagLen(out, at, 0x12, value); // entry value: Value
    at = writeTagLen(out, at, 0x1a, m.served.length); // Value.string_value
    at += out.write(m.served, at, 'latin1');
  }
  if (m.protocolConfig) at += PROTOCOL_CONFIG.copy(out, at);
  return out;
}

/**
 * A ProcessingRequest with request_body (4) or response_body (5):
 * HttpBody{body(1), end_of_stream(2)}, as the buffers to write in order. A
 * small chunk is copied into its frame; a large one is written as it is,
 * after a frame holding everything before it.
 */
export function encodeBody(which: 'request' | 'response', chunk: Buffer | undefined, endOfStream: boolean): Buffer[] {
  const len = chunk?.length ?? 0;
  const body = (len > 0 ? field(len) : 0) + (endOfStream ? 2 : 0);
  const total = field(body);
  const tag = which === 'request' ? 0x22 : 0x2a;
  if (len > COPY_LIMIT) {
    const head = Buffer.allocUnsafe(FRAME_HEADER + total - len - (endOfStream ? 2 : 0));
    head[0] = 0;
    head.writeUInt32BE(total, 1);
    writeTagLen(head, writeTagLen(head, FRAME_HEADER, tag, body), 0x0a, len);
    return endOfStream ? [head, chunk!, EOS_FIELD] : [head, chunk!];
  }
  const out = frame(total);
  let at = writeTagLen(out, FRAME_HEADER, tag, body);
  if (len > 0) {
    at = writeTagLen(out, at, 0x0a, len);
    at += chunk!.copy(out, at);
  }
  if (endOfStream) {
    out[at++] = 0x10;
    out[at++] = 1;
  }
  return [out];
}

/** A streamed body reply read off the wire: its body is a view of the message. */
export interface StreamedBody {
  which: 'request' | 'response';
  body: Buffer;
  endOfStream: boolean;
}

function readVarint(buf: Buffer, at: number): [number, number] {
  let n = 0;
  let mul = 1;
  for (;;) {
    if (at >= buf.length) return [-1, at];
    const b = buf[at++];
    n += (b & 0x7f) * mul;
    if (b < 0x80) return [n, at];
    mul *= 128;
    if (mul > 2 ** 49) return [-1, at];
  }
}

/** Enter one length-delimited field with this tag at `at`; returns [start, end] of its contents, or undefined. */
function enter(buf: Buffer, at: number, end: number, tag: number): [number, number] | undefined {
  if (at >= end || buf[at] !== tag) return undefined;
  const [len, from] = readVarint(buf, at + 1);
  if (len < 0 || from + len !== end) return undefined;
  return [from, from + len];
}

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * ProcessingResponse{request_body(3)|response_body(4): BodyResponse{response(1):
 * CommonResponse{body_mutation(3): BodyMutation{streamed_response(3):
 * StreamedBodyResponse{body(1), end_of_stream(2)}}}}} and nothing else; any
 * other message (or shape) gives undefined and is left to the full decoder.
 */
export function readStreamedBody(msg: Buffer): StreamedBody | undefined {
  const first = msg[0];
  if (first !== 0x1a && first !== 0x22) return undefined;
  let r = enter(msg, 0, msg.length, first);
  if (r) r = enter(msg, r[0], r[1], 0x0a);
  if (r) r = enter(msg, r[0], r[1], 0x1a);
  if (r) r = enter(msg, r[0], r[1], 0x1a);
  if (!r) return undefined;
  let [at] = r;
  const end = r[1];
  let body = EMPTY;
  let endOfStream = false;
  while (at < end) {
    const tag = msg[at];
    if (tag === 0x0a) {
      const [len, from] = readVarint(msg, at + 1);
      if (len < 0 || from + len > end) return undefined;
      body = msg.subarray(from, from + len);
      at = from + len;
    } else if (tag === 0x10) {
      const [v, next] = readVarint(msg, at + 1);
      if (v < 0) return undefined;
      endOfStream = v !== 0;
      at = next;
    } else return undefined;
  }
  return { which: first === 0x1a ? 'request' : 'response', body, endOfStream };
}

/** Any ProcessingResponse, fully decoded. */
export function decodeMessage(msg: Buffer): ProcessingResponse {
  return decodeResponse(msg);
}

/** A header value from a mutation: raw_value when set, else value. */
export function mutationValue(h: { raw_value?: Buffer | null; value?: string | null }): string {
  return h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : (h.value ?? '');
}
