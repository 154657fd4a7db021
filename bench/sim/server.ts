// One simulated vLLM pod as an HTTP server in front of one Engine: the OpenAI routes vLLM
// serves (completions and chat completions, streamed as SSE or not, /v1/models), vLLM's render
// routes (the prompt's token ids, as `vllm launch render` answers them), /health, /ping,
// /metrics and POST /reset_prefix_cache; and the simulator's own controls: /sim/reset (between
// benchmark runs), /sim/restart (a pod restart) and /sim/prefix-match (the benchmark's oracle:
// how much of a prompt this pod's cache holds). Prompts are tokenized by prompts.ts (synthetic
// 4-characters-per-token model, or a real tokenizer), the same way on every route.
// Generation has no EOS: every request runs to its max_tokens (vLLM's ignore_eos).
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Engine, RequestRejectedError, type EngineOptions, type RequestResult } from './engine.ts';
import { PromptError, SYNTHETIC_TOKENIZER, promptTokens, type PromptTokenizer } from './prompts.ts';
import { DcgmPage, type DcgmOptions } from './dcgm.ts';
import { KvEventPublisher } from './kv-publisher.ts';
import type { KvEventFormat } from './kv-batch-encoding.ts';

export { completionPrompts, renderChat } from './prompts.ts';

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
  /** Token model of the prompts (default: the synthetic one). */
  tokenizer?: PromptTokenizer;
  /** Publish KV-cache events as vLLM does (--kv-events-config), on topic kv@<host>:<port>@<model>. */
  kvEvents?: SimKvEventsOptions;
}

export interface SimKvEventsOptions {
  /** Bind the PUB socket on this port of the pod's own address (vLLM's tcp://*:<port>); 0 = any free port. */
  bindPort?: number;
  /** Or connect it to this endpoint (a subscriber that binds, e.g. tcp://127.0.0.1:5557). */
  connect?: string;
  /** Also bind a replay ROUTER on this port of the pod's address; 0 = any free port. */
  replayPort?: number;
  /** Batches kept for replay (vLLM's buffer_steps). */
  bufferSteps?: number;
  /** Messages queued per subscriber before ZMQ drops them (vLLM's hwm). */
  sendHighWaterMark?: number;
  /** Event encoding: 'map' (vLLM ≥ 0.24, default) or 'array' (older vLLM). */
  format?: KvEventFormat;
}

export interface SimPod {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Port of the DCGM-style page, when dcgmPort was given. */
  readonly dcgmPort: number | undefined;
  /** Where its KV events go, when kvEvents was given (bound addresses resolved). */
  readonly kvEvents: { topic: string; endpoint: string; replayEndpoint: string | undefined } | undefined;
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

const MAX_CACHE_SALT = 1024;

/** vLLM's cache_salt: absent, or a non-empty string (bounded here). */
function cacheSaltOf(body: Record<string, unknown>): string | undefined {
  const v = body.cache_salt;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new HttpError(400, "Parameter 'cache_salt' must be a non-empty string if provided.");
  if (v.length > MAX_CACHE_SALT) throw new HttpError(400, `cache_salt is longer than ${MAX_CACHE_SALT} characters`);
  return v;
}

function optInt(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1) throw new HttpError(400, `${key} must be a positive integer`);
  return v as number;
}

let seq = 0;

