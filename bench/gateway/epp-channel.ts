// The gateway's gRPC client for ext_proc, on node:http2 directly: one HTTP/2
// connection to the EPP (plaintext or TLS), one stream per request, messages
// framed and unframed here. A general gRPC client (grpc-js) spends more CPU per
// stream than the rest of the gateway's ext_proc path (filters, retry buffers,
// metadata objects); a gateway only needs a bidirectional stream of bytes and
// its grpc-status.
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { isIP } from 'node:net';
import { EXT_PROC_SERVICE_NAME } from '../../src/extproc/messages.ts';
import { FRAME_HEADER } from './ext-proc-wire.ts';

export interface EppTls {
  /** PEM CA bundle to verify the EPP's certificate with (default: Node's roots). */
  ca?: Buffer;
  /** Skip certificate verification (llm-epp's default self-signed certificate). */
  insecureSkipVerify?: boolean;
}

export interface EppAddress {
  host: string;
  port: number;
  /** TLS to the EPP; plaintext when absent. */
  tls?: EppTls;
}

/** Receives one stream's messages, then its end (an error unless grpc-status 0). */
export interface StreamSink {
  onMessage(msg: Buffer): void;
  onClose(err: Error | undefined): void;
}

const REQUEST_HEADERS = {
  ':method': 'POST',
  ':path': `/${EXT_PROC_SERVICE_NAME}/Process`,
  'content-type': 'application/grpc',
  te: 'trailers',
  'user-agent': 'llm-epp-bench-gateway',
};
const RECEIVE_WINDOW = 16 << 20;
// Body echoes (≤ 62,000 bytes each) arrive in one DATA frame, not four: fewer reads, no reassembly.
const MAX_FRAME = 1 << 20;

/** Connect options for the EPP's address, shared by the channel and the start-up check. */
export function sessionOptions(a: EppAddress): { authority: string; options: SecureClientSessionOptions } {
  const host = isIP(a.host) === 6 ? `[${a.host}]` : a.host;
  const options: SecureClientSessionOptions = {
    settings: { enablePush: false, initialWindowSize: RECEIVE_WINDOW, maxFrameSize: MAX_FRAME },
    // Bodies of many requests in flight at once; Node's default (10 MB) would reset streams.
    maxSessionMemory: 512,
  };
  if (a.tls) {
    if (a.tls.ca) options.ca = a.tls.ca;
    options.rejectUnauthorized = !a.tls.insecureSkipVerify;
  }
  return { authority: `${a.tls ? 'https' : 'http'}://${host}:${a.port}`, options };
}

export class EppChannel {
  readonly #address: EppAddress;
  #session: ClientHttp2Session | undefined;
  #closed = false;

  constructor(address: EppAddress) {
    this.#address = address;
  }

  /** Open one ext_proc stream. */
  open(sink: StreamSink): EppStream {
    if (this.#closed) throw new Error('EPP channel closed');
    return new EppStream(this.#connection().request(REQUEST_HEADERS, { endStream: false }), sink);
  }

  close(): void {
    this.#closed = true;
    this.#session?.close();
    this.#session = undefined;
  }

  #connection(): ClientHttp2Session {
    const live = this.#session;
    if (live && !live.closed && !live.destroyed) return live;
    const { authority, options } = sessionOptions(this.#address);
    const s = connect(authority, options);
    // Errors reach the streams; the session itself is replaced on the next request.
    s.on('error', () => {});
    const drop = () => {
      if (this.#session === s) this.#session = undefined;
    };
    s.once('close', drop);
    s.once('goaway', drop);
    s.once('connect', () => s.setLocalWindowSize(RECEIVE_WINDOW));
    this.#session = s;
    return s;
  }
}

/** One ext_proc stream: framed writes out, whole messages in. */
export class EppStream {
  readonly #stream: ClientHttp2Stream;
  readonly #sink: StreamSink;
  /** A message being assembled from several DATA chunks. */
  #partial: Buffer | undefined;
  #filled = 0;
  /** The first bytes of a frame header split across chunks. */
  #headBytes: Buffer | undefined;
  #error: Error | undefined;
  #status: string | undefined;

  constructor(stream: ClientHttp2Stream, sink: StreamSink) {
    this.#stream = stream;
    this.#sink = sink;
    stream.on('response', (h: IncomingHttpHeaders) => this.#onStatus(h)); // trailers-only replies carry grpc-status here
    stream.on('trailers', (h: IncomingHttpHeaders) => this.#onStatus(h));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', (err: Error) => (this.#error ??= err));
    stream.once('close', () => this.#onClose());
  }

  write(bufs: Buffer | readonly Buffer[]): void {
    if (this.#stream.destroyed) return;
    if (Buffer.isBuffer(bufs)) this.#stream.write(bufs);
    else for (const b of bufs) this.#stream.write(b);
  }

  /** Half-close: no more messages from the gateway. */
  end(): void {
    if (!this.#stream.destroyed) this.#stream.end();
  }

  cancel(): void {
    if (!this.#stream.destroyed) this.#stream.close(constants.NGHTTP2_CANCEL);
  }

  #onStatus(h: IncomingHttpHeaders): void {
    const status = h['grpc-status'];
    if (typeof status !== 'string') return;
    this.#status = status;
    if (status !== '0') {
      const message = typeof h['grpc-message'] === 'string' ? decodeURIComponent(h['grpc-message']) : '';
      this.#error ??= new Error(`EPP stream failed: grpc-status ${status}${message ? ` (${message})` : ''}`);
    }
  }

  #onData(chunk: Buffer): void {
    let at = 0;
    if (this.#partial) {
      const n = Math.min(this.#partial.length - this.#filled, chunk.length);
      chunk.copy(this.#partial, this.#filled, 0, n);
      this.#filled += n;
      at = n;
      if (this.#filled < this.#partial.length) return;
      const whole = this.#partial;
      this.#partial = undefined;
      this.#sink.onMessage(whole);
    }
    if (this.#headBytes) {
      chunk = Buffer.concat([this.#headBytes, chunk.subarray(at)]);
      this.#headBytes = undefined;
      at = 0;
    }
    while (chunk.length - at >= FRAME_HEADER) {
      if (chunk[at] !== 0) {
        this.#error ??= new Error('EPP sent a compressed gRPC message; the gateway asks for none');
        this.cancel();
        return;
      }
      const len = chunk.readUInt32BE(at + 1);
      at += FRAME_HEADER;
      if (chunk.length - at >= len) {
        this.#sink.onMessage(chunk.subarray(at, at + len));
        at += len;
      } else {
        this.#partial = Buffer.allocUnsafe(len);
        this.#filled = chunk.copy(this.#partial, 0, at);
        return;
      }
    }
    if (at < chunk.length) this.#headBytes = chunk.subarray(at);
  }

  #onClose(): void {
    let err = this.#error;
    if (!err && this.#status === undefined) {
      const code = this.#stream.rstCode;
      err = new Error(code && code !== constants.NGHTTP2_NO_ERROR ? `EPP stream reset (HTTP/2 code ${code})` : 'EPP stream closed without a grpc-status');
    }
    this.#sink.onClose(err);
  }
}
