// Every worker thread listens on the same ext_proc port: each opens its own
// socket with SO_REUSEPORT and the kernel spreads new connections over them
// (Envoy opens one HTTP/2 connection per worker thread of its own, so a
// gateway's streams spread over llm-epp's workers by connection). Accepted
// sockets go straight into this thread's grpc-js server through its
// connection injector: the same server, services and options as a bound port.
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { Server, ServerCredentials } from '@grpc/grpc-js';

export interface SharedListener {
  readonly port: number;
  /** Stop accepting (open connections are the gRPC server's to drain). */
  close(): Promise<void>;
}

export function listenShared(grpc: Server, creds: ServerCredentials, host: string, port: number): Promise<SharedListener> {
  const injector = grpc.createConnectionInjector(creds);
  const server: NetServer = createServer({ noDelay: true }, (socket: Socket) => injector.injectConnection(socket));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, reusePort: true, exclusive: true }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
