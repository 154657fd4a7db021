// The load generator's own CPU per request: a canned SSE server in a child
// process answers at once, so everything this process spends is the client's
// (building the body, sending it, parsing the stream, recording).
//
//   node bench/load/overhead.bench.ts [--requests 3000] [--concurrency 16] [--chunks 64] [--runner PATH]
//
// --runner takes another copy of runner.ts (e.g. the previous commit's) to compare.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { numFlag } from '../lib/args.ts';
import type { runStages as RunStages } from './runner.ts';
import { makeWorkload } from './workloads.ts';

const SERVER = `
const http = require('node:http');
const chunks = Number(process.argv[1]);
const piece = 'data: ' + JSON.stringify({ choices: [{ delta: { content: 'tok ' } }] }) + '\\n\\n';
const body = piece.repeat(chunks) + 'data: ' + JSON.stringify({ choices: [], usage: { prompt_tokens: 1000, completion_tokens: chunks } }) + '\\n\\ndata: [DONE]\\n\\n';
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-sim-pod': 'canned' });
    // One write per chunk, as a server streams tokens.
    for (let i = 0; i < chunks; i++) res.write(piece);
    res.end(body.slice(piece.length * chunks));
  });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

const { values: v } = parseArgs({
  options: { requests: { type: 'string', default: '3000' }, concurrency: { type: 'string', default: '16' }, chunks: { type: 'string', default: '64' }, runner: { type: 'string' } },
});
const requests = numFlag('requests', v.requests, true, 1)!;
const concurrency = numFlag('concurrency', v.concurrency, true, 1)!;
const chunks = numFlag('chunks', v.chunks, true, 1)!;
const mod = (await import(v.runner ? pathToFileURL(resolve(v.runner)).href : './runner.ts')) as { runStages: typeof RunStages };

const child = spawn(process.execPath, ['-e', SERVER, String(chunks)], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((ok) => createInterface({ input: child.stdout! }).once('line', (l) => ok(Number(l))));
try {
  const run = (n: number) =>
    mod.runStages({
      url: `http://127.0.0.1:${port}`,
      workload: makeWorkload('no-sharing', { promptTokens: 1000, outputTokens: chunks }),
      stages: [{ concurrency, maxRequests: n, durationMs: 600_000 }],
      progress: false,
    });
  await run(Math.min(500, requests)); // warm-up: JIT, connections
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await run(requests);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const failed = r.stages[0].records.filter((x) => !x.ok).length;
  const perReq = (c.user + c.system) / requests;
  process.stdout.write(
    `${requests} requests × ${chunks} chunks at concurrency ${concurrency}: ${perReq.toFixed(0)} µs CPU per request ` +
      `(user ${(c.user / requests).toFixed(0)}, system ${(c.system / requests).toFixed(0)}), ${(requests / (wall / 1000)).toFixed(0)} req/s, ${failed} failed\n`,
  );
} finally {
  child.kill('SIGTERM');
}
