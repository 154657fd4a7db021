// An ext_proc client that behaves like Envoy's ext_proc filter, for driving
// the real server in tests. It follows FULL_DUPLEX_STREAMED rules (body chunks
// sent without waiting, replies must come headers → body → trailers, body
// replies only as streamed_response), BUFFERED rules (wait for the headers
// reply, send one body message) and headers-only requests, and it records
// every protocol violation Envoy would reject.
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { ExternalProcessorClient } from '../../bench/lib/ext-proc-client.ts';
import { BUFFERED, FULL_DUPLEX, requestBody, requestHeaders, requestTrailers, responseBody, responseHeaders, responseTrailers } from '../../bench/lib/ext-proc-messages.ts';
import type { ProcessingRequest, ProcessingResponse, PbStruct } from '../../src/extproc/messages.ts';

export { BUFFERED, FULL_DUPLEX };

export interface EnvoyRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Byte offsets at which the body is split into chunks (any position, even inside a UTF-8 character). */
  splitAt?: number[];
  /** Or: chunk size for an even split. */
  chunkSize?: number;
  trailers?: Record<string, string>;
  /** Body mode announced in protocol_config; FULL_DUPLEX by default. */
  mode?: number;
  /** Leave protocol_config out (an Envoy older than 1.33). */
  noProtocolConfig?: boolean;
  /** Subset hint list (envoy.lb.subset_hint / x-gateway-destination-endpoint-subset). */
  subset?: string[];
  response?: EnvoyResponse;
  /** Cancel the stream after sending this many body chunks (client gone mid-body). */
  cancelAfterChunks?: number;
  /** Cancel the stream when this aborts (a client gone while its request waits). */
  cancel?: AbortSignal;
  /**
   * After the request is routed, keep the stream open without sending a
   * response and wait for the EPP's next message, an ImmediateResponse (a
   * routed request the EPP ends itself, e.g. flow control's eviction).
   */
  awaitImmediate?: boolean;
  /** Send header values in `value` (Envoy with send_header_raw_value off) instead of raw_value. */
  useValue?: boolean;
  /**
   * FULL_DUPLEX: wait this long before sending the message that ends the body
   * (the end_of_stream chunk, or the trailers) and count the replies that
   * arrived meanwhile in `repliesBeforeBodyEnd`.
   */
  holdCheckMs?: number;
}

export interface EnvoyResponse {
  status?: number;
  headers?: Record<string, string>;
  chunks: (Buffer | string)[];
  /** metadata envoy.lb x-gateway-destination-endpoint-served */
  served?: string;
  trailers?: Record<string, string>;
}

export interface EnvoyResult {
  /** Headers set by the request-headers reply (or the BUFFERED body reply). */
  setHeaders: Map<string, string>;
  /** Which HeaderValue field each set header used. */
  headerFields: Map<string, 'raw_value' | 'value'>;
  headerValueErrors: string[];
  clearRouteCache: boolean;
  dynamicMetadata: PbStruct | undefined;
  /** Request body as echoed back, concatenated. */
  echoedBody: Buffer;
  echoedChunkSizes: number[];
  immediate: { status: number; body: string; headers: Map<string, string>; headerFields: Map<string, 'raw_value' | 'value'> } | undefined;
  /** With holdCheckMs: replies received before the body's last message was sent. */
  repliesBeforeBodyEnd: number | undefined;
  /** Response body bytes as passed back, per reply. */
  responseEcho: Buffer[];
  /** Headers set on the response by the response-headers reply. */
  responseSetHeaders: Map<string, string>;
  messages: ProcessingResponse[];
  violations: string[];
  /** Milliseconds from the first message to the destination reply. */
  routeLatencyMs: number;
}

export class EnvoyClient {
  readonly #client: InstanceType<typeof ExternalProcessorClient>;

