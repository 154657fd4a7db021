// One simulated vLLM pod as an HTTP server: the OpenAI routes vLLM serves (completions and
// chat completions, streamed as SSE or not, /v1/models), /health, /ping and /metrics, in
// front of one Engine. Requests are tokenised with the simulator's 4-characters-per-token
// model (tokens.ts); chat messages are rendered by a fixed template first, so requests that
// share leading messages share leading tokens and blocks, as with a real chat template.
// Generation has no EOS: every request runs to its max_tokens (vLLM's ignore_eos).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Engine, RequestRejectedError, type EngineOptions, type RequestResult } from './engine.ts';
import { promptTokenIds } from './tokens.ts';
import { DcgmPage, type DcgmOptions } from './dcgm.ts';

export interface SimPodOptions extends EngineOptions {
  /** Pod name, returned in header x-sim-pod (default host:port). */
  name?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Return usage.prompt_tokens_details.cached_tokens (vLLM --enable-prompt-tokens-details). Default false. */
  enablePromptTokensDetails?: boolean;
  /** Output tokens per SSE chunk after the first (vLLM --stream-interval). Default 1. */
  streamInterval?: number;
  /** Largest request body accepted, bytes. Default 32 MiB. */
  maxBodyBytes?: number;
  /**
   * Further names the base model answers to (vLLM --served-model-name). Default: the model whose
   * timing the simulator models, meta-llama/Llama-3.1-8B-Instruct, so the README's requests work
   * against it as they do against a real vLLM.
   */
  servedModelNames?: string[];
  /** Also serve a DCGM-exporter-style page (GET /metrics) on this port of the same host; 0 = any free port. */
  dcgmPort?: number;
  /** How that page labels its samples (DaemonSet mode) or a fixed utilization. */
  dcgm?: DcgmOptions;
}

export interface SimPod {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Port of the DCGM-style page, when dcgmPort was given. */
  readonly dcgmPort: number | undefined;
  readonly engine: Engine;
  close(): Promise<void>;
}

/** The model whose timing the simulator's defaults model (vllm.md §6): answered to by default. */
export const SIMULATED_MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

class HttpError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, message: string, type = 'BadRequestError') {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** The fixed chat template: one header line per message, then the assistant's turn. */
export function renderChat(messages: unknown): string {
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, 'messages must be a non-empty list');
  let out = '';
  for (const m of messages) {
    if (m === null || typeof m !== 'object') throw new HttpError(400, 'each message must be an object');
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string') throw new HttpError(400, 'each message needs a string role');
    out += `<|${role}|>\n${contentText(content)}\n`;
  }
  return out + '<|assistant|>\n';
}

function contentText(content: unknown): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new HttpError(400, 'message content must be a string or a list of parts');
  let s = '';
  for (const p of content) {
    const part = p as { type?: unknown; text?: unknown };
    if (part && part.type === 'text' && typeof part.text === 'string') s += part.text;
    // Non-text parts (images, audio) have no token model here; they add nothing.
  }
  return s;
}

/** Prompts of a /v1/completions body: one string, a list of strings, token ids, or lists of them. */
export function completionPrompts(prompt: unknown): Array<string | number[]> {
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);
  if (typeof prompt === 'string') return [prompt];
  if (isIds(prompt)) return [prompt];
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => typeof p === 'string' || isIds(p))) return prompt as Array<string | number[]>;
  throw new HttpError(400, 'prompt must be a string, a list of strings, a list of token ids or a list of token-id lists');
}

