// One simulated vLLM V1 engine (one pod): a waiting queue and a running batch scheduled one
// step at a time, as vllm/v1/core/sched/scheduler.py does:
// - each step first schedules the running requests (one decode token each, or the next
//   chunk of an unfinished prefill) within `maxNumBatchedTokens`, allocating KV blocks as
//   they grow; when blocks run out the most recently added running request is preempted
//   (recompute: its blocks are freed and it goes back to the front of the waiting queue);
// - then, if nothing was preempted, it admits waiting requests while the token budget and
//   `maxNumSeqs` allow, skipping the prefill of full blocks found in the prefix cache;
// - as in vLLM, the blocks a step will fill are entered in the prefix cache when the step is
//   scheduled (a request admitted later in the same step can hit them), and the KV events of
//   a step (evictions, stored blocks) go out as one batch when the step ends;
// - the step lasts f(prefill tokens, batch size, live context) (timing model of
//   shared/reference/vllm.md §6.3), after which every request whose prompt is complete emits
//   one token.
// Time is simulated: the engine keeps a virtual clock in seconds advanced by step
// durations; wall-clock time = virtual time × timeScale. All metrics are in virtual seconds.
import { performance } from 'node:perf_hooks';
import { KvCache, extendHashChain, type HashChain, type KvEvent } from './kv-cache.ts';
import { EngineMetrics, renderMetrics, type FinishReason, type MetricsSource } from './metrics.ts';
import { fillerToken, textSeed } from './tokens.ts';

export type { FinishReason } from './metrics.ts';

/** Step-time constants (milliseconds of simulated time). Defaults: Llama-3.1-8B, one H100. */
export interface TimingOptions {
  /** Fixed per-step cost (scheduling, sampling, launch). */
  stepOverheadMs: number;
  /** Reading the weights once per step (16.1 GB at ≈ 3.35 TB/s ⇒ ≈ 4.8 ms). */
  weightReadMs: number;
  /** Reading one token of live context's KV (128 KiB at ≈ 2.6 TB/s effective). */
  kvReadMsPerToken: number;
  /** Dense compute per scheduled token (≈ 16 GFLOP at ≈ 500 TFLOPS effective). */
  computeMsPerToken: number;
  /** Attention compute per (new token × context token) pair of a prefill chunk. */
  attentionMsPerTokenPair: number;
}

export const DEFAULT_TIMING: Readonly<TimingOptions> = Object.freeze({
  stepOverheadMs: 1.5,
  weightReadMs: 5.0,
  kvReadMsPerToken: 5e-5,
  computeMsPerToken: 0.032,
  attentionMsPerTokenPair: 1.2e-6,
});

export interface EngineOptions {
  /** Served model name (the `model_name` label). */
  model: string;
  /** Default 27000 (≈ an H100 80 GB for an 8B model, §6.2). */
  numGpuBlocks?: number;
  /** Default 16. */
  blockSize?: number;
  /** Default 1024 (vllm serve on an H100). */
  maxNumSeqs?: number;
  /** Default 8192. */
  maxNumBatchedTokens?: number;
  /** Default 131072. */
  maxModelLen?: number;
  /** Wall seconds per simulated second. Default 1; 0.01 runs 100× faster; 0 as fast as possible. */
  timeScale?: number;
  /** Default true. */
  enablePrefixCaching?: boolean;
  timing?: Partial<TimingOptions>;
  /** LoRA adapter names servable by this engine (selected by the request's `model`). */
  loraModules?: readonly string[];
  /** Adapters per batch (vLLM --max-loras). Default 1. */
  maxLoras?: number;
  /** Data-parallel engine index, the `engine` label. Default "0". */
  engineIndex?: string;
  /**
   * KV-cache event sink: one call per engine step that produced events, in vLLM's order
   * (one BlockRemoved per evicted block); events outside a step (a prefix-cache reset) are
   * passed at once.
   */
  onKvEvents?: (batch: KvEvent[]) => void;
}

