// After a model rewrite the model server answers with the target model's
// name; the client gets its own name back (as the GAIE EPP does). An SSE
// response is restored chunk by chunk as it passes; a JSON response is held
// whole, so a "model" field split across chunks is still found, up to a cap
// past which the rest passes on unchanged.
import { restoreModel } from './policy.ts';

export class ModelRestorer {
  readonly #target: string;
  readonly #original: string;
  readonly #eventStream: boolean;
  readonly #maxHeld: number;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #overflow = false;

  constructor(target: string, original: string, eventStream: boolean, maxHeldBytes: number) {
    this.#target = target;
    this.#original = original;
    this.#eventStream = eventStream;
    this.#maxHeld = maxHeldBytes;
  }

  /** The bytes to pass on now for this chunk; undefined while a JSON body is being held. */
  push(chunk: Buffer, end: boolean): Buffer | undefined {
    if (this.#eventStream) return restoreModel(chunk, this.#target, this.#original);
    if (this.#overflow) return chunk;
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (end) return this.#release(true);
    if (this.#heldBytes > this.#maxHeld) return this.#release(false);
    return undefined;
  }

  /** The body ended without end_of_stream (trailers): what is still held, restored. */
  flush(): Buffer | undefined {
    return this.#held.length > 0 ? this.#release(true) : undefined;
  }

  /** `whole`: the body ended, so the name is restored; otherwise it outgrew the cap and goes on unchanged. */
  #release(whole: boolean): Buffer {
    let out = this.#held.length === 1 ? this.#held[0] : Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    if (whole) out = restoreModel(out, this.#target, this.#original);
    else this.#overflow = true;
    return out;
  }
}
