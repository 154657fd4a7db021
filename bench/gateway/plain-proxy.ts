// The floor for the benchmark gateway: the least a Node HTTP proxy does for a
// request (node:http in, node:http out over a keep-alive agent, both bodies
// piped), with no ext_proc and no routing. What the gateway costs above this
// is what its EPP path and its own code add.
//
//   node bench/gateway/plain-proxy.ts --port 0 --upstream 127.0.0.1:8000   (prints {"port": N})
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, upstream: { type: 'string' } } });
const m = /^(.+):(\d+)$/.exec(values.upstream ?? '');
if (!m) {
  process.stderr.write(`plain-proxy: --upstream host:port is required, got "${values.upstream ?? ''}"\n`);
  process.exit(2);
}
const [, host, port] = m;
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer((req, res) => {
  const up = request({ host, port, method: req.method, path: req.url, headers: req.headers, agent }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502);
    res.end(err.message);
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