export interface GeneratedToken {
  /** 0-based index among the request's output tokens. */
  index: number;
  id: number;
  text: string;
}

export interface RequestResult {
  id: string;
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens served from the prefix cache at first scheduling. */
  cachedTokens: number;
  finishReason: FinishReason;
  /** Virtual seconds. */
  arrivalTime: number;
  firstScheduledTime: number | undefined;
  firstTokenTime: number | undefined;
  finishTime: number;
}

export interface SubmitOptions {
  id?: string;
  promptTokens: ArrayLike<number>;
  maxTokens: number;
  /** LoRA adapter name; must be one of the engine's loraModules. */
  lora?: string;
  /** vLLM's cache_salt: blocks of requests with different salts never match. */
  cacheSalt?: string;
  onToken?: (tok: GeneratedToken) => void;
  onFinish?: (res: RequestResult) => void;
}

type Status = 'waiting' | 'running' | 'finished';

class SimRequest {
  readonly id: string;
  readonly tokens: Uint32Array;
  readonly numPromptTokens: number;
  readonly maxTokens: number;
  readonly lora: string | undefined;
  readonly loraRef: { id: number; name: string } | null;
  readonly onToken: ((tok: GeneratedToken) => void) | undefined;
  readonly onFinish: ((res: RequestResult) => void) | undefined;
  numTokens: number;
  numComputed = 0;
  blocks: number[] = [];
  /** Blocks [0, cachedUpTo) are already registered in the prefix cache. */
  cachedUpTo = 0;
  readonly chain: HashChain;
  cachedTokens = -1;
  status: Status = 'waiting';
  arrival: number;
  firstScheduled: number | undefined;
  firstToken: number | undefined;
  lastToken: number | undefined;

  constructor(id: string, o: SubmitOptions, loraId: number | null, seed: number, arrival: number) {
    this.id = id;
    this.numPromptTokens = o.promptTokens.length;
    this.maxTokens = o.maxTokens;
    this.tokens = new Uint32Array(this.numPromptTokens + o.maxTokens);
    for (let i = 0; i < this.numPromptTokens; i++) this.tokens[i] = o.promptTokens[i];
    this.numTokens = this.numPromptTokens;
    this.lora = o.lora;
    this.loraRef = loraId === null || o.lora === undefined ? null : { id: loraId, name: o.lora };
    this.chain = { hi: [], lo: [], seed };
    this.onToken = o.onToken;
    this.onFinish = o.onFinish;
    this.arrival = arrival;
  }

  get numOutputTokens(): number {
    return this.numTokens - this.numPromptTokens;
  }
}

export class RequestRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestRejectedError';
  }
}

interface Scheduled {
  req: SimRequest;
  n: number;
}

let idCounter = 0;

/** One request's share of a step: `n` new tokens on top of `context` computed ones. */
export interface StepItem {
  n: number;
  context: number;
  /** Prefill chunk (pays attention compute) rather than a decode. */
  prefill: boolean;
}

/**
 * Step duration in simulated milliseconds: overhead + max(memory, compute), where memory =
 * weight read + KV read of all live context and compute = per-token dense compute +
 * attention of prefill chunks (shared/reference/vllm.md §6.3).
 */
export function stepDurationMs(t: Readonly<TimingOptions>, items: readonly StepItem[]): number {
  let tokens = 0;
  let kvTokens = 0;
  let pairs = 0;
  for (const s of items) {
    tokens += s.n;
    kvTokens += s.context + s.n;
    if (s.prefill) pairs += s.n * (s.context + s.n / 2);
  }
  const memory = t.weightReadMs + t.kvReadMsPerToken * kvTokens;
  const compute = t.computeMsPerToken * tokens + t.attentionMsPerTokenPair * pairs;
  return t.stepOverheadMs + Math.max(memory, compute);
}

