// The gRPC servers: ext_proc (plus health, because Envoy health-checks the EPP
// cluster on that port) and a separate plaintext health server.
import { Server, type ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import type { HealthState } from '../health.ts';
import { externalProcessorService } from './proto.ts';
import { ExtProcStream, type StreamContext } from './stream.ts';
import type { ProcessingRequest, ProcessingResponse } from './messages.ts';

export interface GrpcServerOptions {
  maxReceiveMessageBytes: number;
}

export function createExtProcServer(ctx: StreamContext, health: HealthState, opts: GrpcServerOptions): Server {
  const server = new Server({
    'grpc.max_receive_message_length': opts.maxReceiveMessageBytes,
    'grpc.max_send_message_length': opts.maxReceiveMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(externalProcessorService, {
    Process: (call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
      new ExtProcStream(call, ctx);
    },
  });
  health.impl.addToServer(server);
  return server;
}

export function createHealthServer(health: HealthState): Server {
  const server = new Server();
  health.impl.addToServer(server);
  return server;
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