function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, `request body larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      let v: unknown;
      try {
        v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        reject(new HttpError(400, 'request body is not valid JSON'));
        return;
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) reject(new HttpError(400, 'request body must be a JSON object'));
      else resolve(v as Record<string, unknown>);
    });
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

function sendError(res: ServerResponse, e: HttpError): void {
  // vLLM's ErrorResponse shape.
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: null, code: e.status } });
}

function optInt(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1) throw new HttpError(400, `${key} must be a positive integer`);
  return v as number;
}

let seq = 0;

export async function startSimPod(opts: SimPodOptions): Promise<SimPod> {
  const engine = new Engine(opts);
  const model = opts.model;
  const loras = new Set(opts.loraModules ?? []);
  const aliases = new Set((opts.servedModelNames ?? [SIMULATED_MODEL]).filter((n) => n !== model));
  const details = opts.enablePromptTokensDetails ?? false;
  const interval = Math.max(1, Math.floor(opts.streamInterval ?? 1));
  const maxBody = opts.maxBodyBytes ?? 32 << 20;
  const created = Math.floor(Date.now() / 1000);
  let name = opts.name ?? '';

  const generate = async (req: IncomingMessage, res: ServerResponse, chat: boolean) => {
    const body = await readJson(req, maxBody);
    const requested = body.model;
    if (typeof requested !== 'string' || requested === '') throw new HttpError(400, 'model is required');
    const base = requested === model || aliases.has(requested);
    if (!base && !loras.has(requested)) throw new HttpError(404, `The model \`${requested}\` does not exist.`, 'NotFoundError');
    const lora = base ? undefined : requested;
    const prompts: Array<string | number[]> = chat ? [renderChat(body.messages)] : completionPrompts(body.prompt);
    const stream = body.stream === true;
    const so = body.stream_options as { include_usage?: unknown } | undefined | null;
    const includeUsage = stream && so !== undefined && so !== null && so.include_usage !== false;
    const tokenLists = prompts.map((p) => promptTokenIds(p));
    const maxTokens =
      optInt(body, chat ? 'max_completion_tokens' : 'max_tokens') ??
      optInt(body, 'max_tokens') ??
      // vLLM's defaults: the rest of the context for chat, 16 for completions.
      (chat ? Math.max(1, engine.maxRequestTokens - Math.max(...tokenLists.map((t) => t.length))) : 16);
    const headerId = req.headers['x-request-id'];
    const baseId = typeof headerId === 'string' && headerId !== '' ? headerId : `${++seq}`;
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${baseId}`;
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const now = Math.floor(Date.now() / 1000);

    const texts = prompts.map(() => '');
    const results: (RequestResult | undefined)[] = prompts.map(() => undefined);
    const engineIds: string[] = [];
    let open = prompts.length;
    let closed = false;
    const pending: string[] = prompts.map(() => '');
    const counts: number[] = prompts.map(() => 0);
    let finished!: () => void;
    const allDone = new Promise<void>((r) => (finished = r));

    const chunk = (choices: unknown[], usage?: unknown) =>
      `data: ${JSON.stringify(usage === undefined ? { id, object, created: now, model: requested, choices } : { id, object, created: now, model: requested, choices, usage })}\n\n`;
    const choice = (index: number, text: string, finish: string | null) =>
      chat ? { index, delta: { content: text }, logprobs: null, finish_reason: finish } : { index, text, logprobs: null, finish_reason: finish };
    const flush = (i: number, finish: string | null) => {
      if (!stream || closed) return;
      if (pending[i] === '' && finish === null) return;
      res.write(chunk([choice(i, pending[i], finish)]));
      pending[i] = '';
    };

    // Submit every prompt first so that a rejected one (too long) fails the whole request.
    try {
      tokenLists.forEach((tokens, i) => {
        const sub = engine.submit({
          id: prompts.length === 1 ? baseId : `${baseId}-${i}`,
          promptTokens: tokens,
          maxTokens,
          lora,
          onToken: (t) => {
            texts[i] += t.text;
            pending[i] += t.text;
            counts[i]++;
            // The first token goes out at once (TTFT), later ones every `interval` tokens; the
            // last one waits for onFinish, which follows in the same step, to carry finish_reason.
            if (counts[i] < maxTokens && (counts[i] === 1 || counts[i] % interval === 0)) flush(i, null);
          },
          onFinish: (r) => {
            results[i] = r;
            if (r.finishReason !== 'abort') flush(i, r.finishReason);
            if (--open === 0) finished();
          },
        });
        engineIds.push(sub.id);
      });
    } catch (e) {
      for (const eid of engineIds) engine.abort(eid);
      if (e instanceof RequestRejectedError) throw new HttpError(400, e.message);
      throw e;
    }
    // A client that goes away aborts its requests (frees their KV blocks).
    res.on('close', () => {
      closed = true;
      if (open > 0) for (const eid of engineIds) engine.abort(eid);
    });

    const headers: Record<string, string> = { 'x-sim-pod': name, 'x-request-id': baseId };
    if (stream) {
      res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      // vLLM's first chat chunk carries the role and no content.
      if (chat) res.write(chunk(prompts.map((_, i) => ({ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }))));
      else res.flushHeaders();
    }
    await allDone;
    if (closed) return;
    const prompt = results.reduce((s, r) => s + (r?.promptTokens ?? 0), 0);
    const completion = results.reduce((s, r) => s + (r?.completionTokens ?? 0), 0);
    const usage: Record<string, unknown> = { prompt_tokens: prompt, total_tokens: prompt + completion, completion_tokens: completion };
    if (details) usage.prompt_tokens_details = { cached_tokens: results.reduce((s, r) => s + (r?.cachedTokens ?? 0), 0) };
    if (stream) {
      if (includeUsage) res.write(chunk([], usage));
      res.end('data: [DONE]\n\n');
      return;
    }
    const choices = results.map((r, i) =>
      chat
        ? { index: i, message: { role: 'assistant', content: texts[i] }, logprobs: null, finish_reason: r?.finishReason ?? 'abort' }
        : { index: i, text: texts[i], logprobs: null, finish_reason: r?.finishReason ?? 'abort' },
    );
    const s = JSON.stringify({ id, object: chat ? 'chat.completion' : 'text_completion', created: now, model: requested, choices, usage });
    res.writeHead(200, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
    res.end(s);
  };

  const models = () => ({
    object: 'list',
    data: [
      { id: model, object: 'model', created, owned_by: 'vllm', root: model, parent: null, max_model_len: engine.maxModelLen },
      ...[...aliases].map((a) => ({ id: a, object: 'model', created, owned_by: 'vllm', root: model, parent: null, max_model_len: engine.maxModelLen })),
      ...[...loras].map((l) => ({ id: l, object: 'model', created, owned_by: 'vllm', root: l, parent: model, max_model_len: engine.maxModelLen })),
    ],
  });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (method === 'POST' && path === '/v1/chat/completions') return generate(req, res, true);
    if (method === 'POST' && path === '/v1/completions') return generate(req, res, false);
    if (method === 'GET' && path === '/metrics') {
      const s = engine.renderMetrics();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(s) });
      res.end(s);
      return;
    }
    if (method === 'GET' && path === '/v1/models') return sendJson(res, 200, models());
    if ((method === 'GET' && path === '/health') || ((method === 'GET' || method === 'POST') && path === '/ping')) {
      res.writeHead(200, { 'content-length': 0 });
      res.end();
      return;
    }
    // Between benchmark runs: abort everything, clear the prefix cache, zero the metrics.
    if (method === 'POST' && (path === '/sim/reset' || path === '/reset_prefix_cache')) {
      if (path === '/sim/reset') engine.reset();
      else if (!engine.kv.reset()) throw new HttpError(409, 'prefix cache in use by running requests', 'ConflictError');
      res.writeHead(200, { 'content-length': 0 });
      res.end();
      return;
    }
    throw new HttpError(404, `no route ${method} ${path}`, 'NotFoundError');
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof HttpError ? e : new HttpError(500, (e as Error).message ?? String(e), 'InternalServerError');
      if (!res.headersSent) sendError(res, err);
      else res.end();
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.requestTimeout = 0;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  if (name === '') name = `${host}:${port}`;
  let dcgmServer: Server | undefined;
  if (opts.dcgmPort !== undefined) {
    const page = new DcgmPage(engine, opts.dcgm);
    dcgmServer = createServer((req, res) => {
      if ((req.url ?? '/').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-length': 0 });
        res.end();
        return;
      }
      const s = page.render();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(s) });
      res.end(s);
    });
    const d = dcgmServer;
    await new Promise<void>((resolve, reject) => {
      d.once('error', reject);
      d.listen(opts.dcgmPort, host, () => {
        d.off('error', reject);
        resolve();
      });
    });
  }
  return {
    name,
    host,
    port,
    dcgmPort: dcgmServer ? (dcgmServer.address() as AddressInfo).port : undefined,
    engine,
    async close() {
      engine.close();
      server.closeAllConnections();
      dcgmServer?.closeAllConnections();
      await Promise.all([new Promise<void>((r) => server.close(() => r())), dcgmServer && new Promise<void>((r) => dcgmServer.close(() => r()))]);
    },
  };
}
