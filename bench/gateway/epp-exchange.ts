// One request through the EPP, as Envoy runs it in FULL_DUPLEX_STREAMED mode:
// request headers and body chunks go to the EPP as they arrive; its headers
// reply names the destination (and the fallbacks) and its body echo is the
// body to send; the upstream's response headers and chunks go to the EPP as
// they arrive and its replies go out to the client. Driven by callbacks from
// both sides: no promise or stream object per message.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Agent } from 'undici';
import type { ProcessingResponse } from '../../src/extproc/messages.ts';
import type { EppChannel, EppStream, StreamSink } from './epp-channel.ts';
import { decodeMessage, encodeBody, encodeHeaders, mutationValue, readStreamedBody, type StreamedBody } from './ext-proc-wire.ts';
import { clientHeaders, isHopByHop, replyError, responseHeaders } from './http-util.ts';
import type { StatsRecorder } from './stats.ts';
import { UpstreamCall, type InFlight, type UpstreamSink } from './upstream.ts';

export interface ExchangeContext {
  channel: EppChannel;
  agent: Agent;
  inFlight: InFlight;
  served: Map<string, number>;
  stats: StatsRecorder;
}

const DESTINATION = 'x-gateway-destination-endpoint';
// Waiting for: the headers reply, the request body echo, the response headers reply, the response body echo.
const HEADERS = 0;
const REQUEST_BODY = 1;
const RESPONSE_HEADERS = 2;
const RESPONSE_BODY = 3;
const DONE = 4;

export class EppExchange implements StreamSink, UpstreamSink {
  readonly #ctx: ExchangeContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #stream: EppStream;
  readonly #hasBody: boolean;
  /** The client's headers, flat, without hop-by-hop ones. */
  readonly #headers: string[];
  #phase = HEADERS;
  /** The request chunk held back so the last one can carry end_of_stream. */
  #held: Buffer | undefined;
  #destination = '';
  #body: Buffer[] = [];
  #bodyBytes = 0;
  #upstream: UpstreamCall | undefined;
  #target = '';
  #status = 0;
  #upstreamHeaders: Record<string, string | string[] | undefined> = {};
  /** Response bytes still to come when the upstream gave a content-length (-1: unknown). */
  #remaining = -1;
  #eosSent = false;
  #clientBlocked = false;

