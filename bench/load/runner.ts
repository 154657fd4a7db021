// The load driver: sends a workload's requests to an OpenAI-compatible base
// URL in stages (a QPS or concurrency sweep), open loop (constant or Poisson
// arrivals, seeded) or closed loop (fixed concurrency), and records per
// request what inference-perf and `vllm bench serve` record: TTFT, the gaps
// between streamed chunks, end-to-end latency, token counts from the usage
// chunk, status, the serving pod, and the client's own schedule delay (actual
// send time minus intended), so a saturated client is visible.
import { Agent, request } from 'undici';
import { DROPPED_REASON_HEADER } from '../../src/errors.ts';
import type { HealthFigures } from './health.ts';
import type { WorkItem, Workload } from './workloads.ts';
import { rng } from './workloads.ts';

/** One stage of a run. Give `rate` (open loop, req/s) or `concurrency` (closed loop). */
export interface StageSpec {
  /** Label in reports; default "qps=R" or "c=N". */
  name?: string;
  /** Open loop: offered requests per second. Ignored for timed (trace) workloads. */
  rate?: number;
  /** Closed loop: number of requests kept in flight. Used when > 0 (takes precedence over rate). */
  concurrency?: number;
  /** Measured duration in ms (arrivals after warm-up). Trace workloads: default until the trace ends. */
  durationMs?: number;
  /** Warm-up before the measured window, ms; its requests are recorded but flagged `warmup` and excluded from reports. Default 0. */
  warmupMs?: number;
  /** Stop the stage after this many requests have been sent (warm-up included). */
  maxRequests?: number;
}

/** Per-stage Prometheus counters the caller scrapes: pod → counter values. */
export type PodCacheCounters = Record<string, { hits: number; queries: number }>;

export interface RunOptions {
  /** Base URL, e.g. http://127.0.0.1:8081 (path /v1/chat/completions is appended). */
  url: string;
  workload: Workload;
  stages: StageSpec[];
  /** Label of this run in reports (e.g. "llm-epp", "round-robin"). Default "default". */
  strategy?: string;
  /** Open-loop inter-arrival law. Default "poisson". */
  arrival?: 'poisson' | 'constant';
  /** Seed of the arrival process (stage i uses seed + i). Default 1. */
  seed?: number;
  /** Request path. Default "/v1/chat/completions". */
  path?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Per-request timeout, ms (headers and between body chunks). Default 300000. */
  timeoutMs?: number;
  /** Open loop: cap on requests in flight; a new arrival waits (and its schedule delay grows). Default unlimited. */
  maxInFlight?: number;
  /** Progress bar on stderr; default: only when stderr is a TTY. */
  progress?: boolean;
  /** Called before and after each stage (after its requests drained); the deltas give the prefix-cache hit rate. */
  cacheCounters?: () => Promise<PodCacheCounters>;
  /** Called after each request. */
  onRecord?: (r: RequestRecord) => void;
  /** Stop early: arrivals stop, requests in flight are cancelled and recorded as `aborted`, the stage is kept as `aborted`. */
  signal?: AbortSignal;
  /** Measures the machine and the processes around each stage (probes.ts HealthMonitor); the figures go to StageResult.health. */
  health?: { begin(): Promise<void>; end(): Promise<HealthFigures> };
  /** Index of the first stage (a caller that runs one stage at a time, interleaving strategies). Default 0. */
  firstStageIndex?: number;
  /** Time origin (performance.now()) of the record times; default the start of this call. */
  t0?: number;
}

