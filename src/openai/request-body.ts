// A request body as it was received: its chunks (echoed as they came, without
// a copy), the whole bytes when someone needs them as one buffer, and the JSON
// value when it was read while the chunks arrived (streaming-json.ts).
import type { ReadJson } from './streaming-json.ts';

export interface RequestBody {
  readonly length: number;
  /** The bytes as received, in order. */
  readonly chunks: readonly Buffer[];
  /** The bytes as one buffer (joined on first use). */
  bytes(): Buffer;
  /** The JSON value read as the body arrived; undefined: parse bytes(). */
  readonly json: ReadJson | undefined;
}

class ReceivedBody implements RequestBody {
  readonly length: number;
  readonly chunks: readonly Buffer[];
  readonly json: ReadJson | undefined;
  #whole: Buffer | undefined;

  constructor(chunks: readonly Buffer[], length: number, json: ReadJson | undefined) {
    this.chunks = chunks;
    this.length = length;
    this.json = json;
    this.#whole = chunks.length === 1 ? chunks[0] : undefined;
  }

  bytes(): Buffer {
    return (this.#whole ??= Buffer.concat(this.chunks as Buffer[], this.length));
  }
}

/** A body from its chunks (and its JSON value, when it was read as it arrived). */
export function receivedBody(chunks: readonly Buffer[], length: number, json?: ReadJson): RequestBody {
  return new ReceivedBody(chunks, length, json);
}

/** A body given whole (tests, tools, a re-serialised body). */
export function bodyOf(bytes: Buffer | RequestBody): RequestBody {
  return Buffer.isBuffer(bytes) ? new ReceivedBody([bytes], bytes.length, undefined) : bytes;
}
