// The receiving end of vLLM's KV-event stream (vllm/distributed/kv_events.py), in the two
// ways llm-d's precise prefix cache wires it:
// - bind: one SUB socket bound to `kvEventsConfig.zmqEndpoint`; every engine connects to it
//   and is told apart only by its topic (`kv@<pod>@<model>`); `source` is undefined;
// - connect: `addSource(id, endpoint, replayEndpoint?)` connects one SUB socket per engine
//   (`tcp://<pod ip>:<socketPort>`, port + r for data-parallel rank r) and removeSource
//   closes it at once.
// Each socket has its own receive loop that hands every well-formed message to `onMessage`
// synchronously, in order. Malformed messages (not 3 frames, a sequence frame that is not
// 8 bytes, a topic over 256 bytes, a payload over `maxPayloadBytes`) are counted and skipped.
//
// Sequence numbers are tracked per (socket, topic). A message that skips ahead (a gap) or
// goes back (a reset: the engine restarted) is reported to `onGap` before it is delivered.
// When the source has a replay endpoint, the missing batches — [expected, got) after a gap,
// [0, got) after a reset — are first fetched from it; that source's loop waits meanwhile
// (its messages queue in ZMQ), `onGap` says whether the replay worked, and the replayed
// batches are delivered in order (marked `replayed`) before the message that revealed the
// gap. A connect-mode source also reports losing and regaining its connection.
//
// Memory: ZMQ queues at most `receiveHighWaterMark` messages per connection; when the loop
// falls that far behind, the publisher's PUB socket drops further batches for this
// subscriber (ZMQ's PUB never blocks), which shows up here as a sequence gap. A frame over
// twice `maxPayloadBytes` is refused by libzmq before it is buffered: it drops the peer's
// connection (in connect mode this subscriber then reconnects it; in bind mode the engine
// reconnects), so the lost batch shows up as a gap. Sources, tracked topics and replays are
// capped too.
// Nothing here throws into the event loop: callback errors and socket failures go to
// `onError`, and close() ends every loop.
import { Context, Subscriber } from 'zeromq';
import { ReplayError, fetchReplay, type ReplayLimits } from './replay-client.ts';
import { SequenceTracker } from './sequence-tracker.ts';
import { readSeq, socketFrameLimit } from './zmq-frames.ts';

export interface KvEventMessage {
  /** The addSource id; undefined for the bound socket. */
  readonly source: string | undefined;
  readonly topic: string;
  readonly seq: bigint;
  /** The msgpack KVEventBatch, undecoded. */
  readonly payload: Uint8Array;
  /** True for a batch fetched from the replay socket to fill a gap. */
  readonly replayed: boolean;
}

export interface KvSequenceGap {
  readonly source: string | undefined;
  readonly topic: string;
  /** The sequence number that should have come next. */
  readonly expected: bigint;
  readonly got: bigint;
  /** 'gap': batches were skipped; 'reset': the sequence went back (the engine restarted). */
  readonly kind: 'gap' | 'reset';
  /** Batches of the current stream not received live: got − expected for a gap, got for a reset. */
  readonly missing: bigint;
  /**
   * 'ok': the missing batches were replayed and are delivered next (the stream is whole);
   * 'failed': a replay was tried and did not cover them (see replayError);
   * 'none': no replay endpoint, or nothing missing (a reset to seq 0).
   */
  readonly replay: 'ok' | 'failed' | 'none';
  readonly replayError?: string;
}

export interface KvEventSubscriberOptions {
  onMessage: (msg: KvEventMessage) => void;
  onGap?: (gap: KvSequenceGap) => void;
  /** A connect-mode source lost its connection (batches published meanwhile are lost to it). */
  onDisconnect?: (source: string) => void;
  /** A connect-mode source's connection is back after a loss. */
  onReconnect?: (source: string) => void;
  /** A callback threw, or a socket's receive loop failed. Never throws into the event loop. */
  onError?: (err: unknown, source: string | undefined) => void;
  /** Topic prefix subscribed to. Default 'kv@' (llm-d's `topicFilter`). */
  topicFilter?: string;
  /** Larger payloads are counted and skipped. Default 16 MiB. */
  maxPayloadBytes?: number;
  /** Messages ZMQ queues per connection before the publisher drops. Default 1000. */
  receiveHighWaterMark?: number;
  /** addSource refuses more. Default 512. */
  maxSources?: number;
  /** Topics tracked per connect-mode source (the bound socket tracks maxSources × this). Default 8. */
  maxTopicsPerSource?: number;
  /** Whole replay request. Default 1000 ms. */
  replayTimeoutMs?: number;
  /** Most batches one replay may fetch; a larger gap is not replayed. Default 10000 (vLLM's buffer_steps). */
  maxReplayBatches?: number;
  /** Most payload bytes one replay may hold. Default 64 MiB. */
  maxReplayBytes?: number;
}

