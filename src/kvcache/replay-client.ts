// Fetches missed KV-event batches from a vLLM publisher's replay socket (a ROUTER; vLLM's
// `replay_endpoint`). One DEALER per request: it sends (empty delimiter, 8-byte start
// sequence); the publisher answers (empty, seq, payload) for every batch it still buffers
// from that sequence on, then (empty, −1, empty). Only [from, to) is wanted — the batches
// from `to` on already sit in the live subscription — so reading stops as soon as `to − 1`
// has arrived. Anything short of the whole range, in order, is a failure: the caller
// then knows the stream has a hole it cannot fill.
import { performance } from 'node:perf_hooks';
import { Dealer, type Context } from 'zeromq';
import { REPLAY_END_SEQ, readSeq, seqFrame, socketFrameLimit } from './zmq-frames.ts';

export interface ReplayedBatch {
  readonly seq: bigint;
  readonly payload: Buffer;
}

export interface ReplayLimits {
  /** Whole request, connect to last batch. */
  readonly timeoutMs: number;
  /** Most batches one replay may fetch. */
  readonly maxBatches: number;
  /** Most payload bytes one replay may hold. */
  readonly maxBytes: number;
  /** Largest single payload. */
  readonly maxPayloadBytes: number;
}

export class ReplayError extends Error {
  override name = 'ReplayError';
}

/**
 * Batches [from, to) from the replay socket at `endpoint`, in order. Rejects with a
 * ReplayError on timeout, abort, a malformed answer, limits exceeded, or when the publisher
 * no longer holds the whole range (its buffer moved on, or it restarted).
 */
export async function fetchReplay(
  endpoint: string,
  from: bigint,
  to: bigint,
  limits: ReplayLimits,
  opts: { signal?: AbortSignal; context?: Context } = {},
): Promise<ReplayedBatch[]> {
  if (to <= from) return [];
  if (to - from > BigInt(limits.maxBatches)) {
    throw new ReplayError(`${to - from} batches missing, more than the replay limit of ${limits.maxBatches}`);
  }
  const { signal, context } = opts;
  if (signal?.aborted) throw new ReplayError('replay aborted');
  const dealer = new Dealer({
    linger: 0,
    maxMessageSize: socketFrameLimit(limits.maxPayloadBytes),
    receiveHighWaterMark: limits.maxBatches + 1,
    sendTimeout: limits.timeoutMs,
    ...(context ? { context } : {}),
  });
  const abort = (): void => dealer.close();
  signal?.addEventListener('abort', abort, { once: true });
  try {
    try {
      dealer.connect(endpoint);
    } catch (err) {
      throw new ReplayError(`cannot connect to replay endpoint ${endpoint}: ${(err as Error).message}`);
    }
    const timedOut = (next: bigint): ReplayError =>
      new ReplayError(`replay timed out after ${limits.timeoutMs} ms at seq ${next} of [${from}, ${to})`);
    const failure = (err: unknown, next: bigint): ReplayError => {
      if (signal?.aborted) return new ReplayError('replay aborted');
      if ((err as { code?: string }).code === 'EAGAIN') return timedOut(next);
      return new ReplayError(`replay failed: ${(err as Error).message}`);
    };
    const deadline = performance.now() + limits.timeoutMs;
    try {
      await dealer.send(['', seqFrame(from)]);
    } catch (err) {
      throw failure(err, from);
    }
    const out: ReplayedBatch[] = [];
    let bytes = 0;
    for (let next = from; next < to; next++) {
      const remaining = Math.ceil(deadline - performance.now());
      if (remaining <= 0) throw timedOut(next);
      dealer.receiveTimeout = remaining;
      let frames: Buffer[];
      try {
        frames = await dealer.receive();
      } catch (err) {
        throw failure(err, next);
      }
      const seq = frames.length === 3 && frames[0].length === 0 ? readSeq(frames[1]) : undefined;
      if (seq === undefined) throw new ReplayError(`malformed replay message (${frames.length} frames)`);
      if (seq === REPLAY_END_SEQ) throw new ReplayError(`the publisher no longer holds seq ${next}: [${next}, ${to}) is lost`);
      if (seq !== next) throw new ReplayError(`replay sent seq ${seq} where ${next} was due: [${next}, ${to}) is lost`);
      const payload = frames[2];
      if (payload.length > limits.maxPayloadBytes) throw new ReplayError(`replayed payload of ${payload.length} bytes exceeds ${limits.maxPayloadBytes}`);
      bytes += payload.length;
      if (bytes > limits.maxBytes) throw new ReplayError(`replay exceeds ${limits.maxBytes} bytes`);
      out.push({ seq, payload });
    }
    return out;
  } finally {
    signal?.removeEventListener('abort', abort);
    dealer.close();
  }
}
