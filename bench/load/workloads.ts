// Request generators for the load bench: OpenAI chat requests whose shape
// (shared prefixes, growing multi-turn context, no sharing, a replayed trace)
// is what makes routing quality visible (the canonical llm-d / GAIE benchmark workloads).
//
// Text is deterministic and tokenizer-free: one "token" is exactly 4
// characters (three letters and a space), the simulator's own token model
// (bench/sim/tokens.ts), so a prompt of N tokens is 4·N characters.
import { readFileSync } from 'node:fs';
import { mulberry32, shuffle } from '../../src/random.ts';
import { FAIRNESS_HEADERS, OBJECTIVE_HEADERS } from '../../src/request-control/policy.ts';
import { parseDuration } from '../../src/units.ts';
import { CHARS_PER_TOKEN } from '../sim/tokens.ts';

export type WorkloadKind = 'shared-prefix' | 'multi-turn' | 'no-sharing' | 'trace' | 'tenants';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The body of an OpenAI /v1/chat/completions request. */
export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  max_tokens: number;
  stream: true;
  stream_options: { include_usage: true };
  /** vLLM extension: generate exactly max_tokens. */
  ignore_eos?: boolean;
}

export interface WorkItem {
  /** Unique per request, e.g. "g12-p3#0" or "c4-t2". */
  id: string;
  body: ChatRequest;
  /** Approximate prompt length in tokens (characters / 4). */
  promptTokens: number;
  /** Shared-prefix group, multi-turn conversation, trace line. */
  group?: number;
  session?: number;
  turn?: number;
  /** Trace replay: arrival time in seconds from the trace's first line (already divided by speed). */
  at?: number;
  /** Multi-tenant: the tenant (its fairness id) that sends it. */
  tenant?: string;
  /** Request headers of this item, on top of the run's (the tenant's fairness id and objective). */
  headers?: Record<string, string>;
}

/** A request source. The runner pulls items and reports completions. */
export interface Workload {
  readonly kind: WorkloadKind;
  /** True when items carry their own arrival times (`at`): the runner ignores the stage rate. */
  readonly timed: boolean;
  /** Next request to send; undefined when none is ready now (multi-turn: every conversation has a turn in flight) or the workload is exhausted. */
  next(nowMs?: number): WorkItem | undefined;
  /** The runner reports each finished request; multi-turn appends the answer and unblocks the next turn. */
  complete(item: WorkItem, outcome: { ok: boolean; text: string }, nowMs?: number): void;
  /** True when no item will ever be produced again. */
  exhausted(): boolean;
  /** Earliest time (ms, runner clock) at which a blocked workload may have an item (multi-turn think time); undefined if unknown. */
  readyAt?(): number | undefined;
}

// ---------------------------------------------------------------------------
// Deterministic randomness and text

/** mulberry32 (src/random.ts): the load generator's seeded PRNG. */
export const rng = mulberry32;

