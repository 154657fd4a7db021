// Tokenization off the request event loop: a pool of worker threads, each holding the
// tokenizer (tokenize-worker.ts), fed from one bounded FIFO queue; a worker takes one
// text at a time, so a 100k-token prompt never holds up a short one behind it on
// another worker, and no more than `workers` long encodes hold libuv's thread pool at once
// (text-tokenizer.ts). Texts of at most `inlineMaxChars` characters are encoded from
// the calling thread instead: below ~400 characters that costs it no more CPU than a
// worker round trip and half the latency (bench/tokenizer.bench.ts). Chat templates are
// rendered on the calling thread (≈ 1 ms for a 100k-token chat).
//
// In front of both sits the prefix cache (prefix-cache.ts): only the part of a prompt
// after its longest recently seen prefix is tokenized, and `cachedChars` says how much
// was not. Failure modes, none of which hangs or throws from an event handler:
// - queue full (`maxQueued`): rejected at once;
// - aborted signal: a queued job is dropped, a running one is answered at once and its
//   result discarded when it arrives;
// - a job running past `jobTimeoutMs`: answered at once with an error; its worker
//   finishes the encode (native code cannot be interrupted, and terminating the worker
//   would leave it running on libuv's pool anyway) before it takes another job, so no
//   more than `workers` encodes ever run at once;
// - a worker that dies: its job is rejected and a new worker started; if starting one
//   fails, the queue is failed rather than left waiting, and starting is retried.
// A worker's heap is not capped (resourceLimits): running out of it aborts the whole
// process when a native addon is loaded, instead of ending the worker.
import { Worker } from 'node:worker_threads';
import type { ChatRenderInput } from './chat-messages.ts';
import { chatAddsSpecialTokens, loadLocalTokenizer, nonEmpty, type CompletionPrompt, type LocalTokenizer } from './local-tokenizer.ts';
import { PrefixCache, type PrefixPlan } from './prefix-cache.ts';
import type { WorkerJob, WorkerReply, WorkerStatus } from './tokenize-worker.ts';

export interface TokenizerPoolOptions {
  /** Directory holding tokenizer.json (+ tokenizer_config.json), or the tokenizer.json file. */
  readonly path: string;
  /** Worker threads (--tokenizer-workers). */
  readonly workers: number;
  /** Texts up to this many characters are tokenized on the calling thread; 0 sends all to workers. */
  readonly inlineMaxChars: number;
  /** Prefix-cache budget in bytes; 0 disables the cache. */
  readonly cacheMaxBytes: number;
  /** Most jobs waiting for a worker before new ones are refused (default 1024). */
  readonly maxQueued?: number;
  /** Longest a caller waits for a worker's answer once the text is sent (default 30 s). */
  readonly jobTimeoutMs?: number;
}

export interface TokenizeResult {
  readonly ids: Uint32Array;
  /** Characters of the prompt text (the rendered chat, or the completions prompt); 0 for token ids. */
  readonly totalChars: number;
  /** Characters of it whose ids came from the prefix cache (the rest was tokenized). */
  readonly cachedChars: number;
}

/** The default --tokenizer-workers: min(4, CPUs − 1), at least 1. */
export function defaultTokenizerWorkers(cpus: number): number {
  return Math.max(1, Math.min(4, cpus - 1));
}

const DEFAULT_MAX_QUEUED = 1024;
const DEFAULT_JOB_TIMEOUT_MS = 30_000;
/** Wait before starting a worker again after one failed to start. */
const RESPAWN_DELAY_MS = 1000;

interface Job {
  readonly id: number;
  readonly text: string;
  readonly resolve: (ids: Uint32Array) => void;
  readonly reject: (err: Error) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
  settled: boolean;
}

interface Slot {
  readonly worker: Worker;
  ready: boolean;
  job: Job | undefined;
  timer: NodeJS.Timeout | undefined;
}

export class TokenizerPool {
  private readonly opts: Required<TokenizerPoolOptions>;
  private local: LocalTokenizer | undefined;
  private cache: PrefixCache | undefined;
  private readonly slots = new Set<Slot>();
  private readonly queue: Job[] = [];
  /** Prefix-cache keys whose ids a running tokenization will store (≤ 256 per job; jobs are bounded by maxQueued). */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private nextId = 1;
  private closed = false;
  private respawnTimer: NodeJS.Timeout | undefined;
  private readyPromise: Promise<void> | undefined;

  constructor(options: TokenizerPoolOptions) {
    for (const k of ['workers', 'inlineMaxChars', 'cacheMaxBytes'] as const) {
      if (!Number.isInteger(options[k]) || options[k] < 0) throw new RangeError(`TokenizerPool: ${k} must be a non-negative integer`);
    }
    if (options.workers < 1) throw new RangeError('TokenizerPool: workers must be at least 1');
    this.opts = { maxQueued: DEFAULT_MAX_QUEUED, jobTimeoutMs: DEFAULT_JOB_TIMEOUT_MS, ...options };
  }

