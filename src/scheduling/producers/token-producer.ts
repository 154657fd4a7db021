// token-producer (llm-d Router v0.10): the request's prompt as the model's
// token ids, for precise-prefix-cache-producer (and burst-prefix-cache-producer).
// Backends:
// - vllm: vLLM's render endpoints (POST /v1/chat/completions/render and
//   /v1/completions/render), which apply the chat template themselves —
//   llm-d's backend, with its parameter names and defaults;
// - local (llm-epp's addition): the model's tokenizer.json and chat template,
//   in worker threads (--tokenizer-workers), with a prefix cache so a prompt
//   whose beginning was tokenized recently is not tokenized from scratch;
// - estimate: 4 bytes per id, no tokenizer — llm-d's default; its ids are not
//   the engine's tokens, so precise-prefix-cache-producer refuses it.
// A prompt given as token ids needs no backend. When tokenization fails
// (timeout, render error, overload, an API the backends do not read) the
// request goes on without tokens, counted by result, and the precise
// producer scores it with its approximate index.
import { availableParallelism } from 'node:os';
import type { Logger } from '../../log.ts';
import type { KvCacheMetrics, TokenizeOutcome } from '../../observability/kv-cache-metrics.ts';
import { TokenizerPool, defaultTokenizerWorkers } from '../../tokenize/tokenizer-pool.ts';
import { RenderError, VllmRenderClient } from '../../tokenize/vllm-render.ts';
import type { ParsedRequest } from '../../openai/request.ts';
import { stateKey, type AsyncDataProducer, type CycleState, type StateKey } from '../framework.ts';
import { ConfigError, configBytes, configDuration, readParams, type Params } from '../params.ts';
import { definePlugin } from '../registry.ts';

export type TokenBackend = 'vllm' | 'local' | 'estimate';

export interface TokenizedPrompt {
  readonly ids: Uint32Array;
  readonly backend: TokenBackend;
}

export const TOKENIZED_PROMPT: StateKey<TokenizedPrompt> = stateKey('TokenizedPrompt', "a token-producer with the model's real tokens (vllm.url with modelName, or local.path)");

export function isTokenProducer(p: unknown): p is TokenProducer {
  return p instanceof TokenProducer;
}

const VLLM_PARAMS = {
  url: { type: 'string', default: 'http://localhost:8000', doc: 'Base URL of the vLLM render endpoint (no trailing slash).' },
  timeout: { type: 'string', default: '5s', doc: 'Per-request timeout for text-only requests.' },
  mmTimeout: { type: 'string', default: '30s', doc: 'Per-request timeout for multimodal requests.' },
} as const;

const LOCAL_PARAMS = {
  path: { type: 'string', doc: 'Directory holding the model\'s tokenizer.json (and tokenizer_config.json with its chat template), or the tokenizer.json file (required).' },
  prefixCacheSize: { type: 'string', default: '64Mi', doc: 'Memory for the tokenizer\'s prefix cache (token ids of recently seen prompt prefixes); 0 turns it off.' },
  inlineMaxChars: { type: 'number', integer: true, min: 0, default: 512, doc: 'Prompts up to this many characters are tokenized on the request thread (a worker round trip costs more); longer ones in a worker.' },
  maxQueued: { type: 'number', integer: true, min: 1, default: 1024, doc: 'Prompts waiting for a worker; beyond it a request goes on without tokens (result "overloaded").' },
} as const;

const PARAMS = {
  modelName: { type: 'string', doc: 'Model whose tokenizer is used: sent as "model" in render requests (required for vllm).' },
  vllm: { type: 'object', doc: '{url (http://localhost:8000), timeout (5s), mmTimeout (30s)}: tokenize with vLLM\'s render endpoints.' },
  local: { type: 'object', doc: 'llm-epp: {path, prefixCacheSize (64Mi), inlineMaxChars (512), maxQueued (1024)}: tokenize in-process from the model\'s tokenizer.json, in --tokenizer-workers threads.' },
  estimate: { type: 'object', doc: 'llm-d\'s estimate backend (≈4 bytes per token; not the engine\'s tokens). Its multimodal placeholder settings are accepted and unused: llm-epp routes text.' },
  udsTokenizerConfig: { type: 'object', doc: 'llm-d\'s deprecated UDS tokenizer sidecar: refused; use vllm.url (a render sidecar or Service) or local.path.' },
} as const;