/** FNV-1a of a string, for seeding from labels. */
export function hashSeed(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** Deterministic text of exactly `tokens` × 4 characters, a function of `seed` only. */
export function syntheticText(seed: string, tokens: number): string {
  const r = rng(hashSeed(seed));
  const parts = new Array<string>(Math.max(0, tokens));
  for (let i = 0; i < parts.length; i++) {
    parts[i] = LETTERS[(r() * 26) | 0] + LETTERS[(r() * 26) | 0] + LETTERS[(r() * 26) | 0] + ' ';
  }
  return parts.join('');
}

/** `head` followed by synthetic text, cut to `tokens` tokens (never shorter than `head`). */
function labelledText(head: string, seed: string, tokens: number): string {
  return (head + syntheticText(seed, tokens)).slice(0, Math.max(head.length, tokens * CHARS_PER_TOKEN));
}

function chat(model: string, messages: ChatMessage[], maxTokens: number, ignoreEos: boolean): ChatRequest {
  const body: ChatRequest = {
    model,
    messages,
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (ignoreEos) body.ignore_eos = true;
  return body;
}

function promptTokensOf(messages: ChatMessage[]): number {
  let n = 0;
  for (const m of messages) n += m.content.length;
  return Math.ceil(n / CHARS_PER_TOKEN);
}

// ---------------------------------------------------------------------------
// Options

/** Options common to every workload. */
export interface CommonOptions {
  /** Model name in the request body. Default "sim-model". */
  model?: string;
  /** Seed for text and order. Default 1. */
  seed?: number;
  /** Send vLLM's ignore_eos so every answer is max_tokens long. Default true. */
  ignoreEos?: boolean;
}

/** inference-perf `shared_prefix`: groups × prompts per group; each group shares its system prompt. */
export interface SharedPrefixOptions extends CommonOptions {
  /** Number of groups (distinct system prompts). Default 150. */
  groups?: number;
  /** Prompts (users) per group. Default 5. */
  promptsPerGroup?: number;
  /** Shared system-prompt length in tokens. Default 6000. */
  systemTokens?: number;
  /** Unique question length in tokens. Default 1200. */
  questionTokens?: number;
  /** max_tokens. Default 1000. */
  outputTokens?: number;
  /** Restart from the beginning when all prompts are sent (duration-based stages). Default true. */
  cycle?: boolean;
  /** On each new pass draw fresh questions (only the system prompt repeats). Default false (exact repeats, as inference-perf). */
  freshQuestions?: boolean;
}

/** Multi-turn chat: conversations whose history grows; turn k+1 is sent after turn k's answer. */
export interface MultiTurnOptions extends CommonOptions {
  /** Concurrent conversations. Default 32. */
  conversations?: number;
  /** Turns per conversation; afterwards the conversation restarts with a new id. Default 5. */
  turns?: number;
  /** System prompt tokens; shared by all conversations of a group. Default 1000. */
  systemTokens?: number;
  /** Conversations per system prompt (group size). Default 1 (each conversation its own system prompt). */
  conversationsPerSystemPrompt?: number;
  /** New user message per turn, tokens. Default 100. */
  userTokens?: number;
  /** max_tokens per turn. Default 200. */
  outputTokens?: number;
  /** Pause between an answer and the next turn, ms. Default 0. */
  thinkTimeMs?: number;
  /** Start new conversations when one finishes its turns. Default true. */
  cycle?: boolean;
}

/** Negative control: every prompt unique from its first token. */
export interface NoSharingOptions extends CommonOptions {
  /** Prompt length in tokens. Default 7200 (the shared-prefix prompt's total length). */
  promptTokens?: number;
  /** max_tokens. Default 1000. */
  outputTokens?: number;
  /** Number of prompts before exhausting; default unlimited. */
  count?: number;
}

/** Trace replay from JSONL: {"timestamp": s, "input": "text" | tokens, "output": tokens} per line. */
export interface TraceOptions extends CommonOptions {
  /** Path of a JSONL file (or give `lines`). */
  file?: string;
  /** The JSONL text itself. */
  text?: string;
  /** Replay speed factor: 2 = twice as fast. Default 1. */
  speed?: number;
  /** Tokens per `hash_ids` block (Mooncake format). Default 512. */
  blockTokens?: number;
  /** Output tokens when a line has none. Default 128. */
  defaultOutput?: number;
}

/** One tenant of a multi-tenant workload. */
export interface TenantSpec {
  /** Its fairness id (x-llm-d-inference-fairness-id) and its label in reports: letters, digits, '.', '_', '-'. */
  name: string;
  /** The InferenceObjective it names (x-llm-d-inference-objective), which gives its priority; none: priority 0. */
  objective?: string;
  /** Poisson arrivals, req/s (0: only during the burst). */
  rate: number;
  /** Another rate during [fromS, toS) seconds from the stage's start (warm-up included). */
  burst?: { rate: number; fromS: number; toS: number };
  /** Its requests' shape (default no-sharing); the text is its own (seeded by its name). */
  kind?: 'shared-prefix' | 'no-sharing';
}

/** Several tenants, each with its own arrival process and headers; the shape options apply to every tenant's requests. */
export interface TenantsOptions extends SharedPrefixOptions, NoSharingOptions {
  tenants: TenantSpec[];
}

export type WorkloadOptions = SharedPrefixOptions | MultiTurnOptions | NoSharingOptions | TraceOptions | TenantsOptions;

// ---------------------------------------------------------------------------
// shared-prefix

export function sharedPrefix(o: SharedPrefixOptions = {}): Workload {
  const model = o.model ?? 'sim-model';
  const seed = o.seed ?? 1;
  const groups = o.groups ?? 150;
  const perGroup = o.promptsPerGroup ?? 5;
  const systemTokens = o.systemTokens ?? 6000;
  const questionTokens = o.questionTokens ?? 1200;
  const outputTokens = o.outputTokens ?? 1000;
  const cycle = o.cycle ?? true;
  const ignoreEos = o.ignoreEos ?? true;
  const random = rng(seed);
  const systems: string[] = [];
  for (let g = 0; g < groups; g++) {
    // The group id leads the system prompt so groups never share a block.
    systems.push(labelledText(`group ${g}: `, `sys/${seed}/${g}`, systemTokens));
  }
  let order: Array<[number, number]> = [];
  let pass = -1;
  let pos = 0;
  const newPass = () => {
    pass++;
    pos = 0;
    const pairs: Array<[number, number]> = [];
    for (let g = 0; g < groups; g++) for (let p = 0; p < perGroup; p++) pairs.push([g, p]);
    order = shuffle(pairs, random);
  };
  newPass();
  return {
    kind: 'shared-prefix',
    timed: false,
    next() {
      if (pos >= order.length) {
        if (!cycle || order.length === 0) return undefined;
        newPass();
      }
      const [g, p] = order[pos++];
      const qSeed = o.freshQuestions ? `q/${seed}/${g}/${p}/${pass}` : `q/${seed}/${g}/${p}`;
      const qHead = `user ${p}: `;
      const question = labelledText(qHead, qSeed, questionTokens);
      const messages: ChatMessage[] = [
        { role: 'system', content: systems[g] },
        { role: 'user', content: question },
      ];
      return {
        id: `g${g}-p${p}#${pass}`,
        body: chat(model, messages, outputTokens, ignoreEos),
        promptTokens: promptTokensOf(messages),
        group: g,
      };
    },
    complete() {},
    exhausted: () => !cycle && pos >= order.length,
  };
}

// ---------------------------------------------------------------------------
// multi-turn

interface Conversation {
  index: number;
  id: number;
  turn: number;
  history: ChatMessage[];
  busy: boolean;
  readyAt: number;
}

export function multiTurn(o: MultiTurnOptions = {}): Workload {
  const model = o.model ?? 'sim-model';
  const seed = o.seed ?? 1;
  const n = o.conversations ?? 32;
  const turns = o.turns ?? 5;
  const systemTokens = o.systemTokens ?? 1000;
  const perSystem = Math.max(1, o.conversationsPerSystemPrompt ?? 1);
  const userTokens = o.userTokens ?? 100;
  const outputTokens = o.outputTokens ?? 200;
  const think = o.thinkTimeMs ?? 0;
  const cycle = o.cycle ?? true;
  const ignoreEos = o.ignoreEos ?? true;
  let nextId = 0;
  const fresh = (index: number): Conversation => {
    const id = nextId++;
    const g = Math.floor(id / perSystem);
    const history: ChatMessage[] = [];
    if (systemTokens > 0) {
      const head = `system ${g}: `;
      history.push({ role: 'system', content: labelledText(head, `mt-sys/${seed}/${g}`, systemTokens) });
    }
    return { index, id, turn: 0, history, busy: false, readyAt: 0 };
  };
  const convs: Array<Conversation | undefined> = [];
  for (let i = 0; i < n; i++) convs.push(fresh(i));
  // The next turn comes from a conversation drawn at random among the ready ones: taken in a
  // fixed rotation, conversation c's turns would be requests c, c + n, c + 2n … and a
  // round-robin router with a pod count dividing n would keep each conversation on one pod.
  const random = rng(hashSeed(`mt-order/${seed}`));
  const byItem = new Map<string, Conversation>();
  return {
    kind: 'multi-turn',
    timed: false,
    next(nowMs = performance.now()) {
      const start = Math.floor(random() * convs.length);
      for (let k = 0; k < convs.length; k++) {
        const c = convs[(start + k) % convs.length];
        if (!c || c.busy || c.readyAt > nowMs) continue;
        c.busy = true;
        const head = `turn ${c.turn} of ${c.id}: `;
        const user = labelledText(head, `mt-u/${seed}/${c.id}/${c.turn}`, userTokens);
        const messages = [...c.history, { role: 'user' as const, content: user }];
        c.history = messages;
        const item: WorkItem = {
          id: `c${c.id}-t${c.turn}`,
          body: chat(model, messages, outputTokens, ignoreEos),
          promptTokens: promptTokensOf(messages),
          session: c.id,
          turn: c.turn,
        };
        byItem.set(item.id, c);
        return item;
      }
      return undefined;
    },
    complete(item, outcome, nowMs = performance.now()) {
      const c = byItem.get(item.id);
      if (!c) return;
      byItem.delete(item.id);
      c.busy = false;
      c.readyAt = nowMs + think;
      if (!outcome.ok) {
        // A failed turn ends the conversation: its context is no longer coherent.
        convs[c.index] = cycle ? fresh(c.index) : undefined;
        return;
      }
      c.history = [...c.history, { role: 'assistant', content: outcome.text }];
      c.turn++;
      if (c.turn >= turns) {
        const f = cycle ? fresh(c.index) : undefined;
        if (f) f.readyAt = c.readyAt;
        convs[c.index] = f;
      }
    },
    exhausted: () => convs.every((c) => c === undefined),
    readyAt() {
      let t: number | undefined;
      for (const c of convs) if (c && !c.busy && (t === undefined || c.readyAt < t)) t = c.readyAt;
      return t;
    },
  };
}

// ---------------------------------------------------------------------------
// no-sharing

export function noSharing(o: NoSharingOptions = {}): Workload {
  const model = o.model ?? 'sim-model';
  const seed = o.seed ?? 1;
  const promptTokens = o.promptTokens ?? 7200;
  const outputTokens = o.outputTokens ?? 1000;
  const ignoreEos = o.ignoreEos ?? true;
  const count = o.count ?? Infinity;
  let i = 0;
  return {
    kind: 'no-sharing',
    timed: false,
    next() {
      if (i >= count) return undefined;
      const n = i++;
      // A unique id first, so no two prompts share even their first block.
      const head = `${n}/${seed} `;
      const content = labelledText(head, `ns/${seed}/${n}`, promptTokens);
      const messages: ChatMessage[] = [{ role: 'user', content }];
      return { id: `u${n}`, body: chat(model, messages, outputTokens, ignoreEos), promptTokens: promptTokensOf(messages) };
    },
    complete() {},
    exhausted: () => i >= count,
  };
}

// ---------------------------------------------------------------------------
// trace replay

export interface TraceLine {
  /** Seconds from the start of the trace. */
  timestamp: number;
  /** Prompt text, or a prompt length in tokens. */
  input: string | number;
  /** max_tokens. */
  output: number;
  /** Mooncake: hash ids of the prompt's blocks; equal ids are equal text. */
  hash_ids?: number[];
}

/** Parse trace JSONL. Accepts Mooncake's input_length/output_length as aliases; blank lines and `#` comments are skipped. */
export function parseTrace(text: string, defaultOutput = 128): TraceLine[] {
  const out: TraceLine[] = [];
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n].trim();
    if (!raw || raw.startsWith('#')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(raw) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`trace line ${n + 1}: invalid JSON (${(e as Error).message})`);
    }
    const timestamp = Number(j.timestamp ?? 0);
    const input = (j.input ?? j.input_length ?? j.prompt) as unknown;
    const output = Number(j.output ?? j.output_length ?? defaultOutput);
    if (!Number.isFinite(timestamp) || timestamp < 0) throw new Error(`trace line ${n + 1}: bad timestamp`);
    if (typeof input !== 'string' && !(typeof input === 'number' && Number.isFinite(input) && input >= 0)) {
      throw new Error(`trace line ${n + 1}: input must be text or a token count`);
    }
    if (!Number.isFinite(output) || output < 1) throw new Error(`trace line ${n + 1}: bad output`);
    const line: TraceLine = { timestamp, input, output: Math.round(output) };
    if (Array.isArray(j.hash_ids)) line.hash_ids = j.hash_ids.map(Number);
    out.push(line);
  }
  out.sort((a, b) => a.timestamp - b.timestamp);
  return out;
}

