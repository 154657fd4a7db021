// Shared state between the threads of one process (--workers): a
// BroadcastChannel, which delivers each batch (structured clone: typed arrays
// copied, nothing encoded) to every other thread that opened the same channel
// name — the other workers and the control thread, which relays to Redis when
// --state-sync is on and tells the workers when one of them exits.
import { BroadcastChannel } from 'node:worker_threads';
import type { SyncBatch, SyncTransport } from './batch.ts';

export class ThreadTransport implements SyncTransport {
  readonly name = 'workers';
  onBatch: ((batch: SyncBatch) => void) | undefined;
  readonly #channel: BroadcastChannel;

  constructor(channelName: string) {
    this.#channel = new BroadcastChannel(channelName);
    this.#channel.onmessage = (ev) => this.onBatch?.((ev as MessageEvent).data as SyncBatch);
    // The channel must not keep a worker alive on its own.
    this.#channel.unref();
  }

  send(batch: SyncBatch): void {
    this.#channel.postMessage(batch);
  }

  async close(): Promise<void> {
    this.#channel.close();
  }
}
