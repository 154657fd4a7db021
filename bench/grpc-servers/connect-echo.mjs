// The echo floor on Connect's Node server (@connectrpc/connect-node, gRPC
// protocol only, on a plaintext node:http2 server), messages decoded and
// encoded by @bufbuild/protobuf from descriptors generated from llm-epp's own
// proto/ (gen/, `npm run generate`). Same replies as bench/epp/echo-server.ts.
// JavaScript, not TypeScript: the repository's `tsc --noEmit` covers bench/
// and cannot resolve this folder's own dependencies where they are not installed.
//   node bench/grpc-servers/connect-echo.mjs --port 0            (prints {"port": N})
//   node bench/grpc-servers/connect-echo.mjs --port 0 --gzip     (Connect's default compression; see README)
import { create } from '@bufbuild/protobuf';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { createServer } from 'node:http2';
import { parseArgs } from 'node:util';
import { ExternalProcessor, ProcessingResponseSchema } from './gen/envoy/service/ext_proc/v3/external_processor_pb.js';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '0' }, destination: { type: 'string', default: '127.0.0.1:8000' }, gzip: { type: 'boolean', default: false } },
});
const DEST = values.destination;
const DEST_BYTES = new TextEncoder().encode(DEST);
const DEST_HEADER = 'x-gateway-destination-endpoint';
/** As BODY_CHUNK_LIMIT in src/extproc/messages.ts. */
const BODY_CHUNK_LIMIT = 62_000;
const EMPTY = new Uint8Array(0);
const enc = new TextEncoder();

/** The headers reply: destination header (+ content-length once the body is known), clear_route_cache, envoy.lb metadata. */
function headersReply(contentLength) {
  const setHeaders = [{ header: { key: DEST_HEADER, rawValue: DEST_BYTES } }];
  if (contentLength !== undefined) setHeaders.push({ header: { key: 'content-length', rawValue: enc.encode(String(contentLength)) } });
  return create(ProcessingResponseSchema, {
    response: { case: 'requestHeaders', value: { response: { clearRouteCache: true, headerMutation: { setHeaders } } } },
    // google.protobuf.Struct fields are plain JSON objects in protobuf-es v2.
    dynamicMetadata: { 'envoy.lb': { [DEST_HEADER]: DEST } },
  });
}

function streamed(kase, body, endOfStream) {
  return create(ProcessingResponseSchema, {
    response: { case: kase, value: { response: { bodyMutation: { mutation: { case: 'streamedResponse', value: { body, endOfStream } } } } } },
  });
}

/** ≤ 62,000-byte streamed replies, end_of_stream on the last; an empty body is one empty reply. */
function* chunked(kase, body, endOfStream) {
  if (body.length === 0) {
    yield streamed(kase, body, endOfStream);
    return;
  }
  for (let off = 0; off < body.length; off += BODY_CHUNK_LIMIT) {
    const end = Math.min(off + BODY_CHUNK_LIMIT, body.length);
    yield streamed(kase, body.subarray(off, end), endOfStream && end === body.length);
  }
}

function concat(chunks) {
  if (chunks.length === 1) return chunks[0];
  return Buffer.concat(chunks);
}

const CONTINUE_RESPONSE_HEADERS = create(ProcessingResponseSchema, { response: { case: 'responseHeaders', value: { response: {} } } });

function routes(router) {
  router.service(ExternalProcessor, {
    async *process(requests) {
      let chunks = [];
      for await (const req of requests) {
        const r = req.request;
        switch (r.case) {
          case 'requestHeaders':
            if (r.value.endOfStream) yield headersReply();
            break;
          case 'requestBody': {
            if (r.value.body.length) chunks.push(r.value.body);
            if (r.value.endOfStream) {
              const body = chunks.length ? concat(chunks) : EMPTY;
              chunks = [];
              yield headersReply(body.length);
              yield* chunked('requestBody', body, true);
            }
            break;
          }
          case 'responseHeaders':
            yield CONTINUE_RESPONSE_HEADERS;
            break;
          case 'responseBody':
            yield* chunked('responseBody', r.value.body, r.value.endOfStream);
            break;
          default:
        }
      }
    },
  });
}

const handler = connectNodeAdapter({
  routes,
  grpc: true,
  grpcWeb: false,
  connect: false,
  // Connect's default (gzip, br) answers a client that advertises gzip — grpc-js does,
  // Envoy's gRPC client does not — with gzipped echoes. Off unless --gzip, as under Envoy.
  ...(values.gzip ? {} : { acceptCompression: [] }),
  readMaxBytes: 64 << 20,
});

// The same HTTP/2 server options as grpc-js's server and h2-echo.ts.
const server = createServer({ maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER, maxSessionMemory: Number.MAX_SAFE_INTEGER }, handler);
server.on('sessionError', () => {});
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
