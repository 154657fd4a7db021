// Client of vLLM's render endpoints, which return the token ids vLLM would run for a
// request without running it (served by `vllm serve` and by the GPU-less
// `vllm launch render`): POST {url}/v1/completions/render answers a JSON list with one
// object per prompt, POST {url}/v1/chat/completions/render one object; both carry
// `token_ids`. The body goes as given, with `model` set to the configured name (a
// render server knows only its base model). Chat bodies with image, audio or video
// parts get the longer multimodal timeout (the server downloads and processes media).
//
// One keep-alive undici Pool per client. Every call ends: a deadline covers the whole
// exchange, the answer is read up to a byte cap, and each failure is a RenderError
// whose `reason` fits a metric label: 'timeout', 'http' (non-2xx), 'invalid' (not the
// expected JSON, or too large), 'unreachable' (connection refused, reset, DNS).
// Messages never quote the request or the server's error body (which may echo it).
import { Pool } from 'undici';
import { isObject } from './chat-messages.ts';

export type RenderFailure = 'timeout' | 'http' | 'invalid' | 'unreachable';

export class RenderError extends Error {
  override name = 'RenderError';
  readonly reason: RenderFailure;

  constructor(reason: RenderFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface VllmRenderOptions {
  /** Base URL, e.g. http://localhost:8000 (a path prefix is kept). */
  readonly url: string;
  /** Sent as `model`. */
  readonly modelName: string;
  /** Deadline for a text-only request. */
  readonly timeoutMs: number;
  /** Deadline for a chat request with media parts. */
  readonly mmTimeoutMs: number;
  /** Largest answer read (default 32 MiB; a 1M-token answer is ~8 MB). */
  readonly maxResponseBytes?: number;
  /** Most connections kept to the server (default 16). */
  readonly connections?: number;
}

const CHAT_PATH = '/v1/chat/completions/render';
const COMPLETIONS_PATH = '/v1/completions/render';
const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
const TEXT_PART_TYPES = new Set(['text', 'input_text', 'output_text', 'refusal', 'thinking']);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export class VllmRenderClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly target: string;
  private readonly modelName: string;
  private readonly timeoutMs: number;
  private readonly mmTimeoutMs: number;
  private readonly maxBytes: number;

  constructor(opts: VllmRenderOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new RangeError(`vLLM render url "${opts.url}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`vLLM render url "${opts.url}" must be http:// or https://`);
    for (const k of ['timeoutMs', 'mmTimeoutMs'] as const) {
      if (!(opts[k] > 0)) throw new RangeError(`vLLM render ${k} must be positive`);
    }
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.target = url.host;
    this.modelName = opts.modelName;
    this.timeoutMs = opts.timeoutMs;
    this.mmTimeoutMs = opts.mmTimeoutMs;
    this.maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.pool = new Pool(url.origin, { connections: opts.connections ?? 16, keepAliveTimeout: 60_000 });
  }

  /** Token ids of a completions body's first (or only) prompt. */
  async renderCompletion(body: object, signal?: AbortSignal): Promise<Uint32Array> {
    const answer = await this.post(COMPLETIONS_PATH, body, this.timeoutMs, signal);
    if (!Array.isArray(answer) || answer.length === 0) throw new RenderError('invalid', 'vLLM completions render answered something other than a non-empty list');
    return tokenIds(answer[0]);
  }

  /** Token ids of a chat body. */
  async renderChat(body: object, signal?: AbortSignal): Promise<Uint32Array> {
    const timeout = hasMediaParts((body as { messages?: unknown }).messages) ? this.mmTimeoutMs : this.timeoutMs;
    return tokenIds(await this.post(CHAT_PATH, body, timeout, signal));
  }

  /** Closes the connections; calls after this reject. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  private async post(path: string, body: object, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    const deadline = AbortSignal.timeout(timeoutMs);
    const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
    const failed = (err: unknown): Error => {
      if (signal?.aborted) return signal.reason instanceof Error ? signal.reason : new DOMException('render aborted', 'AbortError');
      if (deadline.aborted || TIMEOUT_CODES.has(errorCode(err))) return new RenderError('timeout', `vLLM render at ${this.target} did not answer within ${timeoutMs} ms`);
      if (err instanceof RenderError) return err;
      const code = errorCode(err);
      if (UNREACHABLE_CODES.has(code)) return new RenderError('unreachable', `cannot reach vLLM render at ${this.target}: ${code}`);
      return new RenderError('unreachable', `vLLM render request to ${this.target} failed: ${(err as Error).message}`);
    };
    try {
      const res = await this.pool.request({
        path: this.basePath + path,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ ...body, model: this.modelName }),
        signal: abort,
      });
      if (res.statusCode < 200 || res.statusCode >= 300) {
        // Read and dropped (up to 128 KiB, then cut) so the connection can be reused.
        await res.body.dump();
        throw new RenderError('http', `vLLM render at ${this.target} answered HTTP ${res.statusCode}`);
      }
      const text = await readCapped(res.body, this.maxBytes);
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new RenderError('invalid', `vLLM render at ${this.target} answered invalid JSON`);
      }
    } catch (err) {
      throw failed(err);
    }
  }
}

/** The body's text, refusing more than `max` bytes (leaving the loop early closes the body). */
async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) break;
    chunks.push(chunk);
  }
  if (size > max) throw new RenderError('invalid', `vLLM render answer is larger than ${max} bytes`);
  return Buffer.concat(chunks, size).toString('utf8');
}

function tokenIds(answer: unknown): Uint32Array {
  const ids = isObject(answer) ? answer.token_ids : undefined;
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) {
    throw new RenderError('invalid', 'vLLM render answer has no token_ids list of non-negative integers');
  }
  return Uint32Array.from(ids as number[]);
}

/** Whether a chat's messages carry a part other than text (image, audio, video, embeddings). */
function hasMediaParts(messages: unknown): boolean {
  if (!Array.isArray(messages)) return false;
  return messages.some(
    (m) => isObject(m) && Array.isArray(m.content) && m.content.some((p: unknown) => isObject(p) && !(typeof p.type === 'string' && TEXT_PART_TYPES.has(p.type))),
  );
}

function errorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  return String(e?.code ?? e?.cause?.code ?? '');
}