export interface KvEventSubscriberStats {
  /** Messages delivered from the live stream. */
  messages: number;
  /** Messages delivered from replays. */
  replayedMessages: number;
  malformedFrameCount: number;
  malformedSeq: number;
  oversizedTopic: number;
  oversizedPayload: number;
  gaps: number;
  resets: number;
  replaysOk: number;
  replaysFailed: number;
  /** Tracked topics evicted to stay under the cap. */
  topicsEvicted: number;
  callbackErrors: number;
}

const MAX_TOPIC_BYTES = 256;
const MAX_ID_LENGTH = 256;
const MAX_ENDPOINT_LENGTH = 512;
const REARM_MS = 500;
const ENDPOINT = /^(tcp|ipc|inproc):\/\/\S+$/;

interface Socket {
  readonly id: string | undefined;
  readonly sock: Subscriber;
  readonly endpoint: string;
  readonly replayEndpoint: string | undefined;
  readonly seqs: SequenceTracker;
  readonly abort: AbortController;
  done: Promise<void>;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return v;
}

function checkEndpoint(what: string, endpoint: string): void {
  if (typeof endpoint !== 'string' || endpoint.length > MAX_ENDPOINT_LENGTH || !ENDPOINT.test(endpoint)) {
    throw new Error(`${what} must be a tcp://, ipc:// or inproc:// address of at most ${MAX_ENDPOINT_LENGTH} characters`);
  }
}

export class KvEventSubscriber {
  readonly stats: KvEventSubscriberStats = {
    messages: 0,
    replayedMessages: 0,
    malformedFrameCount: 0,
    malformedSeq: 0,
    oversizedTopic: 0,
    oversizedPayload: 0,
    gaps: 0,
    resets: 0,
    replaysOk: 0,
    replaysFailed: 0,
    topicsEvicted: 0,
    callbackErrors: 0,
  };

  readonly #opts: KvEventSubscriberOptions;
  readonly #topicFilter: string;
  readonly #maxPayloadBytes: number;
  readonly #hwm: number;
  readonly #maxSources: number;
  readonly #maxTopicsPerSource: number;
  readonly #replayLimits: ReplayLimits;
  readonly #context: Context;
  readonly #sources = new Map<string, Socket>();
  #bound: Socket | undefined;
  #closed = false;

