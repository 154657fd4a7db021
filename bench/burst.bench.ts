// `node bench/burst.bench.ts`: a burst of large request bodies against the
// llm-epp process, the way the reliability trial sent it: N streams at once,
// each a body of B bytes in 64 KiB chunks (FULL_DUPLEX_STREAMED), every routed
// request then held open (its response never comes) until the burst is over.
// Reports how many were routed / refused (429, 413) and llm-epp's RSS before,
// at its peak and after, for the default --max-buffered-request-bytes and any
// other value given with --cap (repeatable).
//
//   node bench/burst.bench.ts [--streams 250] [--body-mb 5] [--cap 256Mi]
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import type { ProcessingRequest, ProcessingResponse } from '../src/extproc/messages.ts';
import { ExternalProcessorClient } from './lib/ext-proc-client.ts';
import { json, rssMB, start, startEpp, stop, waitReady } from './lib/processes.ts';

type Stream = ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

const { values } = parseArgs({
  options: { streams: { type: 'string', default: '250' }, 'body-mb': { type: 'string', default: '5' }, cap: { type: 'string', multiple: true, default: [] } },
});
const STREAMS = Number(values.streams);
const BODY = Math.round(Number(values['body-mb']) * 1e6);
const CHUNK = 64 * 1024;

function body(i: number): Buffer {
  const head = `{"model":"m","prompt":"burst ${i} `;
  const b = Buffer.alloc(BODY, 0x61);
  b.write(head, 0);
  b.write('"}', BODY - 2);
  return b;
}

interface Outcome {
  routed: number;
  status: Record<string, number>;
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  ms: number;
}

async function burst(cap: string | undefined, ports: string): Promise<Outcome> {
  const epp = await startEpp(ports, ['--max-request-body-bytes=8Mi', ...(cap ? [`--max-buffered-request-bytes=${cap}`] : [])], [], 'inherit');
  try {
    await waitReady(epp.info.metricsPort, ports.split(',').length);
    const pid = epp.proc.pid!;
    const client = new ExternalProcessorClient(`127.0.0.1:${epp.info.port}`, credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20 });
    const rssBefore = rssMB(pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMB(pid))), 50);
    const t0 = performance.now();
    const status: Record<string, number> = {};
    const held: Stream[] = [];
    await Promise.all(
      Array.from({ length: STREAMS }, (_, i) => {
        const call = (client as unknown as { Process(): Stream }).Process();
        return new Promise<void>((resolve) => {
          call.on('data', (m: ProcessingResponse) => {
            if (m.immediate_response) {
              const code = String(m.immediate_response.status?.code);
              status[code] = (status[code] ?? 0) + 1;
              resolve();
            } else if (m.request_headers) {
              held.push(call);
              resolve();
            }
          });
          call.on('error', (e: Error) => {
            status[`grpc: ${e.message.slice(0, 40)}`] = (status[`grpc: ${e.message.slice(0, 40)}`] ?? 0) + 1;
            resolve();
          });
          call.write({
            request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }] }, end_of_stream: false },
            protocol_config: { request_body_mode: 4, response_body_mode: 4 },
          });
          const b = body(i);
          for (let at = 0; at < b.length; at += CHUNK) {
            call.write({ request_body: { body: b.subarray(at, Math.min(b.length, at + CHUNK)), end_of_stream: at + CHUNK >= b.length } });
          }
        });
      }),
    );
    const ms = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 500));
    for (const call of held) {
      call.write({ response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] }, end_of_stream: true } });
      call.end();
    }
    await new Promise((r) => setTimeout(r, 2000));
    clearInterval(sampler);
    const rssAfter = rssMB(pid);
    client.close();
    return { routed: held.length, status, rssBefore, rssPeak, rssAfter, ms };
  } finally {
    await stop(epp);
  }
}

const fleet = await start(['bench/epp/fleet.ts', '--pods=4'], (l) => {
  const j = json(l) as { ports?: number[] } | undefined;
  return j?.ports ? Object.fromEntries(j.ports.map((p, i) => [String(i), p])) : undefined;
});
try {
  const ports = Object.values(fleet.info).map((p) => `127.0.0.1:${p}`).join(',');
  const lines = [
    `### Burst: ${STREAMS} streams × ${(BODY / 1e6).toFixed(1)} MB bodies at once`,
    '',
    `\`node bench/burst.bench.ts --streams ${STREAMS} --body-mb ${BODY / 1e6}${values.cap!.map((c) => ` --cap ${c}`).join('')}\` · ${cpus().length} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    '',
    '| --max-buffered-request-bytes | routed (held open) | refused | llm-epp RSS before → peak → after (MB) | burst took |',
    '|---|---|---|---|---|',
  ];
  for (const cap of [undefined, ...values.cap!]) {
    const o = await burst(cap, ports);
    const refused = Object.entries(o.status).map(([k, v]) => `${v} × ${k}`).join(', ') || 'none';
    lines.push(`| ${cap ?? 'default (¼ of heap limit)'} | ${o.routed} | ${refused} | ${o.rssBefore.toFixed(0)} → ${o.rssPeak.toFixed(0)} → ${o.rssAfter.toFixed(0)} | ${(o.ms / 1000).toFixed(1)} s |`);
    console.error(lines.at(-1));
  }
  console.log(lines.join('\n'));
} finally {
  await stop(fleet);
}
