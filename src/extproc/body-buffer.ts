// A request body arriving in chunks: held until it ends, capped per request
// (--max-request-body-bytes: 413) and counted against the process-wide budget
// (--max-buffered-request-bytes: 429). The bytes stay counted until release():
// the parsed body stays with a routed request until that request ends.
//
// A body of more than one chunk is also read as JSON while it arrives
// (openai/streaming-json.ts), so that a long prompt's decision does not wait
// for a whole-body parse after its last byte.
import { EppError } from '../errors.ts';
import { receivedBody, type RequestBody } from '../openai/request-body.ts';
import { StreamingJsonReader } from '../openai/streaming-json.ts';

export interface BufferBudget {
  used: number;
  readonly limit: number;
}

export class BodyBuffer {
  readonly #budget: BufferBudget;
  readonly #max: number;
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** Bytes counted against the budget. */
  #reserved = 0;
  #json: StreamingJsonReader | undefined;

  constructor(budget: BufferBudget, maxBytes: number) {
    this.#budget = budget;
    this.#max = maxBytes;
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.#max) throw new EppError('PayloadTooLarge', `request body exceeds ${this.#max} bytes`);
    if (this.#budget.used + chunk.length > this.#budget.limit) {
      throw new EppError('ResourceExhausted', 'llm-epp is holding too many request bytes; retry shortly');
    }
    this.#budget.used += chunk.length;
    this.#reserved += chunk.length;
    this.#chunks.push(chunk);
    // A body in one chunk (BUFFERED, or short) is parsed whole at its end: nothing to gain.
    if (this.#chunks.length === 2) {
      this.#json = new StreamingJsonReader();
      this.#json.push(this.#chunks[0]);
    }
    this.#json?.push(chunk);
  }

  /** The whole body; the buffer lets go of it, the bytes stay counted until release(). */
  take(): RequestBody {
    const body = receivedBody(this.#chunks, this.#bytes, this.#json?.end());
    this.#chunks = [];
    this.#json = undefined;
    return body;
  }

  /** Drop the chunks and give the bytes back to the budget. Idempotent. */
  release(): void {
    this.#chunks = [];
    this.#json = undefined;
    if (this.#reserved > 0) {
      this.#budget.used -= this.#reserved;
      this.#reserved = 0;
    }
  }
}