  /** Loads the tokenizer here and in every worker; rejects with the load error (and closes the pool). */
  ready(): Promise<void> {
    this.readyPromise ??= this.start();
    return this.readyPromise;
  }

  /** The ids vLLM's /v1/chat/completions/render returns for `body`. */
  async tokenizeChat(body: ChatRenderInput, signal?: AbortSignal): Promise<TokenizeResult> {
    const local = await this.usable(signal);
    const text = local.renderChat(body);
    return this.tokenizeText(text, chatAddsSpecialTokens(body), signal);
  }

  /** The ids vLLM's /v1/completions/render returns for one prompt. */
  async tokenizeCompletion(prompt: CompletionPrompt, signal?: AbortSignal, options: { addSpecialTokens?: boolean } = {}): Promise<TokenizeResult> {
    const local = await this.usable(signal);
    if (typeof prompt !== 'string') return { ids: local.checkTokenIds(prompt), totalChars: 0, cachedChars: 0 };
    return this.tokenizeText(prompt, options.addSpecialTokens ?? true, signal);
  }

  /** Stops every worker; pending and later calls reject. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.respawnTimer);
    this.failQueue('the tokenizer pool is closed');
    const exits = [...this.slots].map((s) => {
      this.failJob(s, 'the tokenizer pool is closed');
      return s.worker.terminate();
    });
    this.slots.clear();
    await Promise.allSettled(exits);
  }

  private async start(): Promise<void> {
    const started = Promise.all(Array.from({ length: this.opts.workers }, () => this.spawn()));
    // Handled below; this keeps a worker's load failure from counting as unhandled when loading here throws first.
    started.catch(() => undefined);
    try {
      // Load here while the workers load on their own threads.
      this.local = await loadLocalTokenizer(this.opts.path);
      this.cache = new PrefixCache(this.local.cutTokens, this.opts.cacheMaxBytes);
      await started;
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private async usable(signal: AbortSignal | undefined): Promise<LocalTokenizer> {
    if (this.closed) throw new Error('the tokenizer pool is closed');
    await this.ready();
    if (signal?.aborted) throw abortError();
    return this.local as LocalTokenizer;
  }

  private async tokenizeText(text: string, addSpecialTokens: boolean, signal: AbortSignal | undefined): Promise<TokenizeResult> {
    const local = this.local as LocalTokenizer;
    const cache = this.cache as PrefixCache;
    let plan = cache.plan(text);
    // A burst of requests on one new long document: the first tokenizes it, the others wait for
    // its cached prefix instead of tokenizing the same characters in parallel.
    const ahead = this.inFlightBeyond(plan);
    if (ahead) {
      await settledOrAborted(ahead, signal);
      plan = cache.plan(text);
    }
    const work = this.encodeRaw(text.slice(plan.tailStart), signal);
    this.markInFlight(plan, work);
    let ids = cache.complete(plan, await work);
    if (ids === undefined) {
      plan = { ...plan, hit: -1, hitIds: undefined, tailStart: 0 } satisfies PrefixPlan;
      ids = cache.complete(plan, await this.encodeRaw(text, signal)) as Uint32Array;
    }
    return { ids: nonEmpty(addSpecialTokens ? local.withSpecialTokens(ids) : ids), totalChars: text.length, cachedChars: plan.tailStart };
  }

  /** The tokenization in flight that will cache the longest prefix of the plan's text beyond its hit. */
  private inFlightBeyond(plan: PrefixPlan): Promise<unknown> | undefined {
    for (let i = plan.keys.length - 1; i > plan.hit; i--) {
      const p = this.inFlight.get(plan.keys[i]);
      if (p) return p;
    }
    return undefined;
  }

  /** Until `work` settles, the prefixes it will cache (the plan's cuts past its hit) are in flight. */
  private markInFlight(plan: PrefixPlan, work: Promise<unknown>): void {
    if (plan.keys.length <= plan.hit + 1) return; // nothing new to cache (no keys at all when the cache is off)
    const keys = plan.keys.slice(plan.hit + 1);
    for (const k of keys) this.inFlight.set(k, work);
    const done = () => {
      for (const k of keys) if (this.inFlight.get(k) === work) this.inFlight.delete(k);
    };
    work.then(done, done);
  }

