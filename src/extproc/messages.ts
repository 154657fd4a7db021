// Shapes of the ext_proc messages as @grpc/proto-loader decodes them, and the
// builders for every ProcessingResponse llm-epp sends.
//
// Note: protobufjs ships google.protobuf.Struct/Value with camelCase field
// names (structValue, stringValue, listValue) even with keepCase, so those
// are spelled that way here while Envoy's own messages keep snake_case.

/** gRPC service name of ext_proc; also a health service name (the EPP protocol's). */
export const EXT_PROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';

export const BodySendMode = { NONE: 0, STREAMED: 1, BUFFERED: 2, BUFFERED_PARTIAL: 3, FULL_DUPLEX_STREAMED: 4, GRPC: 5 } as const;
export type BodySendMode = (typeof BodySendMode)[keyof typeof BodySendMode];

/** Envoy's recommended maximum per streamed body reply (the reference EPP uses 62,000). */
export const BODY_CHUNK_LIMIT = 62_000;

export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';
export const DESTINATION_NAMESPACE = 'envoy.lb';
export const SERVED_KEY = 'x-gateway-destination-endpoint-served';
export const SCORES_KEY = 'x-gateway-destination-endpoint-scores';
export const SUBSET_NAMESPACE = 'envoy.lb.subset_hint';
export const SUBSET_KEY = 'x-gateway-destination-endpoint-subset';

export interface PbValue {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: PbStruct;
  listValue?: { values?: PbValue[] };
}
export interface PbStruct {
  fields?: Record<string, PbValue>;
}

export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer;
}

export interface HttpHeaders {
  headers?: { headers?: HeaderValue[] };
  end_of_stream?: boolean;
}
export interface HttpBody {
  body?: Buffer;
  end_of_stream?: boolean;
}
export interface HttpTrailers {
  trailers?: { headers?: HeaderValue[] };
}

export interface ProcessingRequest {
  request?: 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: HttpTrailers;
  response_trailers?: HttpTrailers;
  metadata_context?: { filter_metadata?: Record<string, PbStruct> };
  attributes?: Record<string, PbStruct>;
  observability_mode?: boolean;
  protocol_config?: { request_body_mode?: number; response_body_mode?: number; send_body_without_waiting_for_header_response?: boolean };
}

interface HeaderValueOption {
  header: { key: string; raw_value?: Buffer; value?: string };
}

interface CommonResponse {
  status?: number;
  header_mutation?: { set_headers?: HeaderValueOption[]; remove_headers?: string[] };
  body_mutation?: { body?: Buffer; streamed_response?: { body: Buffer; end_of_stream: boolean } };
  clear_route_cache?: boolean;
}

export interface ProcessingResponse {
  request_headers?: { response: CommonResponse };
  response_headers?: { response: CommonResponse };
  request_body?: { response: CommonResponse };
  response_body?: { response: CommonResponse };
  request_trailers?: Record<string, never>;
  response_trailers?: Record<string, never>;
  immediate_response?: {
    status: { code: number };
    headers?: { set_headers: HeaderValueOption[] };
    body: Buffer;
    details?: string;
  };
  dynamic_metadata?: PbStruct;
}

/**
 * Read headers into a map: keys lower-cased, raw_value preferred over value
 * (raw bytes are kept as latin1 so no byte is lost). Returns whether Envoy
 * used raw_value, so replies can use the same field: an Envoy running with
 * send_header_raw_value off also reads only `value` from mutations.
 */
export function readHeaders(
  h: HttpHeaders | HttpTrailers | undefined,
  into: Map<string, string>,
  dups?: Set<string>,
  originals?: Map<string, HeaderValue>,
): boolean {
  const list = (h as HttpHeaders | undefined)?.headers?.headers ?? (h as HttpTrailers | undefined)?.trailers?.headers;
  let raw = false;
  if (!list) return true;
  for (const hv of list) {
    const key = hv.key.toLowerCase();
    let value: string;
    if (hv.raw_value && hv.raw_value.length > 0) {
      raw = true;
      value = hv.raw_value.toString('latin1');
    } else value = hv.value ?? '';
    if (dups && into.has(key)) dups.add(key);
    into.set(key, value);
    originals?.set(key, hv);
  }
  return raw || list.length === 0;
}

/** A string value inside metadata_context.filter_metadata[namespace][key]. */
export function metadataValue(req: ProcessingRequest, namespace: string, key: string): PbValue | undefined {
  return req.metadata_context?.filter_metadata?.[namespace]?.fields?.[key];
}

/** A header to set, in the field Envoy uses (never both: Envoy rejects that). */
export function header(key: string, value: string, raw = true): HeaderValueOption {
  return raw ? { header: { key, raw_value: Buffer.from(value, 'utf8') } } : { header: { key, value } };
}