export interface RequestRecord {
  id: string;
  stage: number;
  /** Sent during the stage's warm-up: excluded from reports. */
  warmup: boolean;
  group?: number;
  session?: number;
  turn?: number;
  /** Multi-tenant workloads: the tenant that sent it. */
  tenant?: string;
  /** Intended and actual send times, ms since the run started. */
  intendedMs: number;
  startMs: number;
  /** startMs − intendedMs: how late the client was (never negative: a request is not sent before its time). */
  scheduleDelayMs: number;
  /** Open loop: the arrival had to wait for the workload (multi-turn: every conversation busy); its delay is not client saturation. */
  blocked?: boolean;
  ok: boolean;
  status: number;
  error?: string;
  /** Cancelled by the caller (Ctrl-C): neither a success nor a failure of the target. */
  aborted?: boolean;
  /** Time to the first streamed content chunk, ms. */
  ttftMs?: number;
  /** Gaps between successive content chunks, ms. */
  itlMs: number[];
  /** Send to end of stream, ms. */
  e2eMs: number;
  /** From the usage chunk; else the number of content chunks. */
  outputTokens: number;
  promptTokens?: number;
  /** usage.prompt_tokens_details.cached_tokens, when the server gives it. */
  cachedTokens?: number;
  /** From response header x-sim-pod or x-llm-epp-endpoint. */
  pod?: string;
  /** A request not served: the x-llm-d-request-dropped-reason header of the answer (bounded: boundedReason). */
  droppedReason?: string;
}

export interface StageResult {
  index: number;
  name: string;
  spec: StageSpec;
  /** Open loop offered rate (req/s) or undefined. */
  rate?: number;
  concurrency?: number;
  arrival: 'poisson' | 'constant' | 'closed' | 'trace';
  /** ms since run start. */
  startMs: number;
  measuredStartMs: number;
  /** Last arrival time (end of the arrival window). */
  arrivalsEndMs: number;
  /** All requests drained. */
  endMs: number;
  records: RequestRecord[];
  cacheBefore?: PodCacheCounters;
  cacheAfter?: PodCacheCounters;
  /** Cut short by the caller's signal. */
  aborted?: boolean;
  /** What RunOptions.health measured. */
  health?: HealthFigures;
}

export interface RunResult {
  strategy: string;
  url: string;
  workload: string;
  startedAt: string;
  stages: StageResult[];
}

const POD_HEADERS = ['x-sim-pod', 'x-llm-epp-endpoint'];
/** Why llm-d Router (and llm-epp) did not serve a request: rejected-saturated, rejected-ttl-expired, … */
const REASON = /^[a-z0-9][a-z0-9-]{0,47}$/;