export function trace(o: TraceOptions): Workload {
  const model = o.model ?? 'sim-model';
  const seed = o.seed ?? 1;
  const speed = o.speed ?? 1;
  const blockTokens = o.blockTokens ?? 512;
  const ignoreEos = o.ignoreEos ?? true;
  const text = o.text ?? (o.file ? readFileSync(o.file, 'utf8') : undefined);
  if (text === undefined) throw new Error('trace workload needs `file` or `text`');
  const lines = parseTrace(text, o.defaultOutput ?? 128);
  const t0 = lines.length ? lines[0].timestamp : 0;
  let i = 0;
  return {
    kind: 'trace',
    timed: true,
    next() {
      if (i >= lines.length) return undefined;
      const n = i++;
      const l = lines[n];
      let content: string;
      if (typeof l.input === 'string') content = l.input;
      else if (l.hash_ids && l.hash_ids.length) {
        // Mooncake: blocks with equal hash ids are equal text; the last block is cut to the length.
        const parts = l.hash_ids.map((h) => syntheticText(`blk/${seed}/${h}`, blockTokens));
        content = parts.join('').slice(0, l.input * CHARS_PER_TOKEN);
      } else {
        const head = `${n} `;
        content = labelledText(head, `tr/${seed}/${n}`, l.input);
      }
      const messages: ChatMessage[] = [{ role: 'user', content }];
      return {
        id: `r${n}`,
        body: chat(model, messages, l.output, ignoreEos),
        promptTokens: promptTokensOf(messages),
        at: (l.timestamp - t0) / speed,
        group: n,
      };
    },
    complete() {},
    exhausted: () => i >= lines.length,
  };
}

