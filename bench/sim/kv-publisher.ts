// A simulated vLLM pod's KV-event publisher, after ZmqEventPublisher in
// vllm/distributed/kv_events.py:
// - a PUB socket that binds when the endpoint has `*`, `::`, ipc:// or inproc:// and
//   connects otherwise; each publish() sends one KVEventBatch (vLLM publishes one per engine
//   step) as (topic, 8-byte big-endian sequence number from 0, msgpack payload);
// - sending is fire-and-forget: ZMQ queues up to the send high-water mark per subscriber
//   and silently drops beyond it, as vLLM's PUB does — the simulator never waits;
// - with a replay endpoint, the last `bufferSteps` batches are kept and a ROUTER answers
//   (empty, 8-byte start seq) with (empty, seq, payload) for each kept batch from that
//   sequence on, then (empty, −1, empty);
// - restart() behaves like a restarted vLLM: new sockets on the same addresses, the
//   sequence back to 0 and the replay buffer gone. It is async because a socket closed with
//   a receive pending (the replay ROUTER's) frees its port a moment later, so the rebind is
//   retried for up to two seconds.
// `bind` overrides vLLM's rule where the simulator must bind an address vLLM would connect
// to (a pod's own loopback address, e.g. tcp://127.0.0.2:5557).
// publish(events, { drop: true }) numbers and buffers a batch without sending it: a batch
// lost to a high-water-mark drop, for exercising gap detection and replay.
import { setTimeout as sleep } from 'node:timers/promises';
import { Publisher, Router } from 'zeromq';
import { REPLAY_END_SEQ, publisherBinds, readSeq, seqFrame } from '../../src/kvcache/zmq-frames.ts';
import { encodeKvEventBatch, type KvBatchEncoding } from './kv-batch-encoding.ts';
import type { KvEvent } from './kv-cache.ts';

export interface KvEventPublisherOptions extends KvBatchEncoding {
  /** PUB address, e.g. 'tcp://*:5557' (binds) or 'tcp://epp:5557' (connects). */
  endpoint: string;
  /** Bind (true) or connect (false) the PUB socket. Default: vLLM's rule (publisherBinds). */
  bind?: boolean;
  /** Topic frame; llm-d's convention is `kv@<pod ip>:<port>@<model>`. */
  topic: string;
  /** ROUTER address for replay (always bound, as in vLLM). */
  replayEndpoint?: string;
  /** Batches kept for replay. Default 10000 (vLLM's buffer_steps). */
  bufferSteps?: number;
  /** Messages queued per subscriber before ZMQ drops. Default 100000 (vLLM's hwm). */
  sendHighWaterMark?: number;
}

const REBIND_MS = 2000;

/** Binds, retrying while the address is still held by a socket just closed. */
async function rebind(sock: Publisher | Router, endpoint: string): Promise<void> {
  const deadline = Date.now() + REBIND_MS;
  for (;;) {
    try {
      sock.bindSync(endpoint);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'EADDRINUSE' || Date.now() > deadline) throw err;
      await sleep(5);
    }
  }
}

export class KvEventPublisher {
  readonly topic: string;
  readonly #opts: KvEventPublisherOptions;
  readonly #topicFrame: Buffer;
  readonly #bufferSteps: number;
  readonly #binds: boolean;
  #endpoint: string;
  #replayEndpoint: string | undefined;
  #pub: Publisher;
  #router: Router | undefined;
  #seq = 0n;
  // Replay ring: once full, the oldest kept batch is at #head.
  #ringSeq: bigint[] = [];
  #ringPayload: Buffer[] = [];
  #head = 0;
  #closed = false;
  #errors = 0;

