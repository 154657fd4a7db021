// An ext_proc client built with @grpc/proto-loader's own codec, for tests and
// benchmarks that drive llm-epp message by message. The server decodes with
// protobufjs directly (src/extproc/proto.ts), so the two codecs check each
// other on the wire. Loaded only by the tools that use it, never by llm-epp.
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_DIR } from '../../src/extproc/proto.ts';

const definition = loadSync('envoy/service/ext_proc/v3/external_processor.proto', { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, defaults: false, oneofs: true });
const pkg = loadPackageDefinition(definition) as unknown as {
  envoy: { service: { ext_proc: { v3: { ExternalProcessor: ServiceClientConstructor & GrpcObject } } } };
};
export const ExternalProcessorClient = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
