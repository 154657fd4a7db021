// The echo floor on node:http2 directly, without grpc-js: the same replies as
// bench/epp/echo-server.ts (headers reply with the destination once the body
// has ended, the body echoed as streamed mutations of ≤ 62,000 bytes, response
// headers continued, response chunks echoed), with gRPC's framing done here:
// 5-byte length prefix (compressed flag + big-endian length), content-type
// application/grpc, grpc-status in the trailers. Messages go through llm-epp's
// own codec (src/extproc/proto.ts), exactly as grpc-js calls it in the floor.
//   node bench/grpc-servers/h2-echo.ts --port 0     (prints {"port": N})
import { createServer, constants, type IncomingHttpHeaders, type ServerHttp2Stream, type Settings } from 'node:http2';
import { parseArgs } from 'node:util';
import { EXT_PROC_SERVICE_NAME, chunkBody, continueResponse, destinationMetadata, header, requestHeadersResponse, type ProcessingRequest, type ProcessingResponse } from '../../src/extproc/messages.ts';
import { decodeRequest, encodeResponse } from '../../src/extproc/proto.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    destination: { type: 'string', default: '127.0.0.1:8000' },
    // HTTP/2 settings this server announces (Node's defaults otherwise, as grpc-js's server):
    // a larger frame lets a 16 KB body chunk + its gRPC prefix arrive in one DATA frame instead of two.
    'max-frame-size': { type: 'string' },
    'initial-window-size': { type: 'string' },
  },
});
const DEST = values.destination;
const PATH = `/${EXT_PROC_SERVICE_NAME}/Process`;
/** As the grpc-js floor's grpc.max_receive_message_length. */
const MAX_MESSAGE = 64 << 20;
const PREFIX = 5;

/** gRPC status codes used here. */
const Status = { OK: 0, INTERNAL: 13, UNIMPLEMENTED: 12, RESOURCE_EXHAUSTED: 8 } as const;

/**
 * Splits a stream's DATA into gRPC messages. A message inside one received
 * chunk is returned as a view of it; one spread over several chunks is
 * assembled once, when its last byte has arrived.
 */
class Deframer {
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Length of the message being read; -1 while its prefix is still incomplete. */
  #need = -1;

  /** Feeds a chunk; calls `onMessage` for each complete message. Returns an error text for a frame this server refuses. */
  push(chunk: Buffer, onMessage: (msg: Buffer) => void): string | undefined {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < PREFIX) return undefined;
        if (this.#chunks[0].length < PREFIX) this.#chunks = [Buffer.concat(this.#chunks, this.#buffered)];
        const head = this.#chunks[0];
        if (head[0] !== 0) return 'compressed messages are not supported (no grpc-encoding was negotiated)';
        const len = head.readUInt32BE(1);
        if (len > MAX_MESSAGE) return `message of ${len} bytes exceeds ${MAX_MESSAGE}`;
        this.#need = len;
        this.#drop(PREFIX);
      }
      if (this.#buffered < this.#need) return undefined;
      const msg = this.#take(this.#need);
      this.#need = -1;
      onMessage(msg);
    }
  }

  /** Bytes still held (an incomplete message). */
  get pending(): number {
    return this.#buffered;
  }

  #drop(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const first = this.#chunks[0];
      if (first.length > n) {
        this.#chunks[0] = first.subarray(n);
        return;
      }
      n -= first.length;
      this.#chunks.shift();
    }
  }

  #take(n: number): Buffer {
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length >= n) {
      this.#drop(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }
}