  /** `ownConnection`: a connection of its own (grpc-js otherwise shares one per target between clients). */
  constructor(address: string, opts: { tlsCert?: Buffer; ownConnection?: boolean } = {}) {
    const creds = opts.tlsCert
      ? credentials.createSsl(opts.tlsCert, null, null, { checkServerIdentity: () => undefined })
      : credentials.createInsecure();
    this.#client = new ExternalProcessorClient(address, creds, {
      'grpc.max_send_message_length': 64 << 20,
      'grpc.max_receive_message_length': 64 << 20,
      ...(opts.tlsCert ? { 'grpc.ssl_target_name_override': 'localhost' } : {}),
      ...(opts.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    });
  }

  close(): void {
    this.#client.close();
  }

  async send(req: EnvoyRequest, timeoutMs = 10_000): Promise<EnvoyResult> {
    const call = (this.#client as unknown as { Process(): ClientDuplexStream<ProcessingRequest, ProcessingResponse> }).Process();
    const inbox = new Inbox(call);
    req.cancel?.addEventListener('abort', () => call.cancel(), { once: true });
    const result: EnvoyResult = {
      setHeaders: new Map(),
      headerFields: new Map(),
      headerValueErrors: [],
      clearRouteCache: false,
      dynamicMetadata: undefined,
      echoedBody: Buffer.alloc(0),
      echoedChunkSizes: [],
      immediate: undefined,
      responseEcho: [],
      responseSetHeaders: new Map(),
      messages: inbox.all,
      violations: [],
      routeLatencyMs: 0,
      repliesBeforeBodyEnd: undefined,
    };
    const deadline = Date.now() + timeoutMs;
    const mode = req.mode ?? FULL_DUPLEX;
    const body = typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
    const headersOnly = body === undefined;
    const headers: [string, string][] = [
      [':method', req.method ?? (headersOnly ? 'GET' : 'POST')],
      [':path', req.path ?? '/v1/completions'],
      [':authority', 'gateway.local'],
      [':scheme', 'http'],
      ...Object.entries(req.headers ?? {}),
    ];
    if (body && !req.headers?.['content-type']) headers.push(['content-type', 'application/json']);
    if (body) headers.push(['content-length', String(body.length)]);

    // Envoy announces the configured modes even for a request without a body.
    const first = requestHeaders(headers, { endOfStream: headersOnly, mode: req.noProtocolConfig ? null : mode, useValue: req.useValue });
    if (req.subset) {
      first.metadata_context = {
        filter_metadata: {
          'envoy.lb.subset_hint': {
            fields: { 'x-gateway-destination-endpoint-subset': { listValue: { values: req.subset.map((s) => ({ stringValue: s })) } } },
          },
        },
      };
    }
    const t0 = performance.now();
    call.write(first);

    const chunks = body ? split(body, req) : [];
    const holdCheck = async () => {
      if (req.holdCheckMs === undefined) return;
      await new Promise((r) => setTimeout(r, req.holdCheckMs));
      result.repliesBeforeBodyEnd = inbox.all.length;
    };
    try {
      if (headersOnly) {
        const msg = await inbox.next(deadline);
        result.routeLatencyMs = performance.now() - t0;
        if (!this.#takeImmediate(msg, result)) this.#takeHeaders(msg, result, 'request_headers');
      } else if (mode === BUFFERED) {
        const h = await inbox.next(deadline);
        if (this.#takeImmediate(h, result)) return this.#finish(call, inbox, result, deadline);
        if (!h.request_headers) result.violations.push('BUFFERED: expected a request_headers reply first');
        if (h.dynamic_metadata) result.violations.push('BUFFERED: destination metadata sent before the body');
        call.write(requestBody(body!, !req.trailers));
        const b = await inbox.next(deadline);
        result.routeLatencyMs = performance.now() - t0;
        if (this.#takeImmediate(b, result)) return this.#finish(call, inbox, result, deadline);
        if (!b.request_body) result.violations.push('BUFFERED: expected a request_body reply');
        else {
          if (b.request_body.response?.body_mutation?.streamed_response) result.violations.push('BUFFERED: streamed_response in BUFFERED mode');
          this.#takeHeaders(b, result, 'request_body');
        }
        if (req.trailers) {
          call.write(requestTrailers(Object.entries(req.trailers)));
          const t = await inbox.next(deadline);
          if (!t.request_trailers) result.violations.push('expected request_trailers reply');
        }
      } else {
        // FULL_DUPLEX_STREAMED: send everything without waiting.
        for (let i = 0; i < chunks.length; i++) {
          if (req.cancelAfterChunks !== undefined && i >= req.cancelAfterChunks) {
            call.cancel();
            return result;
          }
          if (i === chunks.length - 1 && !req.trailers) await holdCheck();
          // Envoy attaches the forwarded metadata namespaces to every message.
          call.write({ ...requestBody(chunks[i], !req.trailers && i === chunks.length - 1), metadata_context: first.metadata_context });
        }
        if (chunks.length === 0) call.write(requestBody(Buffer.alloc(0), !req.trailers));
        if (req.trailers) {
          await holdCheck();
          call.write(requestTrailers(Object.entries(req.trailers)));
        }
        const h = await inbox.next(deadline);
        result.routeLatencyMs = performance.now() - t0;
        if (this.#takeImmediate(h, result)) return this.#finish(call, inbox, result, deadline);
        if (!h.request_headers) {
          result.violations.push(`FULL_DUPLEX: first reply must be request_headers, got ${Object.keys(h).join(',')}`);
          return this.#finish(call, inbox, result, deadline);
        }
        this.#takeHeaders(h, result, 'request_headers');
        // Body replies until end_of_stream (or, with trailers, until all bytes are back).
        const echoed: Buffer[] = [];
        let total = 0;
        for (;;) {
          const m = await inbox.next(deadline);
          if (!m.request_body) {
            result.violations.push(`FULL_DUPLEX: expected request_body reply, got ${Object.keys(m).join(',')}`);
            break;
          }
          const mut = m.request_body.response?.body_mutation;
          if (!mut?.streamed_response) {
            result.violations.push('FULL_DUPLEX: body reply without streamed_response (Envoy: spurious message)');
            break;
          }
          if (mut.body !== undefined) result.violations.push('FULL_DUPLEX: plain body mutation');
          const piece = mut.streamed_response.body ?? Buffer.alloc(0);
          if (piece.length > 62_000) result.violations.push(`body reply of ${piece.length} bytes exceeds 62,000`);
          if (m.request_body.response?.header_mutation) result.violations.push('FULL_DUPLEX: header mutation on a body reply is ignored by Envoy');
          echoed.push(piece);
          result.echoedChunkSizes.push(piece.length);
          total += piece.length;
          if (mut.streamed_response.end_of_stream) {
            if (req.trailers) result.violations.push('end_of_stream echoed although the body ended with trailers');
            break;
          }
          if (req.trailers && total >= (body?.length ?? 0)) break;
        }
        result.echoedBody = Buffer.concat(echoed);
        if (req.trailers) {
          const t = await inbox.next(deadline);
          if (!t.request_trailers) result.violations.push(`expected request_trailers reply, got ${Object.keys(t).join(',')}`);
        }
      }

      if (req.awaitImmediate && !result.immediate) {
        const m = await inbox.next(deadline);
        if (!this.#takeImmediate(m, result)) result.violations.push(`expected an immediate response, got ${Object.keys(m).join(',')}`);
        return this.#finish(call, inbox, result, deadline);
      }
      if (req.response) await this.#response(call, inbox, req.response, mode, result, deadline);
    } catch (err) {
      result.violations.push(`client: ${(err as Error).message}`);
      call.cancel();
      return result;
    }
    return this.#finish(call, inbox, result, deadline);
  }

  async #response(
    call: ClientDuplexStream<ProcessingRequest, ProcessingResponse>,
    inbox: Inbox,
    res: EnvoyResponse,
    mode: number,
    result: EnvoyResult,
    deadline: number,
  ): Promise<void> {
    const headers: [string, string][] = [[':status', String(res.status ?? 200)], ...Object.entries(res.headers ?? { 'content-type': 'application/json' })];
    const msg = responseHeaders(headers, res.chunks.length === 0);
    if (res.served) {
      msg.metadata_context = { filter_metadata: { 'envoy.lb': { fields: { 'x-gateway-destination-endpoint-served': { stringValue: res.served } } } } };
    }
    call.write(msg);
    const h = await inbox.next(deadline);
    if (!h.response_headers) result.violations.push(`expected response_headers reply, got ${Object.keys(h).join(',')}`);
    for (const o of h.response_headers?.response?.header_mutation?.set_headers ?? []) {
      result.responseSetHeaders.set(o.header.key, Buffer.from(o.header.raw_value ?? Buffer.from(o.header.value ?? '')).toString());
    }
    const sse = (res.headers?.['content-type'] ?? '').includes('text/event-stream');
    if (mode === FULL_DUPLEX && !sse && res.chunks.length > 0) {
      // Envoy pipelines body chunks without waiting for replies; a processor may hold a JSON response whole.
      let total = 0;
      res.chunks.forEach((c, i) => {
        const buf = typeof c === 'string' ? Buffer.from(c) : c;
        total += buf.length;
        call.write(responseBody(buf, i === res.chunks.length - 1 && !res.trailers));
      });
      void total;
      if (res.trailers) {
        // With trailers, the trailers (sent without waiting) end the body.
        call.write(responseTrailers(Object.entries(res.trailers)));
      }
      for (;;) {
        const m = await inbox.next(deadline);
        if (m.response_trailers) {
          if (!res.trailers) result.violations.push('unexpected response_trailers reply');
          return;
        }
        const s = m.response_body?.response?.body_mutation?.streamed_response;
        if (!s) {
          result.violations.push('response body reply without streamed_response');
          return;
        }
        result.responseEcho.push(s.body ?? Buffer.alloc(0));
        if (s.end_of_stream) {
          if (res.trailers) result.violations.push('end_of_stream echoed although the response ended with trailers');
          break;
        }
      }
    } else for (let i = 0; i < res.chunks.length; i++) {
      const c = res.chunks[i];
      const buf = typeof c === 'string' ? Buffer.from(c) : c;
      const last = i === res.chunks.length - 1 && !res.trailers;
      call.write(responseBody(buf, last));
      if (mode === FULL_DUPLEX) {
        // Streaming: each chunk must come back before the next is sent (SSE pass-through).
        // One reply per ≤ 62,000 bytes of the chunk (a rewrite may change its length, not its reply count).
        const replies = Math.max(1, Math.ceil(buf.length / 62_000));
        for (let k = 0; k < replies; k++) {
          const m = await inbox.next(deadline);
          const s = m.response_body?.response?.body_mutation?.streamed_response;
          if (!s) {
            result.violations.push('response body reply without streamed_response');
            return;
          }
          result.responseEcho.push(s.body ?? Buffer.alloc(0));
          const expectEos = last && k === replies - 1;
          if ((s.end_of_stream === true) !== expectEos) result.violations.push(`response end_of_stream mismatch at chunk ${i}`);
        }
      } else {
        const m = await inbox.next(deadline);
        if (!m.response_body) result.violations.push('expected response_body reply');
      }
    }
    if (res.trailers) {
      call.write(responseTrailers(Object.entries(res.trailers)));
      const t = await inbox.next(deadline);
      if (!t.response_trailers) result.violations.push('expected response_trailers reply');
    }
  }

  #takeImmediate(msg: ProcessingResponse, result: EnvoyResult): boolean {
    const imm = msg.immediate_response;
    if (!imm) return false;
    const headers = new Map<string, string>();
    const headerFields = new Map<string, 'raw_value' | 'value'>();
    for (const o of imm.headers?.set_headers ?? []) {
      const hv = o.header as { key: string; value?: string; raw_value?: Buffer };
      const raw = hv.raw_value !== undefined && hv.raw_value.length > 0;
      if (raw && hv.value) result.headerValueErrors.push(`${hv.key}: both value and raw_value set`);
      headers.set(hv.key, raw ? Buffer.from(hv.raw_value!).toString('utf8') : (hv.value ?? ''));
      headerFields.set(hv.key, raw ? 'raw_value' : 'value');
    }
    result.immediate = { status: imm.status.code, body: Buffer.from(imm.body ?? []).toString(), headers, headerFields };
    return true;
  }

  #takeHeaders(msg: ProcessingResponse, result: EnvoyResult, kind: 'request_headers' | 'request_body'): void {
    const common = msg[kind]?.response;
    result.clearRouteCache = common?.clear_route_cache === true;
    for (const o of common?.header_mutation?.set_headers ?? []) {
      const hv = o.header as { key: string; value?: string; raw_value?: Buffer };
      if (hv.value && hv.raw_value && hv.raw_value.length) result.headerValueErrors.push(`${hv.key}: both value and raw_value set`);
      result.setHeaders.set(hv.key, hv.raw_value && hv.raw_value.length ? Buffer.from(hv.raw_value).toString('utf8') : (hv.value ?? ''));
      result.headerFields.set(hv.key, hv.raw_value && hv.raw_value.length ? 'raw_value' : 'value');
    }
    result.dynamicMetadata = msg.dynamic_metadata;
  }

  async #finish(
    call: ClientDuplexStream<ProcessingRequest, ProcessingResponse>,
    inbox: Inbox,
    result: EnvoyResult,
    deadline: number,
  ): Promise<EnvoyResult> {
    call.end();
    try {
      await inbox.closed(deadline);
    } catch (err) {
      result.violations.push(`stream did not end: ${(err as Error).message}`);
      call.cancel();
    }
    if (inbox.extra.length) result.violations.push(`unexpected extra replies: ${inbox.extra.length}`);
    return result;
  }
}

/** Destination value from dynamic metadata envoy.lb. */
export function metadataDestination(md: PbStruct | undefined): string | undefined {
  return md?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint']?.stringValue;
}

function split(body: Buffer, req: EnvoyRequest): Buffer[] {
  if (req.splitAt) {
    const out: Buffer[] = [];
    let prev = 0;
    for (const at of [...req.splitAt].sort((a, b) => a - b)) {
      if (at <= prev || at >= body.length) continue;
      out.push(body.subarray(prev, at));
      prev = at;
    }
    out.push(body.subarray(prev));
    return out;
  }
  const size = req.chunkSize ?? 16_384; // Envoy's usual read size
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) out.push(body.subarray(i, i + size));
  return out.length ? out : [Buffer.alloc(0)];
}

