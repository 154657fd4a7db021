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
import { EppError, openAIErrorBody } from '../errors.ts';
import type { Logger } from '../log.ts';
import { bounded } from '../observability/bounded.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import { restoreModel } from '../request-control/policy.ts';
import { tooLargeSize } from './message-limit.ts';
import type { StreamTracker, TrackedStream } from './stream-tracker.ts';
import {
  BodySendMode,
  DESTINATION_HEADER,
  DESTINATION_NAMESPACE,
  SCORES_KEY,
  SERVED_KEY,
  SUBSET_KEY,
  SUBSET_NAMESPACE,
  chunkBody,
  continueResponse,
  destinationMetadata,
  echoHeader,
  header,
  immediateResponse,
  metadataValue,
  readHeaders,
  requestHeadersResponse,
  trailersResponse,
  type HttpBody,
  type HeaderValue,
  type HttpHeaders,
  type PbValue,
  type ProcessingRequest,
  type ProcessingResponse,
} from './messages.ts';

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
  bufferBudget: { used: number; readonly limit: number };
  /** Open streams: idle timeout and drain. */
  streams: StreamTracker;
}

// Headers the gateway owns; never echoed back to the upstream request.
const SYSTEM_HEADERS = new Set([
  'x-gateway-inference-fairness-id',
  'x-gateway-inference-objective',
  'x-gateway-model-name-rewrite',
  'x-gateway-destination-endpoint-subset',
  DESTINATION_HEADER,
  SERVED_KEY,
  'content-length',
  'host',
]);

