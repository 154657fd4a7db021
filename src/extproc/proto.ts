// Loads llm-epp's ext_proc protos (proto/) once at start-up.
import { loadPackageDefinition, type ServiceDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

const definition = loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: Number,
  // Enums as numbers and no default-filling: cheaper decoding on the hot path;
  // absent fields read as undefined.
  defaults: false,
  oneofs: true,
});

const pkg = loadPackageDefinition(definition) as unknown as {
  envoy: { service: { ext_proc: { v3: { ExternalProcessor: ServiceClientConstructor & GrpcObject } } } };
};

export const ExternalProcessorClient = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
export const externalProcessorService: ServiceDefinition = ExternalProcessorClient.service;
export const EXT_PROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';
