// llm-epp's ext_proc protos (proto/), loaded once at start-up.
//
// The server's codec is protobufjs's generated encode/decode used directly:
// @grpc/proto-loader's default codec adds fromObject/toObject conversions on
// every message, which cost more than the decoding itself on the request path
// (bench/RESULTS.md). Decoded messages are protobufjs message instances:
// absent fields read as null/defaults, bytes are Buffer views, and the oneof
// name (`request`) says which phase a message carries.
import type { ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXT_PROC_SERVICE_NAME, type ProcessingRequest, type ProcessingResponse } from './messages.ts';
import { varintLength, writeVarint } from './varint.ts';

export { EXT_PROC_SERVICE_NAME };

export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
const FILE = 'envoy/service/ext_proc/v3/external_processor.proto';

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(PROTO_DIR, target));
root.loadSync(FILE, { keepCase: true });
root.resolveAll();
const RequestType = root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
const ResponseType = root.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');

export function encodeRequest(msg: ProcessingRequest): Buffer {
  return RequestType.encode(msg as protobuf.Message).finish() as Buffer;
}
export function decodeRequest(buf: Buffer): ProcessingRequest {
  return RequestType.decode(buf) as unknown as ProcessingRequest;
}
export function encodeResponse(msg: ProcessingResponse): Buffer {
  // Body echoes are most of the bytes llm-epp sends: encode them directly
  // into one buffer (one copy of the body) instead of protobufjs's writer
  // (a copy into the writer, another on finish()).
  const body = msg.request_body ?? msg.response_body;
  const streamed = body?.response?.body_mutation?.streamed_response;
  if (streamed && !msg.dynamic_metadata && !body.response.header_mutation && !body.response.status && !body.response.clear_route_cache) {
    return encodeStreamedBody(msg.request_body ? 3 : 4, streamed.body, streamed.end_of_stream === true);
  }
  return ResponseType.encode(msg as protobuf.Message).finish() as Buffer;
}


/**
 * ProcessingResponse{request_body(3)|response_body(4): BodyResponse{response(1):
 * CommonResponse{body_mutation(3): BodyMutation{streamed_response(3):
 * StreamedBodyResponse{body(1), end_of_stream(2)}}}}}, with the same bytes
 * protobufjs produces (checked in test/proto-codec.test.ts).
 */
export function encodeStreamedBody(field: 3 | 4, body: Buffer, endOfStream: boolean): Buffer {
  const lenS = (body.length > 0 ? 1 + varintLength(body.length) + body.length : 0) + (endOfStream ? 2 : 0);
  const lenM = 1 + varintLength(lenS) + lenS;
  const lenC = 1 + varintLength(lenM) + lenM;
  const lenB = 1 + varintLength(lenC) + lenC;
  const total = 1 + varintLength(lenB) + lenB;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  out[at++] = (field << 3) | 2;
  at = writeVarint(out, at, lenB);
  out[at++] = 0x0a; // BodyResponse.response
  at = writeVarint(out, at, lenC);
  out[at++] = 0x1a; // CommonResponse.body_mutation
  at = writeVarint(out, at, lenM);
  out[at++] = 0x1a; // BodyMutation.streamed_response
  at = writeVarint(out, at, lenS);
  if (body.length > 0) {
    out[at++] = 0x0a; // StreamedBodyResponse.body
    at = writeVarint(out, at, body.length);
    body.copy(out, at);
    at += body.length;
  }
  if (endOfStream) {
    out[at++] = 0x10; // StreamedBodyResponse.end_of_stream
    out[at++] = 1;
  }
  return out;
}
export function decodeResponse(buf: Buffer): ProcessingResponse {
  return ResponseType.decode(buf) as unknown as ProcessingResponse;
}

export const externalProcessorService: ServiceDefinition = {
  Process: {
    path: `/${EXT_PROC_SERVICE_NAME}/Process`,
    requestStream: true,
    responseStream: true,
    requestSerialize: encodeRequest,
    requestDeserialize: decodeRequest,
    responseSerialize: encodeResponse,
    responseDeserialize: decodeResponse,
    originalName: 'process',
  },
} as unknown as ServiceDefinition;