// ---------------------------------------------------------------------------
// tenants: several senders, each with its own rate (and burst), fairness id and objective

/** Tenants in one workload at most: their names are report keys and columns. */
const MAX_TENANTS = 16;
const TENANT_NAME = /^[A-Za-z0-9._-]{1,63}$/;
/** The headers a tenant's requests carry: llm-d Router's own names (GAIE's are the fallback llm-epp reads too). */
export const FAIRNESS_HEADER = FAIRNESS_HEADERS[0];
export const OBJECTIVE_HEADER = OBJECTIVE_HEADERS[0];

/** Check tenants: a bounded number of distinct, header-safe names, rates ≥ 0, a burst inside a window. */
export function checkTenants(tenants: readonly TenantSpec[]): void {
  if (tenants.length === 0) throw new Error('the tenants workload needs at least one tenant');
  if (tenants.length > MAX_TENANTS) throw new Error(`at most ${MAX_TENANTS} tenants, got ${tenants.length}`);
  const seen = new Set<string>();
  for (const t of tenants) {
    if (!TENANT_NAME.test(t.name)) throw new Error(`tenant name "${t.name}": 1-63 letters, digits, '.', '_' or '-'`);
    if (seen.has(t.name)) throw new Error(`tenant "${t.name}" is given twice`);
    seen.add(t.name);
    if (t.objective !== undefined && !TENANT_NAME.test(t.objective)) throw new Error(`tenant "${t.name}": objective "${t.objective}": 1-63 letters, digits, '.', '_' or '-'`);
    if (!(t.rate >= 0) || !Number.isFinite(t.rate)) throw new Error(`tenant "${t.name}": rate must be a number >= 0`);
    const b = t.burst;
    if (b && (!(b.rate >= 0) || !Number.isFinite(b.rate) || !(b.fromS >= 0) || !(b.toS > b.fromS))) throw new Error(`tenant "${t.name}": the burst needs a rate >= 0 and a window FROM-TO with TO > FROM >= 0`);
    if (t.rate === 0 && !(b && b.rate > 0)) throw new Error(`tenant "${t.name}" never sends: give a rate or a burst`);
  }
}

