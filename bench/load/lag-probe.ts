// Preloaded into the processes the demo starts (node --import …/lag-probe.ts script.ts), so
// the simulator's and the gateway's event-loop lag is measured without changing them: a
// histogram of the loop's delay, served as JSON on a loopback port announced on stdout as
// {"lagProbePort": N}. Each GET answers the lag since the previous GET and starts a new window.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const RESOLUTION_MS = 10;
const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
h.enable();
const lag = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);

const server = createServer((req, res) => {
  const body = JSON.stringify({ count: h.count, p50Ms: lag(h.percentile(50)), p99Ms: lag(h.percentile(99)), maxMs: lag(h.max) });
  h.reset();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
  req.resume();
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ lagProbePort: (server.address() as AddressInfo).port }) + '\n');
});
// Never keeps the process alive.
server.unref();