/** Echo an original header unchanged, byte for byte. */
export function echoHeader(key: string, original: HeaderValue, raw: boolean): HeaderValueOption {
  if (raw) return { header: { key, raw_value: original.raw_value && original.raw_value.length ? original.raw_value : Buffer.from(original.value ?? '', 'utf8') } };
  return { header: { key, value: original.value ?? original.raw_value?.toString('utf8') ?? '' } };
}

/**
 * Dynamic metadata envoy.lb: the destination, and with `scores` each
 * candidate's total score under x-gateway-destination-endpoint-scores.
 */
export function destinationMetadata(destination: string, scores?: Iterable<[string, number]>): PbStruct {
  const fields: Record<string, PbValue> = { [DESTINATION_HEADER]: { stringValue: destination } };
  if (scores) {
    const byEndpoint: Record<string, PbValue> = {};
    for (const [key, score] of scores) byEndpoint[key] = { numberValue: score };
    fields[SCORES_KEY] = { structValue: { fields: byEndpoint } };
  }
  return { fields: { [DESTINATION_NAMESPACE]: { structValue: { fields } } } };
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
  'x-request-id',
]);

/**
 * The client's own request headers, echoed byte for byte for a reply that
 * sets the request's headers (FULL_DUPLEX / headers-only): without pseudo
 * headers, duplicated ones (Envoy keeps those itself) and the gateway's own.
 */
export function echoedHeaders(original: ReadonlyMap<string, HeaderValue>, duplicated: ReadonlySet<string>, raw: boolean): HeaderValueOption[] {
  const out: HeaderValueOption[] = [];
  for (const [k, v] of original) {
    if (k.charCodeAt(0) === 58 /* ':' */ || SYSTEM_HEADERS.has(k) || duplicated.has(k)) continue;
    out.push(echoHeader(k, v, raw));
  }
  return out;
}

export function requestHeadersResponse(setHeaders: HeaderValueOption[], metadata: PbStruct | undefined): ProcessingResponse {
  const res: ProcessingResponse = {
    request_headers: { response: { status: 0, clear_route_cache: true, header_mutation: { set_headers: setHeaders } } },
  };
  if (metadata) res.dynamic_metadata = metadata;
  return res;
}

/** Plain CONTINUE for a direction/phase. */
export function continueResponse(kind: 'request_headers' | 'response_headers' | 'request_body' | 'response_body'): ProcessingResponse {
  return { [kind]: { response: {} } };
}

export function streamedBody(kind: 'request_body' | 'response_body', body: Buffer, endOfStream: boolean): ProcessingResponse {
  return { [kind]: { response: { body_mutation: { streamed_response: { body, end_of_stream: endOfStream } } } } };
}

export function trailersResponse(kind: 'request_trailers' | 'response_trailers'): ProcessingResponse {
  return { [kind]: {} };
}

/** `raw`: the request's headers came as raw_value (see readHeaders); answer in the same field. */
export function immediateResponse(status: number, body: Buffer, details: string, raw = true, extra?: readonly (readonly [string, string])[]): ProcessingResponse {
  const set = [header('content-type', 'application/json', raw)];
  if (extra) for (const [k, v] of extra) set.push(header(k, v, raw));
  return {
    immediate_response: {
      status: { code: status },
      headers: { set_headers: set },
      body,
      details,
    },
  };
}

/**
 * A body (one buffer, or the chunks it was received in) as replies of at most
 * BODY_CHUNK_LIMIT bytes, the last one carrying end_of_stream. Replies are
 * views of the chunks, never copies: a received chunk larger than the limit
 * is split, smaller ones go back as they came. An empty body is one empty
 * reply with end_of_stream.
 */
export function* chunkBody(kind: 'request_body' | 'response_body', body: Buffer | readonly Buffer[], endOfStream: boolean): Generator<ProcessingResponse> {
  const parts = Buffer.isBuffer(body) ? [body] : body;
  let left = 0;
  for (const p of parts) left += p.length;
  if (left === 0) {
    yield streamedBody(kind, Buffer.alloc(0), endOfStream);
    return;
  }
  for (const part of parts) {
    for (let off = 0; off < part.length; off += BODY_CHUNK_LIMIT) {
      const end = Math.min(off + BODY_CHUNK_LIMIT, part.length);
      left -= end - off;
      yield streamedBody(kind, part.subarray(off, end), endOfStream && left === 0);
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

/**
 * The gateway's subset hint (envoy.lb.subset_hint / x-gateway-destination-endpoint-subset):
 * a list of addresses, or undefined for "no restriction". Decoded messages
 * carry every field's default, so the oneof says which one was sent.
 */
export function subsetHint(metadata: ProcessingRequest['metadata_context']): string[] | undefined {
  const v: PbValue | undefined = metadata?.filter_metadata?.[SUBSET_NAMESPACE]?.fields?.[SUBSET_KEY];
  if (v === undefined || v === null) return undefined;
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