const seconds = (s: string, what: string): number => {
  try {
    return parseDuration(s.trim()) / 1000;
  } catch {
    throw new Error(`${what}: bad duration "${s}" (e.g. 5s, 1m)`);
  }
};

/**
 * A tenant from its command-line form: NAME,rate=R[,objective=O][,burst=R@FROM-TO][,kind=no-sharing|shared-prefix],
 * e.g. "noisy,rate=2,objective=standard,burst=40@5s-25s".
 */
export function parseTenant(spec: string): TenantSpec {
  const [name, ...rest] = spec.split(',').map((x) => x.trim());
  const t: TenantSpec = { name: name ?? '', rate: NaN };
  for (const kv of rest) {
    const i = kv.indexOf('=');
    const key = i > 0 ? kv.slice(0, i) : kv;
    const value = i > 0 ? kv.slice(i + 1) : '';
    if (key === 'rate') t.rate = Number(value);
    else if (key === 'objective') t.objective = value;
    else if (key === 'kind') {
      if (value !== 'no-sharing' && value !== 'shared-prefix') throw new Error(`tenant "${t.name}": kind is no-sharing or shared-prefix, got "${value}"`);
      t.kind = value;
    } else if (key === 'burst') {
      const m = /^([\d.]+)@([^-]+)-(.+)$/.exec(value);
      if (!m) throw new Error(`tenant "${t.name}": burst is RATE@FROM-TO, e.g. 40@5s-25s, got "${value}"`);
      t.burst = { rate: Number(m[1]), fromS: seconds(m[2], `tenant "${t.name}" burst`), toS: seconds(m[3], `tenant "${t.name}" burst`) };
    } else throw new Error(`tenant "${t.name}": unknown setting "${key}" (rate, objective, burst, kind)`);
  }
  if (Number.isNaN(t.rate)) t.rate = t.burst ? 0 : NaN;
  if (Number.isNaN(t.rate)) throw new Error(`tenant "${t.name}": give rate=R (req/s)`);
  checkTenants([t]);
  return t;
}

