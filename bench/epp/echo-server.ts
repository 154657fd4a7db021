// The floor: a bare ext_proc server on the same gRPC stack as llm-epp that
// does only what the protocol forces (hold the headers reply until the body
// ends, answer headers + destination, echo the body in ≤ 62,000-byte chunks,
// echo response chunks), with no parsing and no scheduling.
//   node bench/epp/echo-server.ts --port 0     (prints {"port": N})
//   node bench/epp/echo-server.ts --port 0 --destination 127.0.0.1:8000   (the endpoint it picks)
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { chunkBody, continueResponse, destinationMetadata, header, requestHeadersResponse, type ProcessingRequest, type ProcessingResponse } from '../../src/extproc/messages.ts';
import { externalProcessorService } from '../../src/extproc/proto.ts';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, destination: { type: 'string', default: '127.0.0.1:8000' } } });
const DEST = values.destination;

const server = new Server({ 'grpc.max_receive_message_length': 64 << 20 });
server.addService(externalProcessorService, {
  Process(call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>) {
    let chunks: Buffer[] = [];
    call.on('data', (req: ProcessingRequest) => {
      if (req.request_headers) {
        if (req.request_headers.end_of_stream) call.write(requestHeadersResponse([header('x-gateway-destination-endpoint', DEST)], destinationMetadata(DEST)));
      } else if (req.request_body) {
        if (req.request_body.body?.length) chunks.push(req.request_body.body);
        if (req.request_body.end_of_stream) {
          const body = Buffer.concat(chunks);
          chunks = [];
          call.write(requestHeadersResponse([header('x-gateway-destination-endpoint', DEST), header('content-length', String(body.length))], destinationMetadata(DEST)));
          for (const m of chunkBody('request_body', body, true)) call.write(m);
        }
      } else if (req.response_headers) call.write(continueResponse('response_headers'));
      else if (req.response_body) {
        for (const m of chunkBody('response_body', req.response_body.body ?? Buffer.alloc(0), req.response_body.end_of_stream === true)) call.write(m);
      }
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  },
});
server.bindAsync(`127.0.0.1:${values.port}`, ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(JSON.stringify({ port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