/** A server's dropped-reason value as a report may keep it: a short lower-case token, anything else "other". */
function boundedReason(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  return REASON.test(s) ? s : 'other';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Sleep until performance.now() ≥ t (a timer may fire up to a millisecond early). */
async function sleepUntil(t: number): Promise<void> {
  for (let left = t - performance.now(); left > 0; left = t - performance.now()) await sleep(Math.ceil(left));
}

export function stageName(s: StageSpec): string {
  if (s.name) return s.name;
  if (s.concurrency && s.concurrency > 0) return `c=${s.concurrency}`;
  if (s.rate !== undefined) return `qps=${s.rate}`;
  return 'trace';
}

interface Ctx {
  o: RunOptions;
  url: string;
  headers: Record<string, string>;
  dispatcher: Agent;
  t0: number;
  inflight: number;
  sent: number;
  done: number;
  errors: number;
  waiters: Array<() => void>;
}

function notify(ctx: Ctx): void {
  const w = ctx.waiters;
  ctx.waiters = [];
  for (const f of w) f();
}

function nextEvent(ctx: Ctx, maxMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, Math.max(0, maxMs));
    ctx.waiters.push(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Parse one SSE stream, filling the record. */
async function consume(body: AsyncIterable<Buffer>, rec: RequestRecord, t0: number, wantText: boolean): Promise<string> {
  const dec = new TextDecoder();
  let buf = '';
  let last = 0;
  let chunks = 0;
  let doneSeen = false;
  let text = '';
  let usageOut: number | undefined;
  const onData = (data: string) => {
    if (data === '[DONE]') {
      doneSeen = true;
      return;
    }
    let j: {
      choices?: Array<{ delta?: { content?: string | null }; text?: string }>;
      usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null } | null;
      error?: unknown;
    };
    try {
      j = JSON.parse(data);
    } catch {
      return;
    }
    if (j.error) {
      rec.error ??= 'stream error: ' + JSON.stringify(j.error).slice(0, 120);
      return;
    }
    const c = j.choices?.[0];
    const piece = c ? (c.delta?.content ?? c.text) : undefined;
    if (typeof piece === 'string' && piece.length > 0) {
      const now = performance.now();
      if (chunks === 0) rec.ttftMs = now - t0;
      else rec.itlMs.push(now - last);
      last = now;
      chunks++;
      if (wantText) text += piece;
    }
    if (j.usage) {
      if (typeof j.usage.completion_tokens === 'number') usageOut = j.usage.completion_tokens;
      if (typeof j.usage.prompt_tokens === 'number') rec.promptTokens = j.usage.prompt_tokens;
      const cached = j.usage.prompt_tokens_details?.cached_tokens;
      if (typeof cached === 'number') rec.cachedTokens = cached;
    }
  };
  for await (const b of body) {
    buf += dec.decode(b, { stream: true });
    let from = 0;
    let nl: number;
    while ((nl = buf.indexOf('\n', from)) >= 0) {
      // "data:" lines only; trim() also drops a trailing \r.
      if (buf.startsWith('data:', from)) onData(buf.slice(from + 5, nl).trim());
      from = nl + 1;
    }
    if (from > 0) buf = buf.slice(from);
  }
  buf += dec.decode();
  if (buf.startsWith('data:')) onData(buf.slice(5).trim());
  rec.outputTokens = usageOut ?? chunks;
  if (!doneSeen && !rec.error) rec.error = 'stream ended without [DONE]';
  return text;
}

async function send(ctx: Ctx, item: WorkItem, stage: number, warmup: boolean, intended: number, blocked: boolean): Promise<RequestRecord> {
  const start = performance.now();
  const rec: RequestRecord = {
    id: item.id,
    stage,
    warmup,
    intendedMs: intended - ctx.t0,
    startMs: start - ctx.t0,
    scheduleDelayMs: Math.max(0, start - intended),
    ok: false,
    status: 0,
    itlMs: [],
    e2eMs: 0,
    outputTokens: 0,
  };
  if (blocked) rec.blocked = true;
  if (item.group !== undefined) rec.group = item.group;
  if (item.session !== undefined) rec.session = item.session;
  if (item.turn !== undefined) rec.turn = item.turn;
  if (item.tenant !== undefined) rec.tenant = item.tenant;
  ctx.inflight++;
  ctx.sent++;
  let text = '';
  try {
    const res = await request(ctx.url, {
      method: 'POST',
      dispatcher: ctx.dispatcher,
      headers: item.headers ? { ...ctx.headers, ...item.headers } : ctx.headers,
      body: JSON.stringify(item.body),
      signal: ctx.o.signal,
    });
    rec.status = res.statusCode;
    for (const h of POD_HEADERS) {
      const v = res.headers[h];
      if (v !== undefined) {
        rec.pod = Array.isArray(v) ? v[0] : v;
        break;
      }
    }
    if (res.statusCode !== 200) {
      const reason = boundedReason(res.headers[DROPPED_REASON_HEADER]);
      if (reason !== undefined) rec.droppedReason = reason;
      const detail = (await res.body.text()).slice(0, 160).replace(/\s+/g, ' ');
      rec.error = `HTTP ${res.statusCode}${detail ? ': ' + detail : ''}`;
    } else {
      text = await consume(res.body, rec, start, ctx.o.workload.kind === 'multi-turn');
      if (!rec.error) rec.ok = true;
    }
  } catch (e) {
    // undici's codes are strings (ECONNREFUSED, UND_ERR_…); an AbortError (DOMException) has a numeric code.
    const err = e as { code?: unknown; name?: unknown };
    rec.error = typeof err.code === 'string' ? err.code : typeof err.name === 'string' ? err.name : String(e);
  }
  if (!rec.ok && ctx.o.signal?.aborted) {
    rec.aborted = true;
    rec.error = 'aborted';
  }
  rec.e2eMs = performance.now() - start;
  ctx.inflight--;
  ctx.done++;
  if (!rec.ok && !rec.aborted) ctx.errors++;
  ctx.o.workload.complete(item, { ok: rec.ok, text }, performance.now());
  ctx.o.onRecord?.(rec);
  notify(ctx);
  return rec;
}

class Progress {
  #timer: NodeJS.Timeout | undefined;
  #line = '';
  readonly enabled: boolean;
  readonly render: () => string;
  constructor(enabled: boolean, render: () => string) {
    this.enabled = enabled;
    this.render = render;
  }
  start(): void {
    if (!this.enabled || this.#timer) return;
    this.#timer = setInterval(() => this.draw(), 200);
    this.#timer.unref();
  }
  draw(): void {
    if (!this.enabled) return;
    const l = this.render();
    if (l === this.#line) return;
    this.#line = l;
    process.stderr.write('\r\x1b[2K' + l);
  }
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.enabled) {
      this.draw();
      process.stderr.write('\n');
      this.#line = '';
    }
  }
}

function bar(frac: number, width = 24): string {
  const f = Math.max(0, Math.min(1, frac));
  const n = Math.round(f * width);
  return '█'.repeat(n) + '░'.repeat(width - n);
}

/**
 * The progress line. Past the stage's arrival window (or once arrivals stopped) it says
 * "draining N in flight" instead of counting time beyond the duration.
 */
export function progressLine(
  strategy: string,
  cur: { index: number; name: string; total: number; draining: boolean },
  stages: number,
  elapsedS: number,
  c: { sent: number; done: number; inflight: number; errors: number },
): string {
  const tot = cur.total / 1000;
  const fin = Number.isFinite(tot) && tot > 0;
  const draining = cur.draining || (fin && elapsedS >= tot);
  let clock: string;
  if (draining) clock = `${fin ? bar(1) + ' ' : ''}draining ${c.inflight} in flight`;
  else if (fin) clock = `${bar(elapsedS / tot)} ${elapsedS.toFixed(1)}/${tot.toFixed(0)}s`;
  else clock = `${elapsedS.toFixed(1)}s`;
  return `[${strategy}] stage ${cur.index + 1}/${stages} ${cur.name} ${clock} · sent ${c.sent} done ${c.done} errors ${c.errors}`;
}

/** Run every stage in order and return all request records. */
export async function runStages(o: RunOptions): Promise<RunResult> {
  const base = o.url.replace(/\/+$/, '');
  const timeout = o.timeoutMs ?? 300_000;
  const ctx: Ctx = {
    o,
    url: base + (o.path ?? '/v1/chat/completions'),
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...o.headers },
    dispatcher: new Agent({ headersTimeout: timeout, bodyTimeout: timeout, connect: { timeout: 10_000 }, keepAliveTimeout: 30_000 }),
    t0: o.t0 ?? performance.now(),
    inflight: 0,
    sent: 0,
    done: 0,
    errors: 0,
    waiters: [],
  };
  const result: RunResult = {
    strategy: o.strategy ?? 'default',
    url: o.url,
    workload: o.workload.kind,
    startedAt: new Date().toISOString(),
    stages: [],
  };
  const first = o.firstStageIndex ?? 0;
  const stageCount = first + o.stages.length;
  let cur: { index: number; name: string; start: number; total: number; draining: boolean } = { index: first, name: '', start: ctx.t0, total: 0, draining: false };
  const progress = new Progress(o.progress ?? Boolean(process.stderr.isTTY), () => progressLine(result.strategy, cur, stageCount, (performance.now() - cur.start) / 1000, ctx));
  progress.start();
  try {
    for (let i = first; i < stageCount; i++) {
      if (o.signal?.aborted) break;
      const spec = o.stages[i - first];
      const name = stageName(spec);
      const warm = spec.warmupMs ?? 0;
      const timed = o.workload.timed;
      const closed = !!spec.concurrency && spec.concurrency > 0 && !timed;
      if (!closed && !timed && !(spec.rate && spec.rate > 0)) throw new Error(`stage ${name}: needs rate > 0 or concurrency > 0`);
      const dur = spec.durationMs ?? (timed ? Infinity : NaN);
      if (!(dur > 0)) throw new Error(`stage ${name}: needs durationMs`);
      const cacheBefore = o.cacheCounters ? await o.cacheCounters() : undefined;
      await o.health?.begin();
      const start = performance.now();
      cur = { index: i, name, start, total: warm + dur, draining: false };
      const end = start + warm + dur;
      const warmEnd = start + warm;
      const maxReq = spec.maxRequests ?? Infinity;
      const records: RequestRecord[] = [];
      const pending: Array<Promise<void>> = [];
      let count = 0;
      let lastArrival = start;
      const fire = (item: WorkItem, intended: number, blocked: boolean) => {
        count++;
        lastArrival = Math.max(lastArrival, intended);
        return send(ctx, item, i, intended < warmEnd, intended, blocked).then((r) => {
          records.push(r);
        });
      };
      /** Wait until the workload yields an item or time runs out. */
      const getItem = async (deadline: number): Promise<{ item?: WorkItem; blocked: boolean }> => {
        let blocked = false;
        for (;;) {
          const item = o.workload.next(performance.now());
          if (item) return { item, blocked };
          if (o.workload.exhausted() || o.signal?.aborted) return { blocked };
          const now = performance.now();
          if (now >= deadline) return { blocked };
          blocked = true;
          const ra = o.workload.readyAt?.();
          const wait = Math.min(deadline - now, ra !== undefined && ra > now ? ra - now : 1000);
          await nextEvent(ctx, wait);
        }
      };
      let arrival: StageResult['arrival'];
      if (closed) {
        arrival = 'closed';
        const worker = async () => {
          while (performance.now() < end && count < maxReq && !o.signal?.aborted) {
            const { item } = await getItem(end);
            if (!item) break;
            const intended = performance.now();
            await fire(item, intended, false);
          }
        };
        await Promise.all(Array.from({ length: spec.concurrency ?? 1 }, worker));
      } else if (timed) {
        arrival = 'trace';
        let baseAt: number | undefined;
        while (count < maxReq && !o.signal?.aborted) {
          const item = o.workload.next();
          if (!item) break;
          baseAt ??= item.at ?? 0;
          const intended = start + ((item.at ?? 0) - baseAt) * 1000;
          if (intended >= end) break;
          await sleepUntil(intended);
          while (o.maxInFlight !== undefined && ctx.inflight >= o.maxInFlight) await nextEvent(ctx, 1000);
          pending.push(fire(item, intended, false));
        }
      } else {
        arrival = o.arrival ?? 'poisson';
        const rate = spec.rate as number;
        const rnd = rng((o.seed ?? 1) + i * 7919);
        let t = start;
        let first = true;
        while (count < maxReq && !o.signal?.aborted) {
          // The first arrival at the stage start; then exponential or constant gaps.
          if (!first) t += arrival === 'poisson' ? (-Math.log(1 - rnd()) / rate) * 1000 : 1000 / rate;
          first = false;
          if (t >= end) break;
          await sleepUntil(t);
          while (o.maxInFlight !== undefined && ctx.inflight >= o.maxInFlight) await nextEvent(ctx, 1000);
          const { item, blocked } = await getItem(end);
          if (!item) break;
          pending.push(fire(item, t, blocked));
        }
      }
      const arrivalsEnd = performance.now();
      cur.draining = true;
      await Promise.all(pending);
      const endT = performance.now();
      const health = o.health ? await o.health.end() : undefined;
      const cacheAfter = o.cacheCounters ? await o.cacheCounters() : undefined;
      records.sort((a, b) => a.intendedMs - b.intendedMs);
      const sr: StageResult = {
        index: i,
        name,
        spec,
        arrival,
        startMs: start - ctx.t0,
        measuredStartMs: warmEnd - ctx.t0,
        arrivalsEndMs: Math.max(lastArrival, Math.min(arrivalsEnd, end)) - ctx.t0,
        endMs: endT - ctx.t0,
        records,
      };
      if (closed) sr.concurrency = spec.concurrency;
      else if (!timed) sr.rate = spec.rate;
      if (cacheBefore) sr.cacheBefore = cacheBefore;
      if (cacheAfter) sr.cacheAfter = cacheAfter;
      if (health) sr.health = health;
      if (o.signal?.aborted) sr.aborted = true;
      result.stages.push(sr);
    }
  } finally {
    progress.stop();
    await ctx.dispatcher.close();
  }
  return result;
}
