// A fleet of fake model servers for the EPP benchmark, in one process: each
// pod serves a realistic vLLM /metrics page (~25 KB, histograms included)
// whose waiting/running/KV values drift every 100 ms, so every scrape parses
// fresh numbers, and answers POSTed completions at once (a JSON answer, or
// for chat a 16-event SSE stream: bench/gateway/fake-upstream.ts) for the
// scenarios with the benchmark gateway in the path. Started as a child
// process; prints its ports (and, with --address-per-pod, each pod's own
// loopback address 127.0.1.1, 127.0.1.2, …, as pods have their own IPs) as JSON.
//   node bench/epp/fleet.ts --pods 64 [--address-per-pod]
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { answer, buildAnswers } from '../gateway/fake-upstream.ts';
import { syntheticVllmPage } from '../lib/vllm-page.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '8' }, 'address-per-pod': { type: 'boolean', default: false } } });
const n = Number(values.pods);
if (values['address-per-pod'] && !(n <= 254)) {
  process.stderr.write('fleet: --address-per-pod gives at most 254 pods an address (127.0.1.1–127.0.1.254)\n');
  process.exit(2);
}
const hostOf = (i: number) => (values['address-per-pod'] ? `127.0.1.${i + 1}` : '127.0.0.1');
const answers = buildAnswers({ sseChunks: 16 });

interface Pod {
  server: Server;
  page: Buffer;
  waiting: number;
  running: number;
  kv: number;
}

const pods: Pod[] = [];
for (let i = 0; i < n; i++) {
  const pod: Pod = { server: undefined as unknown as Server, page: Buffer.alloc(0), waiting: i % 4, running: 8 + (i % 8), kv: 0.2 + (i % 10) / 20 };
  pod.page = Buffer.from(syntheticVllmPage(pod));
  pod.server = createServer((req, res) => {
    if (req.url === '/metrics') res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(pod.page);
    else if (req.method === 'POST') answer(answers, req, res);
    else res.writeHead(404).end();
  });
  pod.server.keepAliveTimeout = 60_000;
  pods.push(pod);
}
await Promise.all(pods.map((p, i) => new Promise<void>((r) => p.server.listen(0, hostOf(i), r))));

// Drift: a small random walk, so scores change but stay comparable.
setInterval(() => {
  for (const p of pods) {
    p.waiting = Math.max(0, Math.min(20, p.waiting + Math.round(Math.random() * 2 - 1)));
    p.running = Math.max(0, Math.min(64, p.running + Math.round(Math.random() * 4 - 2)));
    p.kv = Math.max(0, Math.min(1, p.kv + (Math.random() - 0.5) * 0.02));
    p.page = Buffer.from(syntheticVllmPage(p));
  }
}, 100).unref();

const ports = pods.map((p) => (p.server.address() as AddressInfo).port);
process.stdout.write(JSON.stringify(values['address-per-pod'] ? { ports, hosts: pods.map((_, i) => hostOf(i)) } : { ports }) + '\n');
process.on('SIGTERM', () => process.exit(0));