  constructor(opts: KvEventPublisherOptions) {
    const bufferSteps = opts.bufferSteps ?? 10_000;
    if (!Number.isSafeInteger(bufferSteps) || bufferSteps < 1) throw new Error('bufferSteps must be a positive integer');
    this.#opts = opts;
    this.topic = opts.topic;
    this.#topicFrame = Buffer.from(opts.topic, 'utf8');
    this.#bufferSteps = bufferSteps;
    this.#binds = opts.bind ?? publisherBinds(opts.endpoint);
    this.#pub = this.#newPub();
    try {
      if (this.#binds) this.#pub.bindSync(opts.endpoint);
      else this.#pub.connect(opts.endpoint);
      this.#endpoint = (this.#binds && this.#pub.lastEndpoint) || opts.endpoint;
      if (opts.replayEndpoint !== undefined) {
        this.#router = this.#newRouter();
        this.#router.bindSync(opts.replayEndpoint);
        this.#replayEndpoint = this.#router.lastEndpoint ?? opts.replayEndpoint;
        void this.#serveReplay(this.#router);
      }
    } catch (err) {
      this.#closeSockets();
      throw err;
    }
  }

  /** The PUB address: the bound one (a `*` port resolved) or the one connected to. */
  get endpoint(): string {
    return this.#endpoint;
  }

  /** The bound replay address (a `*` port resolved). */
  get replayEndpoint(): string | undefined {
    return this.#replayEndpoint;
  }

  /** The sequence number the next batch gets. */
  get nextSeq(): bigint {
    return this.#seq;
  }

  /** Sends or replay answers ZMQ refused (none expected: PUB and ROUTER drop rather than refuse). */
  get errors(): number {
    return this.#errors;
  }

  /** Encodes and sends one batch; returns its sequence number. */
  publish(events: readonly KvEvent[], opts: { drop?: boolean } = {}): bigint {
    if (this.#closed) throw new Error('publisher closed');
    const seq = this.#seq++;
    const payload = encodeKvEventBatch(events, Date.now() / 1000, this.#opts);
    if (this.#replayEndpoint !== undefined) this.#keep(seq, payload);
    if (!opts.drop) this.#pub.send([this.#topicFrame, seqFrame(seq), payload]).then(undefined, () => this.#errors++);
    return seq;
  }

  /** A restarted engine: new sockets on the same addresses, sequence 0, replay buffer empty. */
  async restart(): Promise<void> {
    if (this.#closed) throw new Error('publisher closed');
    this.#closeSockets();
    this.#seq = 0n;
    this.#ringSeq = [];
    this.#ringPayload = [];
    this.#head = 0;
    this.#pub = this.#newPub();
    if (this.#binds) await rebind(this.#pub, this.#endpoint);
    else this.#pub.connect(this.#endpoint);
    if (this.#replayEndpoint !== undefined) {
      const router = this.#newRouter();
      this.#router = router;
      await rebind(router, this.#replayEndpoint);
      void this.#serveReplay(router);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeSockets();
  }

  #newPub(): Publisher {
    // sendTimeout 0: every send is queued (or dropped at the high-water mark) at once.
    // Otherwise zeromq.js defers every send after 512 synchronous ones to spare the event
    // loop, and a further send() while one is deferred throws EBUSY.
    return new Publisher({ linger: 0, sendTimeout: 0, sendHighWaterMark: this.#opts.sendHighWaterMark ?? 100_000 });
  }

  #newRouter(): Router {
    return new Router({ linger: 0 });
  }

  #closeSockets(): void {
    this.#pub.close();
    this.#router?.close();
    this.#router = undefined;
  }

  #keep(seq: bigint, payload: Buffer): void {
    if (this.#ringSeq.length < this.#bufferSteps) {
      this.#ringSeq.push(seq);
      this.#ringPayload.push(payload);
      return;
    }
    this.#ringSeq[this.#head] = seq;
    this.#ringPayload[this.#head] = payload;
    this.#head = (this.#head + 1) % this.#bufferSteps;
  }

  async #serveReplay(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        // (identity, empty delimiter, start seq); vLLM ignores anything else.
        const from = frames.length === 3 ? readSeq(frames[2]) : undefined;
        if (from === undefined) continue;
        const id = frames[0];
        // Snapshot first: publish() may run between the sends below.
        const n = this.#ringSeq.length;
        const kept: [bigint, Buffer][] = [];
        for (let i = 0; i < n; i++) {
          const k = (this.#head + i) % n;
          if (this.#ringSeq[k] >= from) kept.push([this.#ringSeq[k], this.#ringPayload[k]]);
        }
        for (const [seq, payload] of kept) await router.send([id, '', seqFrame(seq), payload]);
        await router.send([id, '', seqFrame(REPLAY_END_SEQ), '']);
      }
    } catch {
      // A send or receive pending when restart() or close() closed the router ends here.
      if (!router.closed) this.#errors++;
    }
  }
}