const RESPONSE_HEADERS = { [constants.HTTP2_HEADER_STATUS]: 200, [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' };

/** One ext_proc stream: gRPC framing both ways, and the echo floor's logic. */
class EchoCall {
  readonly #stream: ServerHttp2Stream;
  readonly #deframer = new Deframer();
  #headersSent = false;
  #done = false;
  #status: number = Status.OK;
  #message = '';
  #body: Buffer[] = [];

  constructor(stream: ServerHttp2Stream) {
    this.#stream = stream;
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => this.#finish(Status.OK, ''));
    stream.on('wantTrailers', () => {
      const trailers: Record<string, string> = { 'grpc-status': String(this.#status) };
      if (this.#message) trailers['grpc-message'] = encodeURIComponent(this.#message);
      stream.sendTrailers(trailers);
    });
    stream.on('error', () => {});
  }

  #onData(chunk: Buffer): void {
    if (this.#done) return;
    // Every reply of one DATA chunk leaves in one writev.
    this.#stream.cork();
    const err = this.#deframer.push(chunk, (msg) => {
      let req: ProcessingRequest;
      try {
        req = decodeRequest(msg);
      } catch (e) {
        this.#finish(Status.INTERNAL, `could not decode the request: ${(e as Error).message}`);
        return;
      }
      if (!this.#done) this.#handle(req);
    });
    if (err) this.#finish(err.startsWith('message of') ? Status.RESOURCE_EXHAUSTED : Status.INTERNAL, err);
    process.nextTick(uncork, this.#stream);
  }

  /** The floor's logic, as bench/epp/echo-server.ts. */
  #handle(req: ProcessingRequest): void {
    if (req.request_headers) {
      if (req.request_headers.end_of_stream) this.#send(requestHeadersResponse([header('x-gateway-destination-endpoint', DEST)], destinationMetadata(DEST)));
    } else if (req.request_body) {
      if (req.request_body.body?.length) this.#body.push(req.request_body.body);
      if (req.request_body.end_of_stream) {
        const body = Buffer.concat(this.#body);
        this.#body = [];
        this.#send(requestHeadersResponse([header('x-gateway-destination-endpoint', DEST), header('content-length', String(body.length))], destinationMetadata(DEST)));
        for (const m of chunkBody('request_body', body, true)) this.#send(m);
      }
    } else if (req.response_headers) this.#send(continueResponse('response_headers'));
    else if (req.response_body) {
      for (const m of chunkBody('response_body', req.response_body.body ?? Buffer.alloc(0), req.response_body.end_of_stream === true)) this.#send(m);
    }
  }

  #send(msg: ProcessingResponse): void {
    const s = this.#stream;
    if (s.destroyed || s.closed) return;
    if (!this.#headersSent) {
      this.#headersSent = true;
      s.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    }
    const bytes = encodeResponse(msg);
    const prefix = Buffer.allocUnsafe(PREFIX);
    prefix[0] = 0;
    prefix.writeUInt32BE(bytes.length, 1);
    s.write(prefix);
    s.write(bytes);
  }

  /** End the call with a status: in trailers after the messages, or as a trailers-only response. */
  #finish(status: number, message: string): void {
    if (this.#done) return;
    this.#done = true;
    const s = this.#stream;
    if (s.destroyed || s.closed) return;
    if (status === Status.OK && this.#deframer.pending > 0) {
      status = Status.INTERNAL;
      message = 'the request ended inside a message';
    }
    this.#status = status;
    this.#message = message;
    if (this.#headersSent) s.end();
    else trailersOnly(s, status, message);
  }
}

function uncork(s: ServerHttp2Stream): void {
  s.uncork();
}

function trailersOnly(s: ServerHttp2Stream, status: number, message: string): void {
  const h: Record<string, string | number> = { ...RESPONSE_HEADERS, 'grpc-status': String(status) };
  if (message) h['grpc-message'] = encodeURIComponent(message);
  s.respond(h, { endStream: true });
}

// As grpc-js's server: no header-block limit, no session-memory limit (Node's
// default of 10 MB would reset streams with many bodies in flight).
const settings: Settings = {};
if (values['max-frame-size']) settings.maxFrameSize = Number(values['max-frame-size']);
if (values['initial-window-size']) settings.initialWindowSize = Number(values['initial-window-size']);
const server = createServer({ maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER, maxSessionMemory: Number.MAX_SAFE_INTEGER, settings });
server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
  const type = headers[constants.HTTP2_HEADER_CONTENT_TYPE];
  if (headers[constants.HTTP2_HEADER_METHOD] !== 'POST' || typeof type !== 'string' || !type.startsWith('application/grpc')) {
    stream.on('error', () => {});
    stream.respond({ [constants.HTTP2_HEADER_STATUS]: 415 }, { endStream: true });
    return;
  }
  if (headers[constants.HTTP2_HEADER_PATH] !== PATH) {
    stream.on('error', () => {});
    stream.resume();
    trailersOnly(stream, Status.UNIMPLEMENTED, `unknown method ${headers[constants.HTTP2_HEADER_PATH]}`);
    return;
  }
  new EchoCall(stream);
});
server.on('sessionError', () => {});
server.listen(Number(values.port), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