  constructor(ctx: ExchangeContext, req: IncomingMessage, res: ServerResponse) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#headers = clientHeaders(req.rawHeaders);
    const method = req.method ?? 'GET';
    this.#hasBody = method !== 'GET' && method !== 'HEAD';
    const pairs = [':method', method, ':path', req.url ?? '/', ':authority', rawHost(req.rawHeaders), ':scheme', 'http', ...this.#headers];
    this.#stream = ctx.channel.open(this);
    this.#stream.write(encodeHeaders('request', { pairs, endOfStream: !this.#hasBody, protocolConfig: true }));
    if (this.#hasBody) {
      req.on('data', (chunk: Buffer) => this.#onRequestData(chunk));
      req.once('end', () => this.#onRequestEnd());
    }
    res.once('close', () => {
      if (this.#phase !== DONE) this.#abort(new Error('client went away'));
    });
  }

  #onRequestData(chunk: Buffer): void {
    if (this.#phase === DONE) return;
    if (this.#held) this.#stream.write(encodeBody('request', this.#held, false));
    this.#held = chunk;
  }

  #onRequestEnd(): void {
    if (this.#phase === DONE) return;
    this.#stream.write(encodeBody('request', this.#held, true));
    this.#held = undefined;
  }

  // ---- EPP side ----

  onMessage(msg: Buffer): void {
    if (this.#phase === DONE) return;
    try {
      const streamed = readStreamedBody(msg);
      if (streamed) return this.#onBody(streamed);
      const m = decodeMessage(msg);
      if (m.immediate_response) return this.#immediate(m);
      const body = (m.request_body ?? m.response_body)?.response?.body_mutation?.streamed_response;
      if (body) return this.#onBody({ which: m.request_body ? 'request' : 'response', body: body.body ?? Buffer.alloc(0), endOfStream: body.end_of_stream === true });
      if (m.request_headers && this.#phase === HEADERS) return this.#onHeadersReply(m);
      if (m.response_headers && this.#phase === RESPONSE_HEADERS) return this.#onResponseHeadersReply(m);
      throw new Error(`unexpected EPP reply ${Object.keys(m).filter((k) => (m as Record<string, unknown>)[k] != null).join(',')} while waiting for ${['headers', 'the request body', 'response headers', 'the response body'][this.#phase]}`);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  onClose(err: Error | undefined): void {
    if (this.#phase === DONE) return;
    this.#fail(err ?? new Error('EPP stream ended before the response'));
  }

  #immediate(m: ProcessingResponse): void {
    const imm = m.immediate_response!;
    const headers: string[] = ['content-type', 'application/json'];
    for (const o of imm.headers?.set_headers ?? []) {
      const key = o.header.key.toLowerCase();
      if (key.charCodeAt(0) !== 58 && !isHopByHop(key)) setHeader(headers, key, mutationValue(o.header));
    }
    this.#res.writeHead(imm.status?.code || 500, headers).end(imm.body);
    this.#finish();
    this.#stream.end();
  }

  #onHeadersReply(m: ProcessingResponse): void {
    for (const o of m.request_headers?.response?.header_mutation?.set_headers ?? []) {
      const key = o.header.key.toLowerCase();
      const value = mutationValue(o.header);
      if (key === DESTINATION) this.#destination = value;
      else if (key.charCodeAt(0) !== 58 /* ':' */ && !isHopByHop(key)) setHeader(this.#headers, key, value);
    }
    if (this.#hasBody) this.#phase = REQUEST_BODY;
    else this.#forward();
  }

  #onBody(b: StreamedBody): void {
    if (b.which === 'request' && this.#phase === REQUEST_BODY) {
      if (b.body.length > 0) {
        this.#body.push(b.body);
        this.#bodyBytes += b.body.length;
      }
      if (b.endOfStream) this.#forward();
    } else if (b.which === 'response' && this.#phase === RESPONSE_BODY) {
      if (b.body.length > 0 && !this.#res.write(b.body)) this.#pauseUntilDrain();
      if (b.endOfStream) {
        this.#finish();
        this.#res.end();
        this.#stream.end();
      }
    } else throw new Error(`unexpected ${b.which} body from the EPP`);
  }

  #forward(): void {
    this.#phase = RESPONSE_HEADERS;
    const targets = this.#destination.split(',').filter(Boolean);
    let body: Buffer | Buffer[] | null = null;
    if (this.#body.length === 1) body = this.#body[0];
    else if (this.#body.length > 1) {
      body = this.#body;
      this.#headers.push('content-length', String(this.#bodyBytes));
    }
    this.#upstream = new UpstreamCall(this.#ctx.agent, this.#ctx.inFlight, targets, { method: this.#req.method ?? 'GET', path: this.#req.url ?? '/', headers: this.#headers, body }, this);
  }

  // ---- upstream side ----

  onStart(target: string, status: number, headers: Record<string, string | string[] | undefined>): void {
    this.#target = target;
    this.#status = status;
    this.#upstreamHeaders = headers;
    this.#ctx.served.set(target, (this.#ctx.served.get(target) ?? 0) + 1);
    const pairs = [':status', String(status)];
    for (const k in headers) {
      const v = headers[k];
      if (typeof v === 'string') pairs.push(k, v);
      else if (v) for (const one of v) pairs.push(k, one);
    }
    const length = headers['content-length'];
    if (typeof length === 'string' && /^\d+$/.test(length)) this.#remaining = Number(length);
    this.#stream.write(encodeHeaders('response', { pairs, endOfStream: false, served: target }));
  }

  onData(chunk: Buffer): boolean {
    let eos = false;
    if (this.#remaining >= 0) {
      this.#remaining -= chunk.length;
      eos = this.#remaining <= 0;
    }
    this.#eosSent ||= eos;
    this.#stream.write(encodeBody('response', chunk, eos));
    return !this.#clientBlocked;
  }

  onEnd(): void {
    if (!this.#eosSent) this.#stream.write(encodeBody('response', undefined, true));
    this.#eosSent = true;
  }

  onError(err: Error): void {
    this.#fail(err);
  }

  #onResponseHeadersReply(m: ProcessingResponse): void {
    // The body passes through the EPP, which may change it: chunked to the client (no content-length).
    const out = responseHeaders(this.#upstreamHeaders);
    for (const o of m.response_headers?.response?.header_mutation?.set_headers ?? []) {
      const key = o.header.key.toLowerCase();
      if (key.charCodeAt(0) !== 58 && !isHopByHop(key)) setHeader(out, key, mutationValue(o.header));
    }
    out.push('x-llm-epp-endpoint', this.#target);
    this.#res.writeHead(this.#status, out);
    this.#phase = RESPONSE_BODY;
  }

  #pauseUntilDrain(): void {
    // Bytes already with the EPP keep coming back; the pod is paused at its next chunk until the client drains.
    if (this.#clientBlocked) return;
    this.#clientBlocked = true;
    this.#res.once('drain', () => {
      this.#clientBlocked = false;
      this.#upstream?.resume();
    });
  }

  #finish(): void {
    this.#phase = DONE;
    this.#ctx.stats.requests++;
  }

  #fail(err: Error): void {
    if (this.#phase === DONE) return;
    this.#finish();
    this.#stream.cancel();
    this.#upstream?.abort(err);
    if (!this.#res.headersSent) {
      this.#ctx.stats.errors++;
      replyError(this.#res, 502, `gateway: ${err.message}`);
    } else this.#res.destroy(err);
  }

  #abort(err: Error): void {
    this.#phase = DONE;
    this.#stream.cancel();
    this.#upstream?.abort(err);
  }
}

/** The Host header from raw headers (the request's :authority), without building req.headers. */
function rawHost(raw: readonly string[]): string {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') return raw[i + 1];
  return 'gateway';
}

/** Set a header in a flat list: replace the first value of that name, or add it. */
function setHeader(flat: string[], key: string, value: string): void {
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i] === key) {
      flat[i + 1] = value;
      return;
    }
  }
  flat.push(key, value);
}
