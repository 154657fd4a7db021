// The three echo floors compared here, as child processes of the runner and of the wire check.
import { json, start, type Child } from '../lib/processes.ts';

export interface ServerKind {
  name: string;
  /** What it is, for the report. */
  stack: string;
  /** The node arguments, relative to the repository root. */
  args: string[];
}

export const SERVERS: ServerKind[] = [
  { name: 'grpc-js', stack: '@grpc/grpc-js server, llm-epp codec (bench/epp/echo-server.ts)', args: ['bench/epp/echo-server.ts'] },
  { name: 'node:http2', stack: 'node:http2 + hand-written gRPC framing, llm-epp codec (h2-echo.ts)', args: ['bench/grpc-servers/h2-echo.ts'] },
  { name: 'connect', stack: '@connectrpc/connect-node (gRPC protocol), @bufbuild/protobuf codec (connect-echo.mjs)', args: ['bench/grpc-servers/connect-echo.mjs'] },
];

/** Start one echo server on a free port; info {port}. */
export function startServer(s: ServerKind, extra: string[] = []): Promise<Child> {
  return start([...s.args, '--port=0', ...extra], (line) => {
    const j = json(line) as { port?: number } | undefined;
    return j?.port ? { port: j.port } : undefined;
  });
}