/** The tenant's rate at `t` seconds and when that rate next changes. */
function rateAt(t: TenantSpec, at: number): { rate: number; until: number } {
  const b = t.burst;
  if (!b) return { rate: t.rate, until: Infinity };
  if (at < b.fromS) return { rate: t.rate, until: b.fromS };
  if (at < b.toS) return { rate: b.rate, until: b.toS };
  return { rate: t.rate, until: Infinity };
}

/** The next arrival after `at` of a Poisson process whose rate is piecewise constant (exact: memoryless at each change). */
export function nextArrival(t: TenantSpec, at: number, random: () => number): number {
  let now = at;
  for (;;) {
    const { rate, until } = rateAt(t, now);
    if (rate > 0) {
      const next = now - Math.log(1 - random()) / rate;
      if (next < until) return next;
    }
    if (until === Infinity) return Infinity;
    now = until;
  }
}

/**
 * Several tenants at once, a timed workload (items carry `at`): each tenant a Poisson process of its
 * own (seeded by its name, so another tenant's presence leaves its arrivals unchanged), its first
 * request at 0, its requests with its fairness id and objective in the headers and in `tenant`.
 */
export function tenants(o: TenantsOptions): Workload {
  checkTenants(o.tenants);
  const seed = o.seed ?? 1;
  const parts = o.tenants.map((t) => {
    const own = { ...o, seed: hashSeed(`tenant/${seed}/${t.name}`) };
    const inner = (t.kind ?? 'no-sharing') === 'shared-prefix' ? sharedPrefix(own) : noSharing(own);
    const headers: Record<string, string> = { [FAIRNESS_HEADER]: t.name };
    if (t.objective) headers[OBJECTIVE_HEADER] = t.objective;
    const first = rateAt(t, 0).rate > 0 ? 0 : nextArrival(t, 0, () => 0);
    return { t, inner, headers, random: rng(hashSeed(`tenant-arrivals/${seed}/${t.name}`)), at: first };
  });
  return {
    kind: 'tenants',
    timed: true,
    next() {
      let p = parts[0];
      for (const q of parts) if (q.at < p.at) p = q;
      if (p.at === Infinity) return undefined;
      const item = p.inner.next();
      const at = p.at;
      p.at = nextArrival(p.t, at, p.random);
      if (!item) {
        p.at = Infinity;
        return this.next();
      }
      return { ...item, id: `${p.t.name}/${item.id}`, at, tenant: p.t.name, headers: p.headers };
    },
    complete() {},
    exhausted: () => parts.every((p) => p.at === Infinity),
  };
}

// ---------------------------------------------------------------------------

/** Build a workload by name. */
export function makeWorkload(kind: 'shared-prefix', options?: SharedPrefixOptions): Workload;
export function makeWorkload(kind: 'multi-turn', options?: MultiTurnOptions): Workload;
export function makeWorkload(kind: 'no-sharing', options?: NoSharingOptions): Workload;
export function makeWorkload(kind: 'trace', options: TraceOptions): Workload;
export function makeWorkload(kind: 'tenants', options: TenantsOptions): Workload;
export function makeWorkload(kind: WorkloadKind, options?: WorkloadOptions): Workload;
export function makeWorkload(kind: WorkloadKind, options: WorkloadOptions = {}): Workload {
  switch (kind) {
    case 'shared-prefix':
      return sharedPrefix(options as SharedPrefixOptions);
    case 'multi-turn':
      return multiTurn(options as MultiTurnOptions);
    case 'no-sharing':
      return noSharing(options as NoSharingOptions);
    case 'trace':
      return trace(options as TraceOptions);
    case 'tenants':
      return tenants(options as TenantsOptions);
    default:
      throw new Error(`unknown workload ${String(kind)} (shared-prefix, multi-turn, no-sharing, trace, tenants)`);
  }
}
