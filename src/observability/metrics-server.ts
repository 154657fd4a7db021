// HTTP server for Prometheus: GET /metrics, optionally behind a bearer token
// (--metrics-endpoint-auth, metrics-auth.ts), optionally over HTTPS
// (--metrics-cert-dir) with client certificates required (--metrics-client-ca-file).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { MetricsAuth } from './metrics-auth.ts';

export interface MetricsTls {
  cert: Buffer;
  key: Buffer;
  /** PEM CA bundle: when set, a client certificate it signed is required (mTLS). */
  clientCa?: Buffer;
}

/** The listening server; over TLS, `setSecureContext` swaps the certificate for new connections. */
export type MetricsServer = Server & { setSecureContext?(options: { cert: Buffer; key: Buffer; ca?: Buffer }): void };

export function startMetricsServer(registry: { metrics(): Promise<string>; readonly contentType: string }, port: number, host = '0.0.0.0', auth?: MetricsAuth, tls?: MetricsTls): Promise<MetricsServer> {
  const serve = (method: string | undefined, res: ServerResponse) => {
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType }).end(method === 'HEAD' ? undefined : text);
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics error: ${err.message}\n`);
      },
    );
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (!auth) return serve(req.method, res);
    auth(req).then(
      (r) => {
        if (r.ok) return serve(req.method, res);
        const headers: Record<string, string> = { 'content-type': 'text/plain' };
        if (r.status === 401) headers['www-authenticate'] = 'Bearer';
        res.writeHead(r.status, headers).end(r.message + '\n');
      },
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error\n'),
    );
  };
  const server: MetricsServer = tls
    ? (createHttpsServer(
        { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
        handler,
      ) as unknown as MetricsServer)
    : createServer(handler);
  // Slow or idle clients do not hold sockets forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