export async function startSimPod(opts: SimPodOptions): Promise<SimPod> {
  let publisher: KvEventPublisher | undefined;
  const engine = new Engine(opts.kvEvents === undefined ? opts : { ...opts, onKvEvents: (batch) => publisher?.publish(batch) });
  const model = opts.model;
  const loras = new Set(opts.loraModules ?? []);
  const aliases = new Set((opts.servedModelNames ?? [SIMULATED_MODEL]).filter((n) => n !== model));
  const details = opts.enablePromptTokensDetails ?? false;
  const interval = Math.max(1, Math.floor(opts.streamInterval ?? 1));
  const maxBody = opts.maxBodyBytes ?? 32 << 20;
  const tokenizer = opts.tokenizer ?? SYNTHETIC_TOKENIZER;
  const created = Math.floor(Date.now() / 1000);
  let name = opts.name ?? '';

  /** The body's model: the base model (lora undefined) or a LoRA adapter; 404 for others. */
  const modelOf = (body: Record<string, unknown>): { requested: string; lora: string | undefined } => {
    const requested = body.model;
    if (typeof requested !== 'string' || requested === '') throw new HttpError(400, 'model is required');
    const base = requested === model || aliases.has(requested);
    if (!base && !loras.has(requested)) throw new HttpError(404, `The model \`${requested.slice(0, 256)}\` does not exist.`, 'NotFoundError');
    return { requested, lora: base ? undefined : requested };
  };

  /** The body's prompts as token ids, the way every route of this pod reads them. */
  const tokensOf = (body: Record<string, unknown>, chat: boolean): Uint32Array[] => {
    try {
      return promptTokens(tokenizer, body, chat);
    } catch (e) {
      if (e instanceof PromptError) throw new HttpError(400, e.message);
      throw e;
    }
  };

  /** max_tokens (max_completion_tokens for chat) or vLLM's defaults: the rest of the context for chat, 16 for completions. */
  const maxTokensOf = (body: Record<string, unknown>, chat: boolean, tokenLists: readonly Uint32Array[]): number =>
    optInt(body, chat ? 'max_completion_tokens' : 'max_tokens') ??
    optInt(body, 'max_tokens') ??
    (chat ? Math.max(1, engine.maxRequestTokens - Math.max(...tokenLists.map((t) => t.length))) : 16);

  const generate = async (req: IncomingMessage, res: ServerResponse, chat: boolean) => {
    const body = await readJson(req, maxBody);
    const { requested, lora } = modelOf(body);
    const cacheSalt = cacheSaltOf(body);
    const stream = body.stream === true;
    const so = body.stream_options as { include_usage?: unknown } | undefined | null;
    const includeUsage = stream && so !== undefined && so !== null && so.include_usage !== false;
    const prompts = tokensOf(body, chat);
    const maxTokens = maxTokensOf(body, chat, prompts);
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
      prompts.forEach((tokens, i) => {
        const sub = engine.submit({
          id: prompts.length === 1 ? baseId : `${baseId}-${i}`,
          promptTokens: tokens,
          maxTokens,
          lora,
          cacheSalt,
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

  /**
   * vLLM's render routes (vllm/entrypoints/serve/render): the body's prompt as the engine would
   * get it, a GenerateRequest per prompt — chat: one object; completions: a list. Only
   * `token_ids` is meant to be exact (the ids this pod's cache uses); sampling_params carries
   * the fields the simulator models.
   */
  const render = async (req: IncomingMessage, res: ServerResponse, chat: boolean) => {
    const body = await readJson(req, maxBody);
    const { requested } = modelOf(body);
    const cacheSalt = cacheSaltOf(body);
    const prompts = tokensOf(body, chat);
    const maxTokens = maxTokensOf(body, chat, prompts);
    const stream = body.stream === true;
    const num = (k: string, def: number) => (typeof body[k] === 'number' && Number.isFinite(body[k]) ? (body[k] as number) : def);
    const items = prompts.map((ids) => {
      try {
        engine.checkFits(ids.length, maxTokens);
      } catch (e) {
        if (e instanceof RequestRejectedError) throw new HttpError(400, e.message);
        throw e;
      }
      return {
        request_id: `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`,
        token_ids: Array.from(ids),
        features: null,
        sampling_params: { n: 1, temperature: num('temperature', 1), top_p: num('top_p', 1), top_k: num('top_k', 0), max_tokens: maxTokens, ignore_eos: true },
        model: requested,
        stream,
        stream_options: stream && body.stream_options !== undefined ? body.stream_options : null,
        cache_salt: cacheSalt ?? null,
        priority: 0,
        kv_transfer_params: null,
      };
    });
    sendJson(res, 200, chat ? items[0] : items);
  };

  /**
   * The benchmark's oracle, POST /sim/prefix-match with a chat or completions body (one
   * prompt): how many of its leading tokens this pod's prefix cache holds now (full blocks,
   * same model, adapter and cache salt), out of how many. A pure lookup.
   */
  const prefixMatch = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readJson(req, maxBody);
    const { lora } = modelOf(body);
    const cacheSalt = cacheSaltOf(body);
    const prompts = tokensOf(body, body.messages !== undefined);
    if (prompts.length !== 1) throw new HttpError(400, 'prefix-match takes a body with one prompt');
    sendJson(res, 200, { cached_tokens: engine.cachedPrefixTokens(prompts[0], lora, cacheSalt), prompt_tokens: prompts[0].length });
  };

  const restart = async () => {
    engine.restart();
    await publisher?.restart();
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
    const [path, query = ''] = (req.url ?? '/').split('?', 2);
    const method = req.method ?? 'GET';
    if (method === 'POST' && path === '/v1/chat/completions') return generate(req, res, true);
    if (method === 'POST' && path === '/v1/completions') return generate(req, res, false);
    if (method === 'POST' && path === '/v1/chat/completions/render') return render(req, res, true);
    if (method === 'POST' && path === '/v1/completions/render') return render(req, res, false);
    if (method === 'POST' && path === '/sim/prefix-match') return prefixMatch(req, res);
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
    if (method === 'POST' && (path === '/sim/reset' || path === '/sim/restart' || path === '/reset_prefix_cache')) {
      // /sim/reset, between benchmark runs: abort everything, clear the prefix cache, zero the metrics.
      if (path === '/sim/reset') engine.reset();
      // /sim/restart: as a restarted pod, empty without a word; its event stream starts again at 0.
      else if (path === '/sim/restart') await restart();
      // vLLM's: refused (409 here, vLLM ignores the failure) while requests hold blocks, unless
      // ?reset_running_requests=true preempts them first.
      else if (!engine.resetPrefixCache(new URLSearchParams(query).get('reset_running_requests') === 'true')) {
        throw new HttpError(409, 'prefix cache in use by running requests', 'ConflictError');
      }
      res.writeHead(200, { 'content-length': 0 });
      res.end();
      return;
    }
    throw new HttpError(404, `no route ${method.slice(0, 16)} ${path.slice(0, 256)}`, 'NotFoundError');
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
  const closeServers = async () => {
    server.closeAllConnections();
    dcgmServer?.closeAllConnections();
    await Promise.all([new Promise<void>((r) => server.close(() => r())), dcgmServer && new Promise<void>((r) => dcgmServer!.close(() => r()))]);
  };
  try {
    if (opts.dcgmPort !== undefined) dcgmServer = await startDcgmServer(new DcgmPage(engine, opts.dcgm), host, opts.dcgmPort);
    if (opts.kvEvents !== undefined) publisher = startPublisher(opts.kvEvents, host, `kv@${host}:${port}@${model}`);
  } catch (e) {
    await closeServers();
    throw e;
  }
  return {
    name,
    host,
    port,
    dcgmPort: dcgmServer ? (dcgmServer.address() as AddressInfo).port : undefined,
    kvEvents: publisher && { topic: publisher.topic, endpoint: publisher.endpoint, replayEndpoint: publisher.replayEndpoint },
    engine,
    async close() {
      engine.close();
      publisher?.close();
      await closeServers();
    },
  };
}

async function startDcgmServer(page: DcgmPage, host: string, port: number): Promise<Server> {
  const d = createServer((req, res) => {
    if ((req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
      return;
    }
    const s = page.render();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(s) });
    res.end(s);
  });
  await new Promise<void>((resolve, reject) => {
    d.once('error', reject);
    d.listen(port, host, () => {
      d.off('error', reject);
      resolve();
    });
  });
  return d;
}

/** The pod's KV-event publisher: bound on its own address (port 0: any free one) or connected out. */
function startPublisher(o: SimKvEventsOptions, host: string, topic: string): KvEventPublisher {
  const local = (p: number) => `tcp://${host.includes(':') ? `[${host}]` : host}:${p === 0 ? '*' : p}`;
  const endpoint = o.connect ?? local(o.bindPort ?? 0);
  try {
    return new KvEventPublisher({
      endpoint,
      // On its own address a pod binds even a plain host:port (vLLM binds only wildcards: in a
      // cluster every pod binds tcp://*:P in its own network namespace).
      bind: o.connect === undefined,
      topic,
      format: o.format ?? 'map',
      ...(o.replayPort !== undefined ? { replayEndpoint: local(o.replayPort) } : {}),
      ...(o.bufferSteps !== undefined ? { bufferSteps: o.bufferSteps } : {}),
      ...(o.sendHighWaterMark !== undefined ? { sendHighWaterMark: o.sendHighWaterMark } : {}),
    });
  } catch (e) {
    throw new Error(`KV events on ${endpoint}${o.replayPort !== undefined ? ` (replay ${local(o.replayPort)})` : ''}: ${(e as Error).message}`);
  }
}