class Inbox {
  readonly all: ProcessingResponse[] = [];
  readonly extra: ProcessingResponse[] = [];
  #queue: ProcessingResponse[] = [];
  #waiters: (() => void)[] = [];
  #ended = false;
  #error: Error | undefined;

  constructor(call: ClientDuplexStream<ProcessingRequest, ProcessingResponse>) {
    call.on('data', (m: ProcessingResponse) => {
      this.all.push(m);
      this.#queue.push(m);
      this.#wake();
    });
    call.on('end', () => {
      this.#ended = true;
      this.#wake();
    });
    call.on('error', (err: Error) => {
      this.#error = err;
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async next(deadline: number): Promise<ProcessingResponse> {
    for (;;) {
      const m = this.#queue.shift();
      if (m) return m;
      if (this.#ended) throw this.#error ?? new Error('stream ended while waiting for a reply');
      await this.#wait(deadline);
    }
  }

  async closed(deadline: number): Promise<void> {
    while (!this.#ended) await this.#wait(deadline);
    this.extra.push(...this.#queue.splice(0));
    if (this.#error && !/cancel/i.test(this.#error.message)) throw this.#error;
  }

  #wait(deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const ms = deadline - Date.now();
      if (ms <= 0) return reject(new Error('timed out waiting for the server'));
      const t = setTimeout(() => reject(new Error('timed out waiting for the server')), ms);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