type Call = ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

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
  #chunks: Buffer[] = [];
  #bodyBytes = 0;
  /** Bytes of #chunks counted against the shared buffer budget. */
  #reserved = 0;
  #requestDone = false;
  #sawRequestHeaders = false;
  /** STREAMED / BUFFERED_PARTIAL: routed on headers, body chunks just continue. */
  #passBody = false;

  // After routing.
  #routing: Routing | undefined;
  #completed = false;

  // Response path.
  /** The response is an SSE stream (each chunk restored as it passes). */
  #eventStream = false;
  /** Response held to restore a rewritten model name (non-streaming JSON). */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #heldOverflow = false;

  constructor(call: Call, ctx: StreamContext) {
    this.#call = call;
    this.#ctx = ctx;
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
        case 'response_body':
          return this.#onResponseBody(req.response_body ?? {});
        case 'response_trailers':
          // Trailers end the body: what is still held goes out first.
          if (this.#held.length > 0) this.#flushHeld(false, true);
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
    // One stream is one request: a second request_headers would route (and
    // charge an endpoint) again.
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
    const chunk = b.body;
    if (chunk && chunk.length > 0) {
      this.#bodyBytes += chunk.length;
      if (this.#bodyBytes > this.#ctx.maxRequestBodyBytes) {
        throw new EppError('PayloadTooLarge', `request body exceeds ${this.#ctx.maxRequestBodyBytes} bytes`);
      }
      const budget = this.#ctx.bufferBudget;
      if (budget.used + chunk.length > budget.limit) {
        throw new EppError('ResourceExhausted', 'llm-epp is holding too many request bytes; retry shortly');
      }
      budget.used += chunk.length;
      this.#reserved += chunk.length;
      this.#chunks.push(chunk);
    }
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
    const body = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks, this.#bodyBytes);
    this.#dropChunks();
    const buffered = this.#requestBodyMode === BodySendMode.BUFFERED;
    this.#route(body, buffered ? 'buffered' : 'duplex');
    // The parsed body stays with the routed request until it ends, so its
    // bytes stay counted until then; a request that was not routed gives them back now.
    if (!this.#routing) this.#unreserve();
    if (!buffered && !this.#closed) {
      // Unchanged bodies are echoed as the original bytes, never re-serialised.
      for (const msg of chunkBody('request_body', this.#routing?.body ?? body, endOfStream)) this.#send(msg);
    }
  }

  /** Hand the request to the director and send the reply that carries the destination. */
  #route(body: Buffer | undefined, reply: 'headers' | 'duplex' | 'buffered'): void {
    // In observability mode Envoy ignores replies: picking would only skew
    // in-flight counts and metrics for a destination nobody uses.
    if (this.#observeOnly) return;
    const routing = this.#ctx.director.handleRequest({
      requestId: this.#requestId,
      headers: this.#headers,
      path: this.#path,
      body,
      subset: this.#subsetHint(),
      receivedAt: this.#receivedAt,
    });
    this.#routing = routing;
    const bodyLength = routing.body?.length ?? 0;
    const destination = routing.endpoints.map((e) => e.key).join(',');

    const raw = this.#rawHeaders;
    const set = [header(DESTINATION_HEADER, destination, raw)];
    if (this.#requestIdGenerated) set.push(header('x-request-id', this.#requestId, raw));
    if (reply !== 'buffered') {
      if (bodyLength > 0) set.push(header('content-length', String(bodyLength), raw));
      for (const [k, original] of this.#originalHeaders) {
        if (k.charCodeAt(0) === 58 /* ':' */ || SYSTEM_HEADERS.has(k) || this.#dupHeaders.has(k)) continue;
        if (k === 'x-request-id') continue;
        set.push(echoHeader(k, original, raw));
      }
    }
    let scores: Record<string, PbValue> | undefined;
    if (this.#ctx.emitEndpointScores && routing.result.scores) {
      const fields: Record<string, PbValue> = {};
      for (const [ep, score] of routing.result.scores()) fields[ep.key] = { numberValue: score };
      scores = { [SCORES_KEY]: { structValue: { fields } } };
    }
    const metadata = destinationMetadata(destination, scores);
    if (reply === 'buffered') {
      // BUFFERED: a changed body goes back as a plain body_mutation, with its new length.
      if (routing.rewritten) set.push(header('content-length', String(bodyLength), raw));
      this.#send({
        request_body: {
          response: { status: 0, clear_route_cache: true, header_mutation: { set_headers: set }, ...(routing.rewritten ? { body_mutation: { body: routing.body } } : {}) },
        },
        dynamic_metadata: metadata,
      });
    } else {
      this.#send(requestHeadersResponse(set, metadata));
    }
  }

  #subsetHint(): string[] | undefined {
    const v: PbValue | undefined = this.#metadata?.filter_metadata?.[SUBSET_NAMESPACE]?.fields?.[SUBSET_KEY];
    if (v === undefined || v === null) return undefined;
    // Decoded messages carry every field's default: the oneof says which one was sent.
    const kind = valueKind(v);
    if (kind === 'listValue') {
      // As llm-d Router: list items that are not strings are skipped (only those ⇒ no candidate).
      const out: string[] = [];
      for (const item of v.listValue?.values ?? []) if (valueKind(item) === 'stringValue') out.push(item.stringValue!);
      return out;
    }
    // Lenient: a single "ip:port[,ip:port]" string.
    if (kind === 'stringValue') return v.stringValue!.split(',').filter((s) => s.trim() !== '');
    // Any other kind (number, bool, struct, null) is not a list: no restriction, as llm-d Router.
    return undefined;
  }

  // ---- response path ----

  #onResponseHeaders(req: ProcessingRequest, h: HttpHeaders): void {
    if (!this.#requestDone) {
      // A local reply (e.g. an Envoy timeout) overtook the request phase: the
      // request will never be routed, so drop what it holds.
      this.#requestDone = true;
      this.#dropChunks();
      this.#unreserve();
    }
    const headers = new Map<string, string>();
    const raw = readHeaders(h, headers);
    const served = metadataValue(req, DESTINATION_NAMESPACE, SERVED_KEY)?.stringValue || undefined;
    this.#eventStream = (headers.get('content-type') ?? '').includes('text/event-stream');
    const routing = this.#completed ? undefined : this.#routing;
    const extra = routing ? this.#ctx.director.responseReceived(routing, served, headers.get(':status') ?? '', this.#eventStream) : [];
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
    const routing = this.#routing;
    const req = routing?.request;
    const rewritten = routing?.rewritten === true;
    if (mode === undefined || mode === BodySendMode.FULL_DUPLEX_STREAMED) {
      if (!rewritten || !req) {
        for (const msg of chunkBody('response_body', body, eos)) this.#send(msg);
      } else if (this.#eventStream) {
        // Each SSE chunk goes out as it comes, with the client's model name put back.
        for (const msg of chunkBody('response_body', restoreModel(body, req.targetModel, req.model), eos)) this.#send(msg);
      } else if (this.#heldOverflow) {
        for (const msg of chunkBody('response_body', body, eos)) this.#send(msg);
      } else {
        // A JSON response is held whole so a "model" field split across chunks
        // is still restored; past the cap it streams on unchanged.
        this.#held.push(body);
        this.#heldBytes += body.length;
        if (eos) this.#flushHeld(true, true);
        else if (this.#heldBytes > this.#ctx.maxResponseUsageBytes) this.#flushHeld(false, false);
      }
    } else {
      this.#send(continueResponse('response_body'));
    }
    if (routing && !this.#completed) this.#ctx.director.responseStreaming(routing, body);
    if (eos) this.#complete();
  }

  /**
   * Send the held response. `complete`: the whole body is held (it ended, by
   * end_of_stream or trailers), so the name is restored; otherwise it
   * outgrew the cap and the rest streams on unchanged.
   */
  #flushHeld(endOfStream: boolean, complete: boolean): void {
    const req = this.#routing?.request;
    let whole = this.#held.length === 1 ? this.#held[0] : Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    if (complete && req) whole = restoreModel(whole, req.targetModel, req.model);
    else this.#heldOverflow = true;
    for (const msg of chunkBody('response_body', whole, endOfStream)) this.#send(msg);
  }

  /** The response has fully passed: request control records it and releases what it holds. */
  #complete(): void {
    const routing = this.#routing;
    if (this.#completed || !routing) return;
    this.#completed = true;
    this.#ctx.director.responseComplete(routing, true);
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
    this.#completed = true;
    this.#ctx.director.rejected(this.#routing, e);
    this.#send(immediateResponse(e.status, openAIErrorBody(e), `llm_epp_${e.code}`, this.#rawHeaders));
    this.#end();
  }

  #end(): void {
    this.#closed = true;
    this.#dropChunks();
    this.#unreserve();
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
    this.#dropChunks();
    this.#unreserve();
    this.#releaseRouting();
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

  #dropChunks(): void {
    this.#chunks = [];
  }

  /** Give back the request bytes counted against the shared budget. */
  #unreserve(): void {
    if (this.#reserved > 0) {
      this.#ctx.bufferBudget.used -= this.#reserved;
      this.#reserved = 0;
    }
  }

  #releaseRouting(): void {
    const routing = this.#routing;
    if (routing && !this.#completed) {
      this.#completed = true;
      this.#ctx.director.responseComplete(routing, false);
    }
  }
}

type ValueKind = 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';

/** Which field of a google.protobuf.Value was sent (protobufjs names it `kind`; plain objects: the field that is set). */
function valueKind(v: PbValue): ValueKind | undefined {
  const kind = (v as { kind?: ValueKind }).kind;
  if (kind !== undefined) return kind;
  for (const k of ['listValue', 'stringValue', 'numberValue', 'boolValue', 'structValue', 'nullValue'] as const) {
    if (Object.hasOwn(v, k) && v[k] !== undefined && v[k] !== null) return k;
  }
  return undefined;
}
