// llm-epp's ext_proc protos (proto/), loaded once at start-up.
//
// The server's codec is protobufjs's generated encode/decode used directly:
// @grpc/proto-loader's default codec adds fromObject/toObject conversions on
// every message, which cost more than the decoding itself on the request path
// (bench/RESULTS.md). Decoded messages are protobufjs message instances:
// absent fields read as null/defaults, bytes are Buffer views, and the oneof
// name (`request`) says which phase a message carries.
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProcessingRequest, ProcessingResponse } from './messages.ts';

export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
const FILE = 'envoy/service/ext_proc/v3/external_processor.proto';
export const EXT_PROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';

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
  return ResponseType.encode(msg as protobuf.Message).finish() as Buffer;
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

// A client built with @grpc/proto-loader's own codec: tests drive the server
// through it, so the two codecs check each other on the wire.
const definition = loadSync(FILE, { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, defaults: false, oneofs: true });
const pkg = loadPackageDefinition(definition) as unknown as {
  envoy: { service: { ext_proc: { v3: { ExternalProcessor: ServiceClientConstructor & GrpcObject } } } };
};
export const ExternalProcessorClient = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
