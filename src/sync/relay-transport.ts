// The control thread's transport with --workers and --state-sync: what the
// workers publish goes to Redis, what other replicas publish goes to the
// workers; the control thread's own SharedState sees both (it counts
// dispatches for its scrapes). It publishes nothing of its own.
import type { SyncBatch, SyncTransport } from './batch.ts';
import type { RedisTransport } from './redis-transport.ts';
import type { ThreadTransport } from './thread-transport.ts';

export class RelayTransport implements SyncTransport {
  readonly name: string;
  onBatch: ((batch: SyncBatch) => void) | undefined;
  readonly #threads: ThreadTransport;
  readonly #redis: RedisTransport;

  constructor(threads: ThreadTransport, redis: RedisTransport, replica: string) {
    this.#threads = threads;
    this.#redis = redis;
    this.name = redis.name;
    const own = `${replica}/`;
    threads.onBatch = (b) => {
      this.onBatch?.(b);
      if (typeof b.origin === 'string' && b.origin.startsWith(own)) redis.send(b);
    };
    redis.onBatch = (b) => {
      this.onBatch?.(b);
      threads.send(b);
    };
  }

  send(): void {}

  async close(): Promise<void> {
    await Promise.all([this.#threads.close(), this.#redis.close()]);
  }
}