  constructor(opts: KvEventSubscriberOptions) {
    this.#opts = opts;
    this.#topicFilter = opts.topicFilter ?? 'kv@';
    if (Buffer.byteLength(this.#topicFilter) > MAX_TOPIC_BYTES) throw new Error(`topicFilter must be at most ${MAX_TOPIC_BYTES} bytes`);
    this.#maxPayloadBytes = positiveInt('maxPayloadBytes', opts.maxPayloadBytes, 16 * 1024 * 1024);
    this.#hwm = positiveInt('receiveHighWaterMark', opts.receiveHighWaterMark, 1000);
    this.#maxSources = positiveInt('maxSources', opts.maxSources, 512);
    this.#maxTopicsPerSource = positiveInt('maxTopicsPerSource', opts.maxTopicsPerSource, 8);
    this.#replayLimits = {
      timeoutMs: positiveInt('replayTimeoutMs', opts.replayTimeoutMs, 1000),
      maxBatches: positiveInt('maxReplayBatches', opts.maxReplayBatches, 10_000),
      maxBytes: positiveInt('maxReplayBytes', opts.maxReplayBytes, 64 * 1024 * 1024),
      maxPayloadBytes: this.#maxPayloadBytes,
    };
    // A context of our own: libzmq's default allows 1023 sockets, and each source costs
    // three (its SUB and the monitor pair behind its connection events) plus a DEALER
    // while it replays.
    this.#context = new Context({ blocky: false, maxSockets: 4 * this.#maxSources + 64 });
  }

  /** Binds the shared SUB socket engines connect to; resolves to the bound address (port `*` resolved). */
  async bind(endpoint: string): Promise<string> {
    this.#checkOpen();
    checkEndpoint('zmqEndpoint', endpoint);
    if (this.#bound) throw new Error(`already bound to ${this.#bound.endpoint}`);
    const s = this.#socket(undefined, endpoint, undefined, this.#maxSources * this.#maxTopicsPerSource);
    this.#bound = s;
    try {
      await s.sock.bind(endpoint);
    } catch (err) {
      this.#bound = undefined;
      s.sock.close();
      throw new Error(`cannot bind KV-event socket to ${endpoint}: ${(err as Error).message}`);
    }
    if (this.#closed) {
      s.sock.close();
      throw new Error('subscriber closed');
    }
    const resolved = s.sock.lastEndpoint ?? endpoint;
    s.done = this.#receive(s);
    return resolved;
  }

  /** Connects a SUB socket to one engine's publisher. Throws on a bad argument, a duplicate id or too many sources. */
  addSource(id: string, endpoint: string, replayEndpoint?: string): void {
    this.#checkOpen();
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) {
      throw new Error(`source id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`);
    }
    if (this.#sources.has(id)) throw new Error(`KV-event source ${id} is already added`);
    if (this.#sources.size >= this.#maxSources) throw new Error(`too many KV-event sources (at most ${this.#maxSources})`);
    checkEndpoint('endpoint', endpoint);
    if (replayEndpoint !== undefined) checkEndpoint('replayEndpoint', replayEndpoint);
    const s = this.#socket(id, endpoint, replayEndpoint, this.#maxTopicsPerSource);
    try {
      s.sock.connect(endpoint);
    } catch (err) {
      s.sock.close();
      throw new Error(`cannot connect KV-event source ${id} to ${endpoint}: ${(err as Error).message}`);
    }
    this.#sources.set(id, s);
    s.done = Promise.all([this.#receive(s), this.#watch(s, id)]).then(() => undefined);
  }

  /** Closes a source's socket (and any replay in flight) at once; nothing more is delivered from it. */
  removeSource(id: string): boolean {
    const s = this.#sources.get(id);
    if (!s) return false;
    this.#sources.delete(id);
    this.#shut(s);
    return true;
  }

  has(id: string): boolean {
    return this.#sources.has(id);
  }

  get sourceCount(): number {
    return this.#sources.size;
  }

  /** Closes every socket; resolves when every receive loop has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#sources.values()];
    if (this.#bound) all.push(this.#bound);
    this.#sources.clear();
    this.#bound = undefined;
    for (const s of all) this.#shut(s);
    await Promise.all(all.map((s) => s.done));
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error('subscriber closed');
  }

  #socket(id: string | undefined, endpoint: string, replayEndpoint: string | undefined, maxTopics: number): Socket {
    const sock = new Subscriber({
      context: this.#context,
      linger: 0,
      receiveHighWaterMark: this.#hwm,
      maxMessageSize: socketFrameLimit(this.#maxPayloadBytes),
      reconnectMaxInterval: 5000,
      // Peers that vanish without closing TCP (a node lost) are noticed within 30 s.
      heartbeatInterval: 10_000,
      heartbeatTimeout: 30_000,
    });
    sock.subscribe(this.#topicFilter);
    return { id, sock, endpoint, replayEndpoint, seqs: new SequenceTracker(maxTopics), abort: new AbortController(), done: Promise.resolve() };
  }

  #shut(s: Socket): void {
    s.abort.abort();
    s.sock.close();
  }

  async #receive(s: Socket): Promise<void> {
    try {
      for await (const frames of s.sock) {
        if (s.abort.signal.aborted) break;
        const pending = this.#onFrames(s, frames);
        if (pending) await pending;
      }
    } catch (err) {
      if (!s.abort.signal.aborted) this.#error(err, s.id);
    }
  }

  /**
   * Connection loss and return, from the socket's monitor events (connect mode). libzmq
   * reconnects by itself after a connection error, announcing it with connect:retry or
   * connect:delay; after a protocol error (a frame over its size limit) it gives the peer
   * up for good, so a disconnect not followed by either within REARM_MS is re-armed here.
   */
  async #watch(s: Socket, id: string): Promise<void> {
    let lost = false;
    let rearm: NodeJS.Timeout | undefined;
    const stopRearm = (): void => clearTimeout(rearm);
    s.abort.signal.addEventListener('abort', stopRearm, { once: true });
    try {
      for await (const ev of s.sock.events) {
        if (s.abort.signal.aborted) break;
        if (ev.type === 'disconnect') {
          stopRearm();
          rearm = setTimeout(() => this.#rearm(s), REARM_MS);
          if (!lost) {
            lost = true;
            this.#call(() => this.#opts.onDisconnect?.(id), id);
          }
        } else if (ev.type === 'connect:retry' || ev.type === 'connect:delay') {
          stopRearm();
        } else if (ev.type === 'connect') {
          stopRearm();
          if (lost) {
            lost = false;
            this.#call(() => this.#opts.onReconnect?.(id), id);
          }
        }
      }
    } catch (err) {
      if (!s.abort.signal.aborted) this.#error(err, id);
    } finally {
      stopRearm();
      s.abort.signal.removeEventListener('abort', stopRearm);
    }
  }

  #rearm(s: Socket): void {
    if (s.abort.signal.aborted) return;
    try {
      s.sock.disconnect(s.endpoint);
    } catch {
      // libzmq may already have forgotten the endpoint along with its session.
    }
    try {
      s.sock.connect(s.endpoint);
    } catch (err) {
      this.#error(err, s.id);
    }
  }

  /** Validates and sequences one message; returns a promise only when a replay must finish first. */
  #onFrames(s: Socket, frames: Buffer[]): Promise<void> | undefined {
    if (frames.length !== 3) {
      this.stats.malformedFrameCount++;
      return undefined;
    }
    const [topicFrame, seqFrame, payload] = frames;
    const seq = readSeq(seqFrame);
    if (seq === undefined) {
      this.stats.malformedSeq++;
      return undefined;
    }
    if (topicFrame.length > MAX_TOPIC_BYTES) {
      this.stats.oversizedTopic++;
      return undefined;
    }
    if (payload.length > this.#maxPayloadBytes) {
      this.stats.oversizedPayload++;
      return undefined;
    }
    const topic = topicFrame.toString('utf8');
    const check = s.seqs.check(topic, seq);
    if (check.kind === 'first' || check.kind === 'next') {
      this.#deliver(s, topic, seq, payload, false);
      return undefined;
    }
    if (check.kind === 'gap') this.stats.gaps++;
    else this.stats.resets++;
    const from = check.kind === 'gap' ? check.expected : 0n;
    const gap = { source: s.id, topic, expected: check.expected, got: seq, kind: check.kind, missing: seq - from };
    if (s.replayEndpoint === undefined || from === seq) {
      this.#call(() => this.#opts.onGap?.({ ...gap, replay: 'none' }), s.id);
      this.#deliver(s, topic, seq, payload, false);
      return undefined;
    }
    return this.#replay(s, s.replayEndpoint, gap, from, payload);
  }

  async #replay(s: Socket, endpoint: string, gap: Omit<KvSequenceGap, 'replay'>, from: bigint, payload: Buffer): Promise<void> {
    let batches: { seq: bigint; payload: Buffer }[] = [];
    let replayError: string | undefined;
    try {
      batches = await fetchReplay(endpoint, from, gap.got, this.#replayLimits, { signal: s.abort.signal, context: this.#context });
    } catch (err) {
      replayError = err instanceof ReplayError ? err.message : `replay failed: ${String(err)}`;
    }
    if (s.abort.signal.aborted) return;
    if (replayError === undefined) {
      this.stats.replaysOk++;
      this.#call(() => this.#opts.onGap?.({ ...gap, replay: 'ok' }), s.id);
      for (const b of batches) {
        if (s.abort.signal.aborted) return;
        this.#deliver(s, gap.topic, b.seq, b.payload, true);
      }
    } else {
      this.stats.replaysFailed++;
      this.#call(() => this.#opts.onGap?.({ ...gap, replay: 'failed', replayError }), s.id);
    }
    if (!s.abort.signal.aborted) this.#deliver(s, gap.topic, gap.got, payload, false);
  }

  #deliver(s: Socket, topic: string, seq: bigint, payload: Buffer, replayed: boolean): void {
    const evictedBefore = s.seqs.evicted;
    s.seqs.commit(topic, seq);
    this.stats.topicsEvicted += s.seqs.evicted - evictedBefore;
    if (replayed) this.stats.replayedMessages++;
    else this.stats.messages++;
    this.#call(() => this.#opts.onMessage({ source: s.id, topic, seq, payload, replayed }), s.id);
  }

  #call(fn: () => void, source: string | undefined): void {
    try {
      fn();
    } catch (err) {
      this.stats.callbackErrors++;
      this.#error(err, source);
    }
  }

  #error(err: unknown, source: string | undefined): void {
    try {
      this.#opts.onError?.(err, source);
    } catch {
      // onError itself threw: the count in stats.callbackErrors is all that is left to give.
      this.stats.callbackErrors++;
    }
  }
}
