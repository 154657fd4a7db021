// A request body arriving in chunks: held until it ends, capped per request
// (--max-request-body-bytes: 413) and counted against the process-wide budget
// (--max-buffered-request-bytes: 429). The bytes stay counted until release():
// the parsed body stays with a routed request until that request ends.
import { EppError } from '../errors.ts';

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
  }

  /** The whole body; the chunks are let go, the bytes stay counted until release(). */
  take(): Buffer {
    const body = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks = [];
    return body;
  }

  /** Drop the chunks and give the bytes back to the budget. Idempotent. */
  release(): void {
    this.#chunks = [];
    if (this.#reserved > 0) {
      this.#budget.used -= this.#reserved;
      this.#reserved = 0;
    }
  }
}
