// The largest ext_proc message llm-epp reads. grpc-js answers a message over
// its receive limit with the stream status RESOURCE_EXHAUSTED, which Envoy
// turns into a 500; a body that large sent in chunks gets a 413. This makes the
// two agree: a server interceptor swaps the call's frame decoder for one that
// reads each message's length prefix, skips (never buffers) the bytes of a
// message over the limit, and hands the stream a small stand-in message that
// says so, which the stream answers with 413.
//
// The swap reaches into grpc-js's BaseServerInterceptingCall (its `decoder`
// field, a StreamDecoder whose write(data) returns complete framed messages).
// If a grpc-js upgrade changes that shape, the swap is skipped and grpc-js's
// own limit (set to the same size) still bounds memory; the 413 test fails.
import type { ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor } from '@grpc/grpc-js';
import { encodeRequest } from './proto.ts';
import type { ProcessingRequest } from './messages.ts';

/** Attribute key of the stand-in message; its struct holds the message's size. */
export const TOO_LARGE_ATTRIBUTE = 'llm-epp.message-too-large';

/** The size a stand-in reports, or undefined for a real message. */
export function tooLargeSize(req: ProcessingRequest): number | undefined {
  const v = req.attributes?.[TOO_LARGE_ATTRIBUTE]?.fields?.bytes?.numberValue;
  return typeof v === 'number' ? v : undefined;
}

function standIn(size: number): Buffer {
  const payload = encodeRequest({ attributes: { [TOO_LARGE_ATTRIBUTE]: { fields: { bytes: { numberValue: size } } } } });
  const framed = Buffer.allocUnsafe(5 + payload.length);
  framed[0] = 0;
  framed.writeUInt32BE(payload.length, 1);
  payload.copy(framed, 5);
  return framed;
}

const HEADER = 5;

/** gRPC length-prefixed framing, with oversized messages skipped. */
export class LimitedFrameDecoder {
  readonly #max: number;
  readonly #header = Buffer.alloc(HEADER);
  #headerHave = 0;
  #size = 0;
  #remaining = 0;
  #parts: Buffer[] = [];
  #skipping = false;

  constructor(maxMessageBytes: number) {
    this.#max = maxMessageBytes;
  }

  write(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < data.length) {
      if (this.#headerHave < HEADER) {
        const n = Math.min(HEADER - this.#headerHave, data.length - at);
        data.copy(this.#header, this.#headerHave, at, at + n);
        this.#headerHave += n;
        at += n;
        if (this.#headerHave < HEADER) break;
        this.#size = this.#header.readUInt32BE(1);
        this.#remaining = this.#size;
        this.#skipping = this.#size > this.#max;
        this.#parts = [];
        if (this.#remaining === 0) this.#finish(out);
        continue;
      }
      const n = Math.min(this.#remaining, data.length - at);
      if (!this.#skipping) this.#parts.push(data.subarray(at, at + n));
      this.#remaining -= n;
      at += n;
      if (this.#remaining === 0) this.#finish(out);
    }
    return out;
  }

  #finish(out: Buffer[]): void {
    if (this.#skipping) out.push(standIn(this.#size));
    else out.push(Buffer.concat([this.#header, ...this.#parts], HEADER + this.#size));
    this.#headerHave = 0;
    this.#parts = [];
    this.#skipping = false;
  }
}

/** Interceptor installing a LimitedFrameDecoder on every call. Must be the first interceptor. */
export function messageLimitInterceptor(maxMessageBytes: number): ServerInterceptor {
  return (_method, call: ServerInterceptingCallInterface) => {
    const base = call as unknown as { decoder?: { write?: unknown } };
    if (base.decoder && typeof base.decoder.write === 'function') base.decoder = new LimitedFrameDecoder(maxMessageBytes);
    // Passed on unchanged: nothing else is intercepted.
    return call as ServerInterceptingCall;
  };
}