/** A failed tokenization, logged at most this often per result (the counter has every one). */
const WARN_EVERY_MS = 10_000;

export class TokenProducer implements AsyncDataProducer {
  readonly type = 'token-producer';
  readonly name: string;
  readonly produces = [TOKENIZED_PROMPT];
  readonly backend: TokenBackend;
  readonly #render: VllmRenderClient | undefined;
  readonly #pool: TokenizerPool | undefined;
  readonly #metrics: KvCacheMetrics | undefined;
  readonly #log: Logger;
  readonly #warned = new Map<string, number>();

  constructor(name: string, backend: TokenBackend, deps: { render?: VllmRenderClient; pool?: TokenizerPool; metrics?: KvCacheMetrics; log: Logger }) {
    this.name = name;
    this.backend = backend;
    this.#render = deps.render;
    this.#pool = deps.pool;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
  }

  async start(): Promise<void> {
    await this.#pool?.ready();
  }

  async stop(): Promise<void> {
    await this.#pool?.close();
    await this.#render?.close();
  }

  /** Everything is written by prepare() (at once when nothing needs waiting for). */
  produce(): void {}

  prepare(state: CycleState, _candidates: unknown, signal: AbortSignal): Promise<void> | undefined {
    const parsed = state.request.parsed;
    if (!parsed || state.get(TOKENIZED_PROMPT)) return undefined;
    const given = promptIds(parsed);
    if (given) {
      state.set(TOKENIZED_PROMPT, { ids: given, backend: this.backend });
      return undefined;
    }
    if (this.backend === 'estimate') {
      state.set(TOKENIZED_PROMPT, { ids: estimateIds(parsed.routingText), backend: 'estimate' });
      return undefined;
    }
    if (parsed.api !== 'chat' && parsed.api !== 'completions') {
      this.#failed('unsupported', 0);
      return undefined;
    }
    const t0 = performance.now();
    const job = this.#tokenize(parsed, signal);
    return job.then(
      ({ ids, cachedChars, tokenizedChars }) => {
        state.set(TOKENIZED_PROMPT, { ids, backend: this.backend });
        const m = this.#metrics;
        if (!m) return;
        const labels = { plugin_name: this.name, backend: this.backend };
        m.tokenizeLatency.observe(labels, (performance.now() - t0) / 1000);
        m.tokenizeRequests.inc({ ...labels, result: 'ok' });
        m.tokenizedTokens.inc(labels, ids.length);
        if (this.backend === 'local') {
          if (cachedChars > 0) m.tokenizePrefixChars.inc({ plugin_name: this.name, result: 'hit' }, cachedChars);
          if (tokenizedChars > 0) m.tokenizePrefixChars.inc({ plugin_name: this.name, result: 'miss' }, tokenizedChars);
        }
      },
      (err: unknown) => this.#failed(signal.aborted ? 'aborted' : outcomeOf(err), performance.now() - t0, err),
    );
  }

  async #tokenize(parsed: ParsedRequest, signal: AbortSignal): Promise<{ ids: Uint32Array; cachedChars: number; tokenizedChars: number }> {
    const body = parsed.body;
    if (this.#render) {
      const ids = parsed.api === 'chat' ? await this.#render.renderChat(body, signal) : await this.#render.renderCompletion(body, signal);
      return { ids, cachedChars: 0, tokenizedChars: 0 };
    }
    const pool = this.#pool!;
    const r = parsed.api === 'chat' ? await pool.tokenizeChat(body, signal) : await pool.tokenizeCompletion(firstPrompt(body.prompt), signal);
    return { ids: r.ids, cachedChars: r.cachedChars, tokenizedChars: Math.max(0, r.totalChars - r.cachedChars) };
  }

  #failed(result: TokenizeOutcome, ms: number, err?: unknown): void {
    const m = this.#metrics;
    if (m) {
      const labels = { plugin_name: this.name, backend: this.backend };
      m.tokenizeRequests.inc({ ...labels, result });
      if (ms > 0) m.tokenizeLatency.observe(labels, ms / 1000);
    }
    if (result === 'aborted') return;
    const now = performance.now();
    if (now - (this.#warned.get(result) ?? -Infinity) < WARN_EVERY_MS) return;
    this.#warned.set(result, now);
    this.#log.warn({ plugin: this.name, backend: this.backend, result, reason: err instanceof Error ? err.message : undefined }, 'tokenization failed; requests go on with approximate prefix scoring (logged at most every 10 s per result)');
  }
}