  /** Raw ids of `text`: here when short, else on a worker. */
  private encodeRaw(text: string, signal: AbortSignal | undefined): Promise<Uint32Array> {
    if (this.closed) return Promise.reject(new Error('the tokenizer pool is closed'));
    if (text.length <= this.opts.inlineMaxChars) return (this.local as LocalTokenizer).encodeRaw(text);
    if (this.queue.length >= this.opts.maxQueued) {
      return Promise.reject(new Error(`the tokenizer queue is full (${this.opts.maxQueued} jobs waiting)`));
    }
    return new Promise<Uint32Array>((resolve, reject) => {
      const job: Job = {
        id: this.nextId++,
        text,
        resolve,
        reject,
        signal,
        onAbort: () => this.abort(job),
        settled: false,
      };
      signal?.addEventListener('abort', job.onAbort, { once: true });
      this.queue.push(job);
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.job) continue;
      const job = this.queue.shift() as Job;
      slot.job = job;
      slot.timer = setTimeout(() => this.timeOut(slot), this.opts.jobTimeoutMs);
      slot.worker.postMessage({ id: job.id, text: job.text } satisfies WorkerJob);
    }
  }

  private spawn(): Promise<void> {
    const worker = new Worker(new URL('./tokenize-worker.ts', import.meta.url), { workerData: { path: this.opts.path } });
    const slot: Slot = { worker, ready: false, job: undefined, timer: undefined };
    this.slots.add(slot);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: WorkerStatus | WorkerReply) => {
        if (!slot.ready) {
          if ('ready' in msg && msg.ready) {
            slot.ready = true;
            resolve();
            this.dispatch();
          } else {
            const err = new Error(`tokenizer worker could not load the tokenizer: ${'error' in msg ? msg.error : 'unexpected message'}`);
            reject(err);
            void worker.terminate();
          }
          return;
        }
        this.finish(slot, msg as WorkerReply);
      });
      worker.on('error', (err) => {
        reject(new Error(`tokenizer worker failed: ${err.message}`));
        this.failJob(slot, `the tokenizer worker failed: ${err.message}`);
      });
      worker.on('exit', () => {
        const wasReady = slot.ready;
        reject(new Error('tokenizer worker exited while loading'));
        this.failJob(slot, 'the tokenizer worker stopped');
        if (!this.slots.delete(slot) || this.closed) return;
        if (wasReady) this.replace();
        else this.startFailed();
      });
    });
  }

  /** A worker died: start another; its queue waits for it. */
  private replace(): void {
    this.spawn().catch(() => undefined);
  }

  /** A new worker failed to load: fail what waits if nothing can run it, and try again later. */
  private startFailed(): void {
    if (![...this.slots].some((s) => s.ready)) this.failQueue('no tokenizer worker is running');
    if (this.respawnTimer !== undefined) return;
    this.respawnTimer = setTimeout(() => {
      this.respawnTimer = undefined;
      if (!this.closed) this.replace();
    }, RESPAWN_DELAY_MS);
    this.respawnTimer.unref();
  }

  private finish(slot: Slot, reply: WorkerReply): void {
    const job = slot.job;
    if (!job || job.id !== reply.id) return;
    clearTimeout(slot.timer);
    slot.job = undefined;
    slot.timer = undefined;
    if (!job.settled) {
      job.settled = true;
      job.signal?.removeEventListener('abort', job.onAbort);
      if ('ids' in reply) job.resolve(reply.ids);
      else job.reject(new Error(reply.error));
    }
    this.dispatch();
  }

  /** Answers the caller; the slot stays taken until the worker's reply arrives (finish). */
  private timeOut(slot: Slot): void {
    if (slot.job) settle(slot.job, new Error(`tokenization took longer than ${this.opts.jobTimeoutMs} ms`));
  }

  private abort(job: Job): void {
    const at = this.queue.indexOf(job);
    if (at >= 0) this.queue.splice(at, 1);
    settle(job, abortError());
  }

  private failJob(slot: Slot, message: string): void {
    clearTimeout(slot.timer);
    const job = slot.job;
    slot.job = undefined;
    if (job) settle(job, new Error(message));
  }

  private failQueue(message: string): void {
    for (const job of this.queue.splice(0)) settle(job, new Error(message));
  }
}

function settle(job: Job, err: Error): void {
  if (job.settled) return;
  job.settled = true;
  job.signal?.removeEventListener('abort', job.onAbort);
  job.reject(err);
}

function abortError(): Error {
  return new DOMException('tokenization aborted', 'AbortError');
}

/** Resolves when `p` settles either way, or when `signal` aborts (then rejects with the abort). */
function settledOrAborted(p: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  const settled = p.then(
    () => undefined,
    () => undefined,
  );
  if (!signal) return settled;
  if (signal.aborted) return Promise.reject(abortError());
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(abortError());
    signal.addEventListener('abort', onAbort, { once: true });
    settled.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
