// Shared state between the threads of one process (--workers): two
// BroadcastChannels, which deliver each message (structured clone: typed
// arrays copied, nothing encoded) to every other thread that opened the same
// name. Load reports go on one, read by the workers and the control thread
// (which counts dispatches for its scrapes); prefix blocks and session
// bindings on the other, opened by the workers — and by the control thread
// only when it relays them to other replicas (--state-sync), so it does not
// receive what it has no use for.
import { BroadcastChannel } from 'node:worker_threads';
import type { SyncBatch, SyncTransport } from './batch.ts';

export class ThreadTransport implements SyncTransport {
  readonly name = 'workers';
  onBatch: ((batch: SyncBatch) => void) | undefined;
  readonly #load: BroadcastChannel;
  readonly #routing: BroadcastChannel | undefined;

  /** `routing`: also send and receive prefix blocks and session bindings (the workers; a relaying control thread). */
  constructor(channelName: string, opts: { routing: boolean }) {
    this.#load = this.#open(`${channelName}:load`);
    this.#routing = opts.routing ? this.#open(`${channelName}:routing`) : undefined;
  }

  #open(name: string): BroadcastChannel {
    const c = new BroadcastChannel(name);
    c.onmessage = (ev) => this.onBatch?.((ev as MessageEvent).data as SyncBatch);
    // The channel must not keep a worker alive on its own.
    c.unref();
    return c;
  }

  send(batch: SyncBatch): void {
    const { prefix, sessions, ...load } = batch;
    if (load.load?.length || load.full || load.gone) this.#load.postMessage(load);
    if (this.#routing && (prefix?.length || sessions?.length)) this.#routing.postMessage({ origin: batch.origin, at: batch.at, prefix, sessions });
  }

  async close(): Promise<void> {
    this.#load.close();
    this.#routing?.close();
  }
}