export class Engine implements MetricsSource {
  readonly modelName: string;
  readonly engineIndex: string;
  readonly blockSize: number;
  readonly numGpuBlocks: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly maxModelLen: number;
  readonly timeScale: number;
  readonly enablePrefixCaching: boolean;
  readonly timing: Readonly<TimingOptions>;
  readonly loraIds: ReadonlyMap<string, number>;
  readonly maxLoras: number;
  readonly kv: KvCache;
  readonly metrics: EngineMetrics;

  private waiting: SimRequest[] = [];
  private running: SimRequest[] = [];
  private readonly byId = new Map<string, SimRequest>();
  private origin = performance.now();
  /** Virtual seconds at the end of the last step. */
  private clock = 0;
  /** Virtual end of the step in flight (= clock between steps). */
  private stepEnd = 0;
  private busy = false;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private timerIsImmediate = false;
  private inflight: Scheduled[] = [];
  private stepCount = 0;
  /** Virtual seconds of the steps finished so far (the GPU's busy time). */
  private busyTotal = 0;
  private readonly onKvEvents: ((batch: KvEvent[]) => void) | undefined;
  /** KV events of the step being scheduled or run (vLLM's kv_event_queue). */
  private kvEvents: KvEvent[] = [];

  constructor(opts: EngineOptions) {
    this.modelName = opts.model;
    this.engineIndex = opts.engineIndex ?? '0';
    this.blockSize = opts.blockSize ?? 16;
    this.numGpuBlocks = opts.numGpuBlocks ?? 27000;
    this.maxNumSeqs = opts.maxNumSeqs ?? 1024;
    this.maxNumBatchedTokens = opts.maxNumBatchedTokens ?? 8192;
    this.maxModelLen = opts.maxModelLen ?? 131072;
    this.timeScale = opts.timeScale ?? 1;
    this.enablePrefixCaching = opts.enablePrefixCaching ?? true;
    this.timing = Object.freeze({ ...DEFAULT_TIMING, ...opts.timing });
    for (const [k, v] of Object.entries(this.timing)) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`timing.${k} must be a finite number >= 0`);
    }
    if (!(this.timeScale >= 0) || !Number.isFinite(this.timeScale)) throw new Error('timeScale must be a finite number >= 0');
    if (!Number.isInteger(this.maxNumSeqs) || this.maxNumSeqs < 1) throw new Error('maxNumSeqs must be a positive integer');
    if (!Number.isInteger(this.maxNumBatchedTokens) || this.maxNumBatchedTokens < 1) throw new Error('maxNumBatchedTokens must be a positive integer');
    const ids = new Map<string, number>();
    (opts.loraModules ?? []).forEach((name, i) => ids.set(name, i + 1));
    this.loraIds = ids;
    this.maxLoras = opts.maxLoras ?? 1;
    this.onKvEvents = opts.onKvEvents;
    this.kv = new KvCache({
      numGpuBlocks: this.numGpuBlocks,
      blockSize: this.blockSize,
      enablePrefixCaching: this.enablePrefixCaching,
      onEvent: opts.onKvEvents === undefined ? undefined : (ev) => this.queueKvEvent(ev),
    });
    this.metrics = new EngineMetrics(this.maxModelLen);
  }

  // --- state read by /metrics and tests ---

  get numRunning(): number {
    return this.running.length;
  }

  get numWaiting(): number {
    return this.waiting.length;
  }

  get kvCacheUsage(): number {
    return this.kv.usage();
  }

  get lora(): { maxLoras: number; running: string[]; waiting: string[] } | undefined {
    if (this.loraIds.size === 0) return undefined;
    const set = (list: SimRequest[]) => [...new Set(list.flatMap((r) => (r.lora === undefined ? [] : [r.lora])))];
    return { maxLoras: this.maxLoras, running: set(this.running), waiting: set(this.waiting) };
  }

  /** Steps executed so far. */
  get steps(): number {
    return this.stepCount;
  }

  /** Whether the engine has no request. */
  get idle(): boolean {
    return this.running.length === 0 && this.waiting.length === 0;
  }

  /** Largest prompt + output a request may have (model length and total KV capacity). */
  get maxRequestTokens(): number {
    return Math.min(this.maxModelLen, (this.numGpuBlocks - 1) * this.blockSize);
  }

  renderMetrics(): string {
    return renderMetrics(this);
  }

  /** Virtual seconds the engine has spent computing steps, including the part of the step in flight. */
  busySeconds(): number {
    return this.busyTotal + (this.busy ? Math.max(0, this.now() - this.clock) : 0);
  }

  /** Current virtual time in seconds. */
  now(): number {
    if (this.busy) return Math.min(this.wallVirtualNow(), this.stepEnd);
    return Math.max(this.clock, this.wallVirtualNow());
  }

  private wallVirtualNow(): number {
    if (this.timeScale === 0) return this.clock;
    return (performance.now() - this.origin) / 1000 / this.timeScale;
  }

  // --- requests ---

  /** Chain seed of a request: its LoRA adapter and cache salt (throws for an unknown adapter). */
  private seedOf(lora: string | undefined, cacheSalt: string | undefined): { loraId: number | null; seed: number } {
    let loraId: number | null = null;
    if (lora !== undefined) {
      const id = this.loraIds.get(lora);
      if (id === undefined) throw new RequestRejectedError(`unknown LoRA adapter ${lora}`);
      loraId = id;
    }
    return { loraId, seed: (Math.imul(loraId ?? 0, 0x9e3779b1) ^ (cacheSalt === undefined ? 0 : textSeed(cacheSalt))) >>> 0 };
  }

  /**
   * How many leading tokens of this prompt the prefix cache holds right now (full blocks
   * only, as the scheduler would find them, without its keep-the-last-token cap). A pure
   * lookup: nothing is allocated, touched or reordered.
   */
  cachedPrefixTokens(promptTokens: ArrayLike<number>, lora?: string, cacheSalt?: string): number {
    const { seed } = this.seedOf(lora, cacheSalt);
    if (!this.enablePrefixCaching) return 0;
    const chain: HashChain = { hi: [], lo: [], seed };
    extendHashChain(chain, promptTokens, promptTokens.length, this.blockSize);
    return this.kv.lookup(chain, chain.hi.length).length * this.blockSize;
  }

  /** Throws RequestRejectedError when a request of this size can never run. */
  checkFits(n: number, maxTokens: number): void {
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RequestRejectedError('max_tokens must be at least 1');
    if (n < 1) throw new RequestRejectedError('the prompt must contain at least one token');
    if (n + maxTokens > this.maxRequestTokens) {
      throw new RequestRejectedError(
        `This model's maximum context length is ${this.maxRequestTokens} tokens. However, you requested ${n + maxTokens} tokens (${n} in the messages, ${maxTokens} in the completion).`,
      );
    }
  }

  /** Queue a request. Throws RequestRejectedError when it can never fit. */
  submit(o: SubmitOptions): { id: string } {
    this.checkFits(o.promptTokens.length, o.maxTokens);
    const { loraId, seed } = this.seedOf(o.lora, o.cacheSalt);
    let id = o.id ?? `sim-${++idCounter}`;
    if (this.byId.has(id)) id = `${id}-${++idCounter}`;
    const req = new SimRequest(id, o, loraId, seed, this.now());
    this.byId.set(id, req);
    this.waiting.push(req);
    this.kick();
    return { id };
  }

  /** Abort a request (client went away); finished_reason "abort". */
  abort(id: string): boolean {
    const req = this.byId.get(id);
    if (req === undefined || req.status === 'finished') return false;
    this.finish(req, 'abort', this.now());
    return true;
  }

  /**
   * Between benchmark runs: abort every request, clear the prefix cache (AllBlocksCleared)
   * and zero all counters and histograms.
   */
  reset(): void {
    this.stopAll();
    this.kv.reset();
    this.metrics.reset();
    this.flushKvEvents();
  }

  /**
   * A pod restart: every request aborted, counters zeroed and the prefix cache emptied
   * WITHOUT an AllBlocksCleared event (a new process simply starts empty); events of the
   * interrupted step are lost with it.
   */
  restart(): void {
    this.stopAll();
    this.kv.reset(false);
    this.metrics.reset();
    this.kvEvents = [];
  }

  /**
   * vLLM's reset_prefix_cache: drops every cached block (AllBlocksCleared). Refused (false)
   * while requests hold blocks, unless `preemptRunning`, which first preempts them back to
   * the waiting queue (vLLM's reset_running_requests).
   */
  resetPrefixCache(preemptRunning = false): boolean {
    if (preemptRunning) while (this.running.length > 0) this.preempt(this.running.pop()!);
    const ok = this.kv.reset();
    this.flushKvEvents();
    if (this.waiting.length > 0) this.kick();
    return ok;
  }

  private stopAll(): void {
    this.cancelTimer();
    const now = this.now();
    for (const r of [...this.running, ...this.waiting]) this.finish(r, 'abort', now);
    this.inflight = [];
    this.busy = false;
    this.clock = Math.max(this.clock, this.stepEnd);
    this.stepEnd = this.clock;
  }

  private queueKvEvent(ev: KvEvent): void {
    if (ev.type !== 'BlockRemoved' || ev.blockHashes.length === 1) this.kvEvents.push(ev);
    // The cache reports an allocation's evictions together; vLLM queues one event per block.
    else for (const h of ev.blockHashes) this.kvEvents.push({ type: 'BlockRemoved', blockHashes: [h], medium: ev.medium });
  }

  /** Hand the queued KV events to the sink as one batch (end of a step, or a reset). */
  private flushKvEvents(): void {
    if (this.kvEvents.length === 0 || this.onKvEvents === undefined) return;
    const batch = this.kvEvents;
    this.kvEvents = [];
    this.onKvEvents(batch);
  }

  /** Stop the step loop (requests are aborted). */
  close(): void {
    this.cancelTimer();
    const now = this.now();
    for (const r of [...this.running, ...this.waiting]) this.finish(r, 'abort', now);
    this.busy = false;
  }

  private cancelTimer(): void {
    if (this.timer === undefined) return;
    if (this.timerIsImmediate) clearImmediate(this.timer as NodeJS.Immediate);
    else clearTimeout(this.timer as NodeJS.Timeout);
    this.timer = undefined;
  }

  // --- step loop ---

  private kick(): void {
    if (this.busy || this.timer !== undefined) return;
    // setImmediate lets requests arriving in the same tick join the first step.
    this.timerIsImmediate = true;
    this.timer = setImmediate(() => {
      this.timer = undefined;
      this.startStep();
    });
  }

  private startStep(): void {
    if (!this.busy) {
      // Start at the earliest arrival, not at the (later) wall time of this callback: with
      // a small timeScale the callback's wall latency would otherwise count 1/timeScale-fold.
      let start = Infinity;
      for (const r of this.waiting) if (r.arrival < start) start = r.arrival;
      if (start === Infinity) start = this.wallVirtualNow();
      this.clock = Math.max(this.clock, start);
      this.stepEnd = this.clock;
    }
    const scheduled = this.schedule();
    if (scheduled.length === 0) {
      this.busy = false;
      return;
    }
    this.busy = true;
    const dur = this.stepDuration(scheduled) / 1000;
    this.stepEnd = this.clock + dur;
    this.inflight = scheduled;
    const delayMs = this.timeScale === 0 ? 0 : this.origin + this.stepEnd * this.timeScale * 1000 - performance.now();
    const done = () => {
      this.timer = undefined;
      this.endStep();
    };
    if (delayMs >= 1) {
      this.timerIsImmediate = false;
      this.timer = setTimeout(done, delayMs);
    } else {
      this.timerIsImmediate = true;
      this.timer = setImmediate(done);
    }
  }

  private endStep(): void {
    this.busyTotal += this.stepEnd - this.clock;
    this.clock = this.stepEnd;
    this.stepCount++;
    const scheduled = this.inflight;
    this.inflight = [];
    this.applyStep(scheduled, this.clock);
    this.flushKvEvents();
    if (this.idle) {
      this.busy = false;
      return;
    }
    this.startStep();
  }

  /** Duration of a step in simulated milliseconds (vllm.md §6.3). */
  stepDuration(scheduled: readonly Scheduled[]): number {
    return stepDurationMs(
      this.timing,
      scheduled.map(({ req, n }) => ({ n, context: req.numComputed, prefill: n > 1 || req.numComputed < req.numPromptTokens - 1 })),
    );
  }

  private schedule(): Scheduled[] {
    const bs = this.blockSize;
    const kv = this.kv;
    const out: Scheduled[] = [];
    let budget = this.maxNumBatchedTokens;
    let preempted = false;

    // 1. Running requests: decodes and continuing prefill chunks.
    for (let i = 0; i < this.running.length && budget > 0; ) {
      const req = this.running[i];
      const n = Math.min(req.numTokens - req.numComputed, budget);
      if (n <= 0) {
        i++;
        continue;
      }
      let ok = true;
      for (;;) {
        const need = Math.ceil((req.numComputed + n) / bs) - req.blocks.length;
        if (need <= 0) break;
        const got = kv.allocate(need);
        if (got !== null) {
          for (const b of got) req.blocks.push(b);
          break;
        }
        const victim = this.running.pop()!;
        this.preempt(victim);
        preempted = true;
        if (victim === req) {
          ok = false;
          break;
        }
      }
      if (!ok) break;
      this.cacheFullBlocks(req, req.numComputed + n);
      out.push({ req, n });
      budget -= n;
      i++;
    }

    // 2. Waiting requests (only when nothing was preempted in this step).
    if (!preempted) {
      const loras = new Set<string>();
      for (const r of this.running) if (r.lora !== undefined) loras.add(r.lora);
      for (let j = 0; j < this.waiting.length && budget > 0 && this.running.length < this.maxNumSeqs; ) {
        const req = this.waiting[j];
        if (req.lora !== undefined && !loras.has(req.lora) && loras.size >= this.maxLoras) {
          j++;
          continue;
        }
        let hits: number[] = [];
        if (this.enablePrefixCaching) {
          extendHashChain(req.chain, req.tokens, req.numTokens, bs);
          // All tokens cached: the last one is recomputed to get logits (vLLM).
          hits = kv.lookup(req.chain, Math.floor((req.numTokens - 1) / bs));
        }
        const cached = hits.length * bs;
        const n = Math.min(req.numTokens - cached, budget);
        const need = Math.ceil((cached + n) / bs) - hits.length;
        if (need + kv.countFree(hits) > kv.numFreeBlocks) break;
        kv.touch(hits);
        const got = need > 0 ? kv.allocate(need) : [];
        if (got === null) throw new Error('allocation failed after capacity check');
        req.blocks = hits.concat(got);
        req.cachedUpTo = hits.length;
        req.numComputed = cached;
        this.cacheFullBlocks(req, cached + n);
        this.metrics.prefixCacheQueries += req.numTokens;
        this.metrics.prefixCacheHits += cached;
        if (req.cachedTokens < 0) req.cachedTokens = cached;
        if (req.firstScheduled === undefined) req.firstScheduled = this.clock;
        this.waiting.splice(j, 1);
        req.status = 'running';
        this.running.push(req);
        if (req.lora !== undefined) loras.add(req.lora);
        out.push({ req, n });
        budget -= n;
      }
    }
    return out;
  }

  /** Enter the request's blocks that are full once `upTo` tokens are computed in the prefix cache. */
  private cacheFullBlocks(req: SimRequest, upTo: number): void {
    if (!this.enablePrefixCaching) return;
    const full = Math.floor(upTo / this.blockSize);
    if (full <= req.cachedUpTo) return;
    extendHashChain(req.chain, req.tokens, upTo, this.blockSize);
    this.kv.cacheBlocks(req.blocks, req.chain, req.tokens, req.cachedUpTo, full, req.loraRef);
    req.cachedUpTo = full;
  }

  private preempt(req: SimRequest): void {
    this.kv.release(req.blocks.slice().reverse());
    req.blocks = [];
    req.numComputed = 0;
    req.cachedUpTo = 0;
    req.status = 'waiting';
    this.waiting.unshift(req);
    this.metrics.preemptions++;
  }

  private applyStep(scheduled: Scheduled[], now: number): void {
    let total = 0;
    for (const { req, n } of scheduled) {
      total += n;
      if (req.status !== 'running') continue; // aborted or preempted meanwhile
      req.numComputed += n;
      if (req.numComputed < req.numTokens) continue; // prefill chunk, no token yet
      const index = req.numOutputTokens;
      const tok = fillerToken(index);
      req.tokens[req.numTokens++] = tok.id;
      const m = this.metrics;
      m.generationTokens++;
      if (req.firstToken === undefined) {
        req.firstToken = now;
        m.promptTokens += req.numPromptTokens;
        m.ttft.observe(now - req.arrival);
      } else {
        m.itl.observe(now - (req.lastToken ?? now));
      }
      req.lastToken = now;
      req.onToken?.({ index, id: tok.id, text: tok.text });
      if (req.status === 'running' && req.numOutputTokens >= req.maxTokens) this.finish(req, 'length', now);
    }
    if (total > 0) this.metrics.iterationTokens.observe(total);
  }

  private finish(req: SimRequest, reason: FinishReason, now: number): void {
    if (req.status === 'finished') return;
    if (req.status === 'running') {
      const i = this.running.indexOf(req);
      if (i >= 0) this.running.splice(i, 1);
    } else {
      const i = this.waiting.indexOf(req);
      if (i >= 0) this.waiting.splice(i, 1);
    }
    if (req.blocks.length > 0) this.kv.release(req.blocks.slice().reverse());
    req.blocks = [];
    req.status = 'finished';
    this.byId.delete(req.id);
    const m = this.metrics;
    m.success[reason]++;
    const gen = req.numOutputTokens;
    m.e2e.observe(now - req.arrival);
    m.requestPromptTokens.observe(req.numPromptTokens);
    m.requestGenerationTokens.observe(gen);
    m.requestMaxNumGenerationTokens.observe(req.maxTokens);
    m.requestParamsMaxTokens.observe(req.maxTokens);
    m.requestParamsN.observe(1);
    if (req.firstScheduled !== undefined) {
      m.queue.observe(req.firstScheduled - req.arrival);
      m.inference.observe(now - req.firstScheduled);
      if (req.firstToken !== undefined) {
        m.prefill.observe(req.firstToken - req.firstScheduled);
        m.decode.observe(now - req.firstToken);
        if (gen > 1) m.requestTpot.observe((now - req.firstToken) / (gen - 1));
      }
    }
    req.onFinish?.({
      id: req.id,
      promptTokens: req.numPromptTokens,
      completionTokens: gen,
      cachedTokens: Math.max(0, req.cachedTokens),
      finishReason: reason,
      arrivalTime: req.arrival,
      firstScheduledTime: req.firstScheduled,
      firstTokenTime: req.firstToken,
      finishTime: now,
    });
  }
}
