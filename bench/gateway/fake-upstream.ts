// A model server that answers instantly, for measuring what sits in front of
// it (the benchmark gateway, a plain proxy): POST /v1/chat/completions gets a
// streamed SSE answer of `sseChunks` events, `sseGapMs` apart as tokens are
// (0: each on its own turn of the event loop); anything else POSTed gets a small
// completion JSON. The request body is read and dropped. Responses are built
// once, so the upstream's own CPU stays small and constant.
//
//   node bench/gateway/fake-upstream.ts --port 0 --sse-chunks 16 --sse-gap-ms 1   (prints {"port": N})
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

export interface UpstreamShape {
  /** SSE events in a chat answer, [DONE] included (≥ 2). */
  sseChunks: number;
  /** Time between SSE events, ms (0: the next turn of the event loop). */
  sseGapMs?: number;
}

export interface Answers {
  json: Buffer;
  gapMs: number;
  sse: Buffer[];
  /** Bytes of the SSE answer, for clients that check they got all of it. */
  sseBytes: number;
}

export function buildAnswers(o: UpstreamShape): Answers {
  const json = Buffer.from(
    JSON.stringify({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'sim-model', choices: [{ index: 0, text: ' hello world', finish_reason: 'stop' }], usage: { prompt_tokens: 256, completion_tokens: 3, total_tokens: 259 } }),
  );
  const sse: Buffer[] = [];
  for (let i = 0; i < o.sseChunks - 2; i++) {
    sse.push(Buffer.from(`data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'sim-model', choices: [{ index: 0, delta: { content: `tok${i} ` } }] })}\n\n`));
  }
  sse.push(Buffer.from(`data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'sim-model', choices: [], usage: { prompt_tokens: 256, completion_tokens: o.sseChunks - 2, total_tokens: 254 + o.sseChunks } })}\n\n`));
  sse.push(Buffer.from('data: [DONE]\n\n'));
  return { json, gapMs: o.sseGapMs ?? 0, sse, sseBytes: sse.reduce((n, b) => n + b.length, 0) };
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

/** Answer one request (used by this server and by the bench:epp fleet's pods). */
export function answer(a: Answers, req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.once('end', () => {
    if (!req.url?.startsWith('/v1/chat/completions')) {
      res.writeHead(200, JSON_HEADERS).end(a.json);
      return;
    }
    res.writeHead(200, SSE_HEADERS);
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      res.write(a.sse[i++]);
      if (i >= a.sse.length) res.end();
      else if (a.gapMs > 0) setTimeout(next, a.gapMs);
      else setImmediate(next);
    };
    next();
  });
}

export function startUpstream(o: UpstreamShape, port = 0, host = '127.0.0.1'): Promise<Server> {
  const a = buildAnswers(o);
  const server = createServer((req, res) => answer(a, req, res));
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, 'sse-chunks': { type: 'string', default: '16' }, 'sse-gap-ms': { type: 'string', default: '1' } } });
  const chunks = Number(values['sse-chunks']);
  const gap = Number(values['sse-gap-ms']);
  if (!Number.isInteger(chunks) || chunks < 2 || !(gap >= 0)) {
    process.stderr.write(`fake-upstream: --sse-chunks must be an integer >= 2 and --sse-gap-ms a number >= 0, got "${values['sse-chunks']}", "${values['sse-gap-ms']}"\n`);
    process.exit(2);
  }
  const server = await startUpstream({ sseChunks: chunks, sseGapMs: gap }, Number(values.port));
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
  process.on('SIGTERM', () => process.exit(0));
}