/** Token ids the client sent as the prompt (completions with ids), else undefined. */
function promptIds(parsed: ParsedRequest): Uint32Array | undefined {
  if (parsed.api !== 'completions') return undefined;
  let p = parsed.body.prompt;
  if (Array.isArray(p) && Array.isArray(p[0])) p = p[0];
  if (!Array.isArray(p) || p.length === 0 || typeof p[0] !== 'number') return undefined;
  const ids = new Uint32Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) return undefined;
    ids[i] = v;
  }
  return ids;
}

/** The completions prompt to tokenize: a string, or the first of a batch. */
function firstPrompt(prompt: unknown): string {
  if (typeof prompt === 'string') return prompt;
  if (Array.isArray(prompt) && typeof prompt[0] === 'string') return prompt[0];
  return '';
}

/** llm-d's estimate backend: the text's UTF-8 bytes packed 4 to an id. */
export function estimateIds(text: string): Uint32Array {
  const bytes = Buffer.from(text, 'utf8');
  const n = Math.ceil(bytes.length / 4);
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    ids[i] = ((bytes[o] << 24) | ((bytes[o + 1] ?? 0) << 16) | ((bytes[o + 2] ?? 0) << 8) | (bytes[o + 3] ?? 0)) >>> 0;
  }
  return ids;
}

function outcomeOf(err: unknown): TokenizeOutcome {
  if (err instanceof RenderError) return err.reason;
  if (err instanceof Error && /queue|overload/i.test(err.message)) return 'overloaded';
  return 'error';
}




export const tokenProducer = definePlugin({
  type: 'token-producer',
  deprecatedAliases: ['tokenizer'],
  description: 'Tokenizes the prompt (vLLM render endpoints, or in-process from tokenizer.json) for precise-prefix-cache-producer and burst-prefix-cache-producer.',
  params: PARAMS,
  create: (name, p: Params<typeof PARAMS>, ctx) => {
    const where = `plugin "${name}" (token-producer)`;
    if (p.udsTokenizerConfig !== undefined) {
      throw new ConfigError(`${where}: udsTokenizerConfig (llm-d's deprecated UDS sidecar) is not supported by llm-epp: use vllm.url (a vllm render sidecar or Service) or local.path (in-process tokenizer)`);
    }
    if (p.vllm !== undefined && p.local !== undefined) throw new ConfigError(`${where}: set one backend, "vllm" or "local", not both`);
    const metrics = ctx.metrics?.kvCache;
    if (p.local !== undefined) {
      const l = readParams(LOCAL_PARAMS, p.local, `${where} local`);
      if (!l.path) throw new ConfigError(`${where}: local.path (the directory of the model's tokenizer.json) is required`);
      let pool: TokenizerPool;
      try {
        pool = new TokenizerPool({
        path: l.path,
        workers: ctx.tokenizerWorkers || defaultTokenizerWorkers(availableParallelism()),
        inlineMaxChars: l.inlineMaxChars,
        cacheMaxBytes: configBytes(`${where}: local.prefixCacheSize`, l.prefixCacheSize),
          maxQueued: l.maxQueued,
        });
      } catch (e) {
        throw new ConfigError(`${where}: local.path: ${(e as Error).message}`);
      }
      return new TokenProducer(name, 'local', { pool, metrics, log: ctx.log });
    }
    if (p.vllm !== undefined || p.modelName !== undefined) {
      const v = readParams(VLLM_PARAMS, p.vllm ?? {}, `${where} vllm`);
      if (!p.modelName) throw new ConfigError(`${where}: modelName is required with the vllm backend (the model sent in render requests)`);
      let url: URL;
      try {
        url = new URL(v.url);
      } catch {
        throw new ConfigError(`${where}: vllm.url "${v.url}" is not a URL`);
      }
      if (url.protocol !== 'http:') throw new ConfigError(`${where}: vllm.url must be http:// (vLLM's render endpoints are plain HTTP), got "${v.url}"`);
      const render = new VllmRenderClient({ url: v.url.replace(/\/+$/, ''), modelName: p.modelName, timeoutMs: configDuration(`${where}: vllm.timeout`, v.timeout), mmTimeoutMs: configDuration(`${where}: vllm.mmTimeout`, v.mmTimeout) });
      return new TokenProducer(name, 'vllm', { render, metrics, log: ctx.log });
    }
    return new TokenProducer(name, 'estimate', { metrics, log: ctx.log });
  },
});
