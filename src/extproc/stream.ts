// One ext_proc stream = one HTTP request, in any of the body modes a gateway
// may be configured with. This file speaks ext_proc only: it reads frames,
// holds the headers reply until the body ends, hands the request to the
// director (request control decides everything else), answers with the
// destination header and metadata, echoes the body, passes the response
// through (restoring a rewritten model name), and tells the director what the
// response does.
import { randomUUID } from 'node:crypto';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { asEppError, type Director, type Routing } from '../request-control/director.ts';
import { EppError, dropped, openAIErrorBody } from '../errors.ts';
import type { Logger } from '../log.ts';
import { bounded } from '../observability/bounded.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import { ModelRestorer } from '../request-control/model-restorer.ts';
import type { RequestBody } from '../openai/request-body.ts';
import { BodyBuffer, type BufferBudget } from './body-buffer.ts';
import { tooLargeSize } from './message-limit.ts';
import type { StreamTracker, TrackedStream } from './stream-tracker.ts';
import {
  BodySendMode,
  DESTINATION_HEADER,
  DESTINATION_NAMESPACE,
  SERVED_KEY,
  chunkBody,
  continueResponse,
  destinationMetadata,
  echoedHeaders,
  header,
  immediateResponse,
  metadataValue,
  readHeaders,
  requestHeadersResponse,
  subsetHint,
  trailersResponse,
  type HttpBody,
  type HeaderValue,
  type HttpHeaders,
  type ProcessingRequest,
  type ProcessingResponse,
} from './messages.ts';
import type { Span } from '@opentelemetry/api';
import { endSpan, type RequestTrace } from '../observability/spans.ts';
import type { Tracing } from '../observability/tracing.ts';

export interface StreamContext {
  director: Director;
  metrics: EppMetrics;
  log: Logger;
  maxRequestBodyBytes: number;
  /** Bytes of a non-streaming JSON response held to restore a rewritten model name. */
  maxResponseUsageBytes: number;
  /** Add x-gateway-destination-endpoint-scores to the envoy.lb metadata. */
  emitEndpointScores: boolean;
  /** Process-wide cap on request bytes held while bodies stream in. */
  bufferBudget: BufferBudget;
  /** Open streams: idle timeout and drain. */
  streams: StreamTracker;
  /** --tracing: starts each request's gateway.request span. */
  tracing?: Pick<Tracing, 'startRequest'>;
}

type Call = ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

/** Messages held while request control waits on a producer (Envoy sends at most the request trailers). */
const MAX_QUEUED_WHILE_PENDING = 8;

export class ExtProcStream implements TrackedStream {
  lastActivity = performance.now();
  readonly #call: Call;
  readonly #ctx: StreamContext;

  #closed = false;
  #ended = false;
  #observeOnly = false;
  #requestBodyMode: number | undefined;
  #responseBodyMode: number | undefined;
  #metadata: ProcessingRequest['metadata_context'];

  // Request path.
  readonly #headers = new Map<string, string>();
  readonly #dupHeaders = new Set<string>();
  readonly #originalHeaders = new Map<string, HeaderValue>();
  /** Envoy sends and reads header values as raw_value (else as value). */
  #rawHeaders = true;
  #requestId = '';
  #requestIdGenerated = false;
  #path = '/';
  #receivedAt = 0;
  readonly #body: BodyBuffer;
  #requestDone = false;
  #sawRequestHeaders = false;
  /** STREAMED / BUFFERED_PARTIAL: routed on headers, body chunks just continue. */
  #passBody = false;

  // After routing.
  /** Set once routed; `released` once request control has let it go. */
  #routing: Routing | undefined;
  /** Request control is waiting on a producer (tokenization, a burst window). */
  #pending = false;
  /** Messages that arrived while pending (request trailers), handled once routed. */
  #queued: ProcessingRequest[] = [];
  /** Aborts the pending request's producers when the stream goes. */
  #abort: AbortController | undefined;

