// Every open ext_proc stream, for three limits: how many may be open at once
// (the process-wide cap; the per-connection cap is an HTTP/2 setting), how
// long one may go without a message from its peer, and how long shutdown
// waits for the open ones to finish. One sweep timer checks idleness for all
// streams, so a message costs one timestamp write, not a timer reset.

export interface TrackedStream {
  /** performance.now() of the last message from the peer (or of the open). */
  lastActivity: number;
  /** Called once when the stream has been idle past the limit. */
  idleTimeout(idleMs: number): void;
}

export interface StreamTrackerOptions {
  /** Streams open at once over all connections; 0 = no limit. */
  maxStreams: number;
  /** No message from the peer for this long ends a stream; 0 = never. */
  idleTimeoutMs: number;
}

export class StreamTracker {
  readonly #open = new Set<TrackedStream>();
  readonly #opts: StreamTrackerOptions;
  #sweeper: NodeJS.Timeout | undefined;
  #emptyWaiters: (() => void)[] = [];

  constructor(opts: StreamTrackerOptions) {
    this.#opts = opts;
    if (opts.idleTimeoutMs > 0) {
      // Checked at a quarter of the limit (at most once a second): a stream
      // ends between 1× and 1.25× the limit after its last message.
      const every = Math.max(10, Math.min(1000, opts.idleTimeoutMs / 4));
      this.#sweeper = setInterval(() => this.#sweep(), every);
      this.#sweeper.unref();
    }
  }

  get size(): number {
    return this.#open.size;
  }

  /** True when one more stream may open. */
  get hasRoom(): boolean {
    return this.#opts.maxStreams <= 0 || this.#open.size < this.#opts.maxStreams;
  }

  add(s: TrackedStream): void {
    this.#open.add(s);
  }

  /** Idempotent: a stream may report its end more than once. */
  delete(s: TrackedStream): void {
    if (this.#open.delete(s)) this.#notifyIfEmpty();
  }

  /** Resolves true when no stream is open, or false after `timeoutMs`. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.#open.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#emptyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #sweep(): void {
    const limit = this.#opts.idleTimeoutMs;
    const now = performance.now();
    for (const s of this.#open) {
      if (now - s.lastActivity > limit) {
        this.#open.delete(s);
        s.idleTimeout(limit);
      }
    }
    this.#notifyIfEmpty();
  }

  #notifyIfEmpty(): void {
    if (this.#open.size > 0 || this.#emptyWaiters.length === 0) return;
    const waiters = this.#emptyWaiters;
    this.#emptyWaiters = [];
    for (const w of waiters) w();
  }
}
