// The gRPC servers: ext_proc (plus health, because Envoy health-checks the EPP
// cluster on that port) and a separate plaintext health server.
import { Server, setLogger, status, type ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { format } from 'node:util';
import type { Logger } from '../log.ts';
import { messageLimitInterceptor } from './message-limit.ts';
import { externalProcessorService } from './proto.ts';
import { observeStream } from './stream-metrics.ts';
import { ExtProcStream, type StreamContext } from './stream.ts';
import type { ProcessingRequest, ProcessingResponse } from './messages.ts';

/** A grpc.health.v1 service to serve next to ext_proc (Envoy health-checks the EPP cluster on that port). */
export interface HealthService {
  addToServer(server: Server): void;
}

export interface GrpcServerOptions {
  /** Largest message read; a larger one is answered 413 (message-limit.ts). */
  maxReceiveMessageBytes: number;
  /** Largest message sent (--grpc-max-send-msg-size). */
  maxSendMessageBytes: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS on each connection; 0 = no limit. */
  maxStreamsPerConnection: number;
  /** A connection with no open stream for this long is closed; 0 = never. */
  connectionIdleTimeoutMs: number;
}

export function createExtProcServer(ctx: StreamContext, health: HealthService, opts: GrpcServerOptions): Server {
  const server = new Server({
    'grpc.max_receive_message_length': opts.maxReceiveMessageBytes,
    'grpc.max_send_message_length': opts.maxSendMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
    ...(opts.maxStreamsPerConnection > 0 ? { 'grpc.max_concurrent_streams': opts.maxStreamsPerConnection } : {}),
    ...(opts.connectionIdleTimeoutMs > 0 ? { 'grpc.max_connection_idle_ms': opts.connectionIdleTimeoutMs } : {}),
    interceptors: [messageLimitInterceptor(opts.maxReceiveMessageBytes)],
  });
  server.addService(externalProcessorService, {
    Process: (call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
      if (ctx.metrics.streams) observeStream(call, ctx.metrics.streams);
      if (!ctx.streams.hasRoom) {
        ctx.metrics.streamsEnded.inc({ reason: 'stream_limit' });
        call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: 'llm-epp: too many open ext_proc streams (--max-concurrent-streams); retry shortly' });
        return;
      }
      new ExtProcStream(call, ctx);
    },
  });
  health.addToServer(server);
  return server;
}

export function createHealthServer(health: HealthService, connectionIdleTimeoutMs = 0): Server {
  const server = new Server(connectionIdleTimeoutMs > 0 ? { 'grpc.max_connection_idle_ms': connectionIdleTimeoutMs } : {});
  health.addToServer(server);
  return server;
}

/** grpc-js's own messages (e.g. a failed bind, which llm-epp reports itself, naming the flag) go to the log at debug. */
export function grpcLogsTo(log: Logger): void {
  const line = (...a: unknown[]) => log.debug({ grpc: format(...a) }, 'grpc-js');
  setLogger({ error: line, info: line, debug: line });
}

export function bind(server: Server, address: string, creds: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

export function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