  /** Puts the client's model name back into the response after a rewrite. */
  #restorer: ModelRestorer | undefined;

  /** gateway.request, while the request is traced. */
  #span: Span | undefined;
  #trace: RequestTrace | undefined;

  constructor(call: Call, ctx: StreamContext) {
    this.#call = call;
    this.#ctx = ctx;
    this.#body = new BodyBuffer(ctx.bufferBudget, ctx.maxRequestBodyBytes);
    ctx.streams.add(this);
    call.on('data', (req: ProcessingRequest) => this.#onMessage(req));
    // Envoy half-closed: finish our side too so the stream never hangs.
    call.on('end', () => {
      this.#release();
      this.#end();
    });
    call.on('cancelled', () => this.#release());
    call.on('error', (err) => {
      this.#ctx.log.debug({ err: err.message, requestId: this.#requestId }, 'ext_proc stream error');
      this.#release();
    });
    call.on('close', () => this.#release());
  }

  #onMessage(req: ProcessingRequest): void {
    if (this.#closed) return;
    this.lastActivity = performance.now();
    if (this.#pending) {
      // Envoy sends nothing but request trailers before our reply; more is a peer bug.
      if (this.#queued.length < MAX_QUEUED_WHILE_PENDING) this.#queued.push(req);
      else this.#fail(new EppError('BadRequest', 'ext_proc protocol error: too many messages while the request was being routed'));
      return;
    }
    try {
      const tooLarge = tooLargeSize(req);
      if (tooLarge !== undefined) {
        this.#ctx.metrics.streamsEnded.inc({ reason: 'message_too_large' });
        if (this.#routing) throw new EppError('Internal', `ext_proc message of ${tooLarge} bytes is over llm-epp's message limit`);
        throw new EppError('PayloadTooLarge', `request body exceeds ${this.#ctx.maxRequestBodyBytes} bytes`);
      }
      if (req.protocol_config) {
        this.#requestBodyMode = req.protocol_config.request_body_mode ?? BodySendMode.NONE;
        this.#responseBodyMode = req.protocol_config.response_body_mode ?? BodySendMode.NONE;
      }
      if (req.observability_mode) this.#observeOnly = true;
      if (req.metadata_context) this.#metadata = req.metadata_context;
      switch (req.request) {
        case 'request_headers':
          return this.#onRequestHeaders(req.request_headers ?? {});
        case 'request_body':
          return this.#onRequestBody(req.request_body ?? {});
        case 'request_trailers':
          return this.#onRequestTrailers();
        case 'response_headers':
          return this.#onResponseHeaders(req, req.response_headers ?? {});
        case 'response_body': {
          // The handler's own time, for llm_d_epp_response_processing_duration_seconds
          // (the last chunk's slice lands after the request has been recorded, and is left out).
          const t = performance.now();
          this.#onResponseBody(req.response_body ?? {});
          if (this.#routing) this.#ctx.director.responseHandled(this.#routing, performance.now() - t);
          return;
        }
        case 'response_trailers':
          // Trailers end the body: what is still held goes out first.
          this.#sendBody(this.#restorer?.flush(), false);
          this.#send(trailersResponse('response_trailers'));
          return this.#complete();
        default:
          throw new EppError('BadRequest', 'ProcessingRequest without a request phase');
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  // ---- request path ----

  #onRequestHeaders(h: HttpHeaders): void {
    // One stream is one request: a second request_headers is a protocol error
    // (a routed stream is also refused by #route, whatever came first).
    if (this.#sawRequestHeaders) {
      this.#ctx.metrics.streamsEnded.inc({ reason: 'protocol_error' });
      throw new EppError('BadRequest', 'ext_proc protocol error: request_headers received twice on one stream');
    }
    this.#sawRequestHeaders = true;
    this.#receivedAt = performance.now();
    this.#rawHeaders = readHeaders(h, this.#headers, this.#dupHeaders, this.#originalHeaders);
    const id = this.#headers.get('x-request-id');
    if (id) this.#requestId = bounded(id);
    else {
      this.#requestId = randomUUID();
      this.#requestIdGenerated = true;
    }
    this.#path = this.#headers.get(':path') ?? '/';
    const traced = this.#ctx.tracing?.startRequest(this.#headers, this.#requestId);
    if (traced) {
      this.#span = traced.span;
      this.#trace = traced.trace;
    }

    const mode = this.#requestBodyMode;
    if (h.end_of_stream || mode === BodySendMode.NONE) {
      // No body will come (GET /v1/models, or body mode NONE): answer now.
      this.#requestDone = true;
      this.#route(undefined, 'headers');
    } else if (mode === BodySendMode.STREAMED || mode === BodySendMode.BUFFERED_PARTIAL) {
      // Envoy waits for this reply before sending any body: route on headers.
      this.#requestDone = true;
      this.#passBody = true;
      this.#route(undefined, 'headers');
    } else if (mode === BodySendMode.BUFFERED) {
      // Envoy waits for this reply before sending the (single) body message;
      // the destination goes on the body reply, where BUFFERED honours it.
      this.#send(continueResponse('request_headers'));
    }
    // FULL_DUPLEX_STREAMED (or an Envoy too old to say): hold the reply.
  }

  #onRequestBody(b: HttpBody): void {
    if (this.#passBody) {
      this.#send(continueResponse('request_body'));
      return;
    }
    if (this.#requestDone) return;
    if (b.body) this.#body.append(b.body);
    // BUFFERED sends the whole body in one message; with trailers its
    // end_of_stream is false and Envoy waits for our reply before the trailers.
    if (b.end_of_stream || this.#requestBodyMode === BodySendMode.BUFFERED) this.#finishRequestBody(b.end_of_stream === true);
  }

  #onRequestTrailers(): void {
    // With trailers, the trailers (not end_of_stream) end the body.
    if (!this.#requestDone) this.#finishRequestBody(false);
    if (!this.#closed) this.#send(trailersResponse('request_trailers'));
  }

  #finishRequestBody(endOfStream: boolean): void {
    this.#requestDone = true;
    const body = this.#body.take();
    const buffered = this.#requestBodyMode === BodySendMode.BUFFERED;
    this.#route(body, buffered ? 'buffered' : 'duplex', (routing) => {
      // The parsed body stays with the routed request until it ends, so its
      // bytes stay counted until then; a request that was not routed gives them back now.
      if (!routing) this.#body.release();
      if (!buffered && !this.#closed) {
        // Unchanged bodies are echoed as the original bytes, never re-serialised.
        for (const msg of chunkBody('request_body', (routing?.body ?? body).chunks, endOfStream)) this.#send(msg);
      }
    });
  }

  /**
   * Hand the request to the director and send the reply that carries the
   * destination, then run `after`. When a producer makes the request wait,
   * the reply goes out once it is ready; messages arriving meanwhile wait too.
   */
  #route(body: RequestBody | undefined, reply: 'headers' | 'duplex' | 'buffered', after?: (routing: Routing | undefined) => void): void {
    // In observability mode Envoy ignores replies: picking would only skew
    // in-flight counts and metrics for a destination nobody uses.
    if (this.#observeOnly) return after?.(undefined);
    // Charged once per stream, whatever order the peer sends things in.
    if (this.#routing) {
      this.#ctx.metrics.streamsEnded.inc({ reason: 'protocol_error' });
      throw new EppError('BadRequest', 'ext_proc protocol error: the request was already routed');
    }
    this.#abort = new AbortController();
    const r = this.#ctx.director.handleRequest(
      {
        requestId: this.#requestId,
        headers: this.#headers,
        path: this.#path,
        body,
        subset: subsetHint(this.#metadata),
        receivedAt: this.#receivedAt,
        trace: this.#trace,
      },
      this.#abort.signal,
    );
    if (!(r instanceof Promise)) {
      this.#answer(r, reply);
      after?.(r);
      return;
    }
    this.#pending = true;
    r.then(
      (routing) => {
        this.#pending = false;
        // The client went away while the producers worked: give back what pick() took.
        if (this.#closed) return this.#ctx.director.responseComplete(routing, false);
        try {
          this.#answer(routing, reply);
          after?.(routing);
        } catch (err) {
          return this.#fail(err);
        }
        this.#drain();
      },
      (err: unknown) => {
        this.#pending = false;
        if (!this.#closed) this.#fail(err);
      },
    );
  }

  /** Messages that waited for a pending request, in their order. */
  #drain(): void {
    const queued = this.#queued;
    this.#queued = [];
    for (const req of queued) this.#onMessage(req);
  }

  /** The reply that carries the destination (headers or, BUFFERED, the body reply). */
  #answer(routing: Routing, reply: 'headers' | 'duplex' | 'buffered'): void {
    this.#routing = routing;
    // Flow control's in-flight eviction (enableEviction) ends the request with 429, as llm-d does.
    routing.onEvict = () => {
      if (!this.#closed) this.#fail(dropped(new EppError('ResourceExhausted', 'request evicted by flow control'), 'evicted'));
    };
    const bodyLength = routing.body?.length ?? 0;
    const destination = routing.destinations.join(',');

    const raw = this.#rawHeaders;
    const set = [header(DESTINATION_HEADER, destination, raw)];
    for (const [k, v] of routing.upstreamHeaders) set.push(header(k, v, raw));
    if (this.#requestIdGenerated) set.push(header('x-request-id', this.#requestId, raw));
    if (reply !== 'buffered') {
      if (bodyLength > 0) set.push(header('content-length', String(bodyLength), raw));
      set.push(...echoedHeaders(this.#originalHeaders, this.#dupHeaders, raw));
    }
    const scores = this.#ctx.emitEndpointScores && routing.result.scores ? [...routing.result.scores()].map(([ep, v]): [string, number] => [ep.key, v]) : undefined;
    const metadata = destinationMetadata(destination, scores);
    if (reply === 'buffered') {
      // BUFFERED: a changed body goes back as a plain body_mutation, with its new length.
      if (routing.rewritten) set.push(header('content-length', String(bodyLength), raw));
      this.#send({
        request_body: {
          response: { status: 0, clear_route_cache: true, header_mutation: { set_headers: set }, ...(routing.rewritten ? { body_mutation: { body: routing.body?.bytes() } } : {}) },
        },
        dynamic_metadata: metadata,
      });
    } else {
      this.#send(requestHeadersResponse(set, metadata));
    }
  }

  // ---- response path ----

  #onResponseHeaders(req: ProcessingRequest, h: HttpHeaders): void {
    if (!this.#requestDone) {
      // A local reply (e.g. an Envoy timeout) overtook the request phase: the
      // request will never be routed, so drop what it holds.
      this.#requestDone = true;
      this.#body.release();
    }
    const headers = new Map<string, string>();
    const raw = readHeaders(h, headers);
    const served = metadataValue(req, DESTINATION_NAMESPACE, SERVED_KEY)?.stringValue || undefined;
    const eventStream = (headers.get('content-type') ?? '').includes('text/event-stream');
    const routing = this.#routing?.released ? undefined : this.#routing;
    if (routing?.rewritten) {
      this.#restorer = new ModelRestorer(routing.request.targetModel, routing.request.model, eventStream, this.#ctx.maxResponseUsageBytes);
    }
    const extra = routing ? this.#ctx.director.responseReceived(routing, served, headers.get(':status') ?? '', eventStream) : [];
    if (extra.length > 0) {
      this.#send({ response_headers: { response: { status: 0, header_mutation: { set_headers: extra.map(([k, v]) => header(k, v, raw)) } } } });
    } else {
      this.#send(continueResponse('response_headers'));
    }
    if (h.end_of_stream) this.#complete();
  }

  #onResponseBody(b: HttpBody): void {
    const body = b.body ?? Buffer.alloc(0);
    const eos = b.end_of_stream === true;
    // Pass through first: accounting must never delay or block the bytes.
    const mode = this.#responseBodyMode;
    if (mode === undefined || mode === BodySendMode.FULL_DUPLEX_STREAMED) {
      this.#sendBody(this.#restorer ? this.#restorer.push(body, eos) : body, eos);
    } else {
      this.#send(continueResponse('response_body'));
    }
    const routing = this.#routing;
    if (routing && !routing.released) this.#ctx.director.responseStreaming(routing, body);
    if (eos) this.#complete();
  }

  /** Response bytes going back to the client (none while a JSON body is held). */
  #sendBody(bytes: Buffer | undefined, endOfStream: boolean): void {
    if (bytes === undefined) return;
    for (const msg of chunkBody('response_body', bytes, endOfStream)) this.#send(msg);
  }

  /** The response has fully passed: request control records it and releases what it holds. */
  #complete(): void {
    if (this.#routing) this.#ctx.director.responseComplete(this.#routing, true);
    this.#endSpan();
  }

  /**
   * End gateway.request (once): with the error llm-epp answered, or marked
   * closed when the stream ended before the response had passed (cancelled,
   * or a gateway that does not send the response to the EPP).
   */
  #endSpan(err?: EppError | 'closed'): void {
    const span = this.#span;
    if (!span) return;
    this.#span = undefined;
    this.#trace = undefined;
    if (err === 'closed') {
      span.setAttribute('llm_d.epp.stream.closed_before_response', true);
      endSpan(span);
      return;
    }
    if (err) span.setAttribute('http.response.status_code', err.status);
    endSpan(span, err);
  }

  // ---- plumbing ----

  #send(msg: ProcessingResponse): void {
    if (this.#closed || this.#observeOnly) return;
    this.#call.write(msg);
  }

  /** Answer with an ImmediateResponse and end the stream. */
  #fail(err: unknown): void {
    const e = asEppError(err);
    // A bug: its cause is logged for operators; the client only gets "internal error".
    if (e.code === 'Internal') this.#ctx.log.error({ err: e.cause ?? err, requestId: this.#requestId }, 'internal error on ext_proc stream');
    else this.#ctx.log.debug({ requestId: this.#requestId, status: e.status, reason: e.message }, 'request rejected');
    // Counted against the model the request named; a routed request (a failure
    // after routing should not happen) is released, its response path gone.
    this.#ctx.director.rejected(this.#routing, e);
    this.#endSpan(e);
    this.#send(immediateResponse(e.status, openAIErrorBody(e), `llm_epp_${e.code}`, this.#rawHeaders, e.headers));
    this.#end();
  }

  #end(): void {
    this.#closed = true;
    this.#body.release();
    this.#ctx.streams.delete(this);
    if (this.#ended) return;
    this.#ended = true;
    try {
      this.#call.end();
    } catch {
      // Already torn down by the peer.
    }
  }

  /** The stream is gone (cancel, reset, early close): free what it holds. */
  #release(): void {
    this.#abort?.abort();
    this.#body.release();
    this.#releaseRouting();
    // Still open when the stream went: its response never passed whole.
    this.#endSpan('closed');
    this.#closed = true;
    this.#ctx.streams.delete(this);
  }

  /** No message from the peer for too long (StreamTracker): free everything, end with DEADLINE_EXCEEDED. */
  idleTimeout(idleMs: number): void {
    if (this.#ended) return;
    this.#ctx.metrics.streamsEnded.inc({ reason: 'idle_timeout' });
    this.#ctx.log.debug({ requestId: this.#requestId, idleMs }, 'ext_proc stream idle; closing it');
    this.#release();
    this.#ended = true;
    this.#call.emit('error', { code: 4 /* DEADLINE_EXCEEDED */, details: `llm-epp: no ext_proc message for ${idleMs} ms (--stream-idle-timeout)` });
  }

  #releaseRouting(): void {
    // Only the first completion counts (request control checks).
    if (this.#routing) this.#ctx.director.responseComplete(this.#routing, false);
  }
}
