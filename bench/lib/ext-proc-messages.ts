// ProcessingRequest builders for the tools outside llm-epp that play Envoy
// message by message: the test client (test/helpers/envoy-client.ts) and the
// benchmark load (bench/epp/load.ts). The benchmark gateway writes its
// messages straight into gRPC frames (bench/gateway/ext-proc-wire.ts).
import type { HeaderValue, ProcessingRequest } from '../../src/extproc/messages.ts';

export type HeaderList = readonly (readonly [string, string])[];

/** FULL_DUPLEX_STREAMED, the body mode GAIE gateways use. */
export const FULL_DUPLEX = 4;
export const BUFFERED = 2;

/** Header values as Envoy sends them: raw_value bytes, or `value` strings (send_header_raw_value off). */
export function headerValues(list: HeaderList, useValue = false): HeaderValue[] {
  return list.map(([key, v]) => (useValue ? { key, value: v } : { key, raw_value: Buffer.from(v) }));
}

export interface RequestHeadersOptions {
  /** No body follows (GET, or a headers-only request). */
  endOfStream: boolean;
  /** Body mode announced in protocol_config for both directions; null leaves protocol_config out (Envoy < 1.33). */
  mode?: number | null;
  useValue?: boolean;
}

export function requestHeaders(list: HeaderList, o: RequestHeadersOptions): ProcessingRequest {
  const msg: ProcessingRequest = { request_headers: { headers: { headers: headerValues(list, o.useValue) }, end_of_stream: o.endOfStream } };
  const mode = o.mode === undefined ? FULL_DUPLEX : o.mode;
  if (mode !== null) msg.protocol_config = { request_body_mode: mode, response_body_mode: mode };
  return msg;
}

export function requestBody(body: Buffer, endOfStream: boolean): ProcessingRequest {
  return { request_body: { body, end_of_stream: endOfStream } };
}

export function requestTrailers(list: HeaderList): ProcessingRequest {
  return { request_trailers: { trailers: { headers: headerValues(list) } } };
}

export function responseHeaders(list: HeaderList, endOfStream: boolean): ProcessingRequest {
  return { response_headers: { headers: { headers: headerValues(list) }, end_of_stream: endOfStream } };
}

export function responseBody(body: Buffer, endOfStream: boolean): ProcessingRequest {
  return { response_body: { body, end_of_stream: endOfStream } };
}

export function responseTrailers(list: HeaderList): ProcessingRequest {
  return { response_trailers: { trailers: { headers: headerValues(list) } } };
}
