// Last sequence number seen per topic on one ZMQ socket, to tell a contiguous KV-event
// stream from a gap (batches lost: PUB high-water-mark drops, a dropped connection) or a
// reset (the publisher restarted and counts from 0 again).
// The topic count is capped: a peer inventing topics evicts the least recently seen entry
// instead of growing the map; an evicted topic's next message starts it afresh, like a
// first message.

export type SequenceCheck =
  | { readonly kind: 'first' }
  | { readonly kind: 'next' }
  | { readonly kind: 'gap' | 'reset'; readonly expected: bigint };

export class SequenceTracker {
  readonly #last = new Map<string, bigint>();
  readonly #maxTopics: number;
  #evicted = 0;

  constructor(maxTopics: number) {
    if (!Number.isInteger(maxTopics) || maxTopics < 1) throw new Error('maxTopics must be a positive integer');
    this.#maxTopics = maxTopics;
  }

  /** How `seq` follows the last sequence committed for `topic`. Does not record it. */
  check(topic: string, seq: bigint): SequenceCheck {
    const last = this.#last.get(topic);
    if (last === undefined) return { kind: 'first' };
    const expected = last + 1n;
    if (seq === expected) return { kind: 'next' };
    return { kind: seq > expected ? 'gap' : 'reset', expected };
  }

  /** Records `seq` as the last sequence seen on `topic`. */
  commit(topic: string, seq: bigint): void {
    // Delete first so the Map's insertion order is least recently seen first.
    if (!this.#last.delete(topic) && this.#last.size >= this.#maxTopics) {
      const oldest = this.#last.keys().next().value as string;
      this.#last.delete(oldest);
      this.#evicted++;
    }
    this.#last.set(topic, seq);
  }

  /** Topics dropped to stay under the cap since this tracker was made. */
  get evicted(): number {
    return this.#evicted;
  }

  get size(): number {
    return this.#last.size;
  }
}
