// Reading a request body's JSON as its chunks arrive (src/openai/streaming-json.ts)
// against parsing it whole after the last chunk (join, UTF-8 decode,
// JSON.parse: what llm-epp did before). "After the last byte" is the work left
// once the last chunk is in, up to the prefix-block hashes the approximate
// prefix scorer looks up (routing text, up to 8,192 blocks of 64 bytes, its default): it is what
// delays the routing decision.
//
//   npm run bench:body-parse                 prints a Markdown table
//   npm run bench:body-parse -- --append     also appends it to bench/RESULTS.md
import { appendFileSync } from 'node:fs';
import { receivedBody } from '../src/openai/request-body.ts';
import { parseRequestBody } from '../src/openai/request.ts';
import { StreamingJsonReader } from '../src/openai/streaming-json.ts';
import { blockHashes } from '../src/prefix/hash.ts';
import { runMeta } from './lib/run-meta.ts';

const CHUNK = 16_384;

function words(seed: number, chars: number): string {
  let s = '';
  for (let i = 0; s.length < chars; i++) s += `w${(seed * 7919 + i * 104729) % 50021} `;
  return s.slice(0, chars);
}

function chunksOf(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  // Copies, as gRPC delivers each chunk in its own buffer.
  for (let o = 0; o < body.length; o += CHUNK) out.push(Buffer.from(body.subarray(o, o + CHUNK)));
  return out;
}

const bodies: [string, Buffer][] = [];
for (const size of [16 << 10, 64 << 10, 256 << 10, 400_000, 1 << 20]) {
  const label = size >= 1 << 20 ? `${size >> 20} MB` : `${Math.round(size / 1024)} KB`;
  bodies.push([`completions, ${label}`, Buffer.from(JSON.stringify({ model: 'meta-llama/Llama-3.1-8B-Instruct', prompt: words(size, size) }))]);
}
bodies.push([
  'chat, 8k tokens (bench:epp headline)',
  Buffer.from(JSON.stringify({ model: 'meta-llama/Llama-3.1-8B-Instruct', stream: true, messages: [{ role: 'system', content: words(1, 24_000) }, { role: 'user', content: words(2, 8_000) }] })),
]);
bodies.push(['chat, 400 messages of 1 KB', Buffer.from(JSON.stringify({ model: 'm', messages: Array.from({ length: 400 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: words(i, 1000) })) }))]);
bodies.push(['completions, 60k token ids', Buffer.from(JSON.stringify({ model: 'm', prompt: Array.from({ length: 60_000 }, (_, i) => (i * 7919) % 128_000) }))]);

/** Median microseconds of `fn` over rounds of at least 400 ms. */
function median(fn: () => [number, number]): [number, number] {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < 10; i++) fn();
  const t0 = performance.now();
  while (performance.now() - t0 < 400 || a.length < 20) {
    const [x, y] = fn();
    a.push(x);
    b.push(y);
  }
  const mid = (v: number[]) => v.sort((p, q) => p - q)[v.length >> 1] * 1000;
  return [mid(a), mid(b)];
}

const rows = ['| body | bytes | whole-body parse + hashes after the last byte (µs) | read as it arrives: during arrival (µs) | after the last byte, + hashes (µs) | after-last-byte ratio |', '|---|---:|---:|---:|---:|---:|'];
for (const [name, body] of bodies) {
  const chunks = chunksOf(body);
  const path = name.startsWith('chat') ? '/v1/chat/completions' : '/v1/completions';
  // As the approximate prefix producer reads it, with its default window (8,192 blocks).
  const route = (p: ReturnType<typeof parseRequestBody>) => blockHashes(p.routingParts, p.model, p.cacheSalt, 64, 8192);
  const [whole] = median(() => {
    const t0 = performance.now();
    route(parseRequestBody(Buffer.concat(chunks, body.length), path));
    return [performance.now() - t0, 0];
  });
  let fellBack = false;
  const [during, after] = median(() => {
    const t0 = performance.now();
    const r = new StreamingJsonReader();
    for (let i = 0; i < chunks.length - 1; i++) r.push(chunks[i]);
    // The last chunk's own work is after its last byte.
    const t1 = performance.now();
    r.push(chunks[chunks.length - 1]);
    // The reader gives up on bodies it cannot speed up; the whole body is then parsed.
    const json = r.end();
    if (json === undefined) fellBack = true;
    route(parseRequestBody(receivedBody(chunks, body.length, json), path));
    return [t1 - t0, performance.now() - t1];
  });
  const f = (x: number) => x.toFixed(0);
  rows.push(`| ${name}${fellBack ? ' (reader gives up: whole-body parse)' : ''} | ${body.length} | ${f(whole)} | ${f(during)} | ${f(after)} | ${(after / whole).toFixed(3)} |`);
}

const meta = runMeta();
const md = [
  `## Request body parse: read as it arrives vs whole — ${meta.date} (\`npm run bench:body-parse\`)`,
  '',
  `Machine: ${meta.cpu} × ${meta.cores}, ${meta.memGB} GB, Node ${meta.node}. Bodies in ${CHUNK / 1024} KB chunks; medians over ≥ 20 runs. The floor is the whole-body parse of the same body in the same run.`,
  '',
  ...rows,
  '',
].join('\n');
process.stdout.write(md);
if (process.argv.includes('--append')) appendFileSync(new URL('./RESULTS.md', import.meta.url), '\n' + md);
