// The vLLM render client against a real HTTP server on 127.0.0.1 that answers the way
// vLLM's /v1/completions/render and /v1/chat/completions/render do — and the ways a
// server can fail: slow, HTTP errors, bad JSON, an answer too large, nobody listening.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RenderError, VllmRenderClient, type VllmRenderOptions } from '../src/tokenize/vllm-render.ts';

type Handler = (req: IncomingMessage, body: Record<string, unknown>, res: ServerResponse) => void;

let server: Server;
let handler: Handler;
let baseUrl: string;
const seen: { path: string; body: Record<string, unknown> }[] = [];
const clients: VllmRenderClient[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      seen.push({ path: req.url ?? '', body });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  seen.length = 0;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function client(opts: Partial<VllmRenderOptions> = {}): VllmRenderClient {
  const c = new VllmRenderClient({ url: baseUrl, modelName: 'Qwen/Qwen2.5-7B-Instruct', timeoutMs: 2000, mmTimeoutMs: 5000, ...opts });
  clients.push(c);
  return c;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** Answers like vLLM's render endpoints: a list for completions, one object for chat. */
const vllmLike: Handler = (req, body, res) => {
  const generate = (ids: number[]) => ({ request_id: 'x', token_ids: ids, features: null, sampling_params: {}, model: body.model, stream: false });
  if (req.url?.endsWith('/v1/completions/render')) json(res, 200, [generate([9707, 1879]), generate([1])]);
  else json(res, 200, generate([151644, 872, 198]));
};

async function failure(p: Promise<unknown>): Promise<RenderError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RenderError);
  return err as RenderError;
}

describe('VllmRenderClient', () => {
  it("returns the first prompt's ids for completions and the chat's ids, sending the body with the configured model", async () => {
    handler = vllmLike;
    const c = client({ url: `${baseUrl}/` });
    expect(await c.renderCompletion({ model: 'alias', prompt: ['Hello world', 'x'], max_tokens: 5 })).toEqual(Uint32Array.from([9707, 1879]));
    expect(await c.renderChat({ model: 'alias', messages: [{ role: 'user', content: 'hi' }] })).toEqual(Uint32Array.from([151644, 872, 198]));
    expect(seen.map((s) => s.path)).toEqual(['/v1/completions/render', '/v1/chat/completions/render']);
    expect(seen[0].body).toEqual({ model: 'Qwen/Qwen2.5-7B-Instruct', prompt: ['Hello world', 'x'], max_tokens: 5 });
    expect(seen[1].body.model).toBe('Qwen/Qwen2.5-7B-Instruct');
  });

  it('keeps a path prefix of the base URL', async () => {
    handler = vllmLike;
    await client({ url: `${baseUrl}/render-svc` }).renderChat({ messages: [] });
    expect(seen[0].path).toBe('/render-svc/v1/chat/completions/render');
  });

  it("times out ('timeout') on a server that does not answer, and gives media chats the longer deadline", async () => {
    const delayed: Handler = (req, body, res) => {
      setTimeout(() => vllmLike(req, body, res), 300);
    };
    handler = delayed;
    const c = client({ timeoutMs: 50, mmTimeoutMs: 5000 });
    const err = await failure(c.renderChat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] }));
    expect(err.reason).toBe('timeout');
    expect(err.message).toMatch(/did not answer within 50 ms/);
    const media = { messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'http://x/cat.png' } }] }] };
    expect(await c.renderChat(media)).toEqual(Uint32Array.from([151644, 872, 198]));
    expect((await failure(c.renderCompletion({ prompt: 'hi' }))).reason).toBe('timeout');
  });

  it("reports a non-2xx answer as 'http' without quoting its body", async () => {
    handler = (_req, _body, res) => json(res, 500, { error: { message: 'secret prompt text echoed', code: 500 } });
    const err = await failure(client().renderCompletion({ prompt: 'secret prompt text' }));
    expect(err.reason).toBe('http');
    expect(err.message).toMatch(/answered HTTP 500/);
    expect(err.message).not.toContain('secret');
  });

  it("reports invalid JSON and the wrong shape as 'invalid'", async () => {
    const c = client();
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"token_ids": [1, 2');
    };
    expect((await failure(c.renderChat({ messages: [] }))).message).toMatch(/invalid JSON/);
    for (const answer of [{ token_ids: [1, -2] }, { token_ids: [] }, { ids: [1] }, [{ token_ids: [1.5] }], []]) {
      handler = (_req, _body, res) => json(res, 200, answer);
      const err = await failure(Array.isArray(answer) ? c.renderCompletion({ prompt: 'x' }) : c.renderChat({ messages: [] }));
      expect(err.reason).toBe('invalid');
    }
    handler = (_req, _body, res) => json(res, 200, { token_ids: [1] });
    expect((await failure(c.renderCompletion({ prompt: 'x' }))).message).toMatch(/non-empty list/);
  });

  it("refuses an answer over the byte cap ('invalid')", async () => {
    handler = (_req, _body, res) => json(res, 200, { token_ids: Array.from({ length: 50_000 }, (_, i) => i) });
    const err = await failure(client({ maxResponseBytes: 64 * 1024 }).renderChat({ messages: [] }));
    expect(err.reason).toBe('invalid');
    expect(err.message).toMatch(/larger than 65536 bytes/);
  });

  it("reports a server nobody listens on as 'unreachable'", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const err = await failure(client({ url: `http://127.0.0.1:${port}` }).renderChat({ messages: [] }));
    expect(err.reason).toBe('unreachable');
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it("rejects with the caller's abort, not a RenderError", async () => {
    handler = (req, body, res) => setTimeout(() => vllmLike(req, body, res), 300);
    const ac = new AbortController();
    const p = client().renderChat({ messages: [] }, ac.signal);
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('checks its options', () => {
    expect(() => client({ url: 'not a url' })).toThrow(/is not a URL/);
    expect(() => client({ url: 'ftp://x' })).toThrow(/http:\/\/ or https:\/\//);
    expect(() => client({ timeoutMs: 0 })).toThrow(/timeoutMs must be positive/);
  });
});
