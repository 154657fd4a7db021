// Wire check: the same ext_proc streams sent, byte for byte, to each echo server
// over a raw node:http2 connection; prints what each answers (HTTP/2 headers,
// messages, trailers) wherever it differs from the grpc-js floor. Messages are
// compared twice: as bytes, and decoded (proto3 JSON, defaults omitted).
//   node bench/grpc-servers/wire.mjs
import { toJson, fromBinary } from '@bufbuild/protobuf';
import { connect } from 'node:http2';
import { requestShape, sseResponse } from '../epp/load.ts';
import { stop } from '../lib/processes.ts';
import { requestBody, requestHeaders } from '../lib/ext-proc-messages.ts';
import { encodeRequest } from '../../src/extproc/proto.ts';
import { SERVERS, startServer } from './servers.ts';
import { ProcessingResponseSchema } from './gen/envoy/service/ext_proc/v3/external_processor_pb.js';

const PROCESS = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

function frame(msg, flag = 0) {
  const out = Buffer.allocUnsafe(5 + msg.length);
  out[0] = flag;
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}

/** Split received DATA into messages (compressed ones are reported, not decoded). */
function deframe(buf) {
  const out = [];
  let at = 0;
  while (at + 5 <= buf.length) {
    const len = buf.readUInt32BE(at + 1);
    out.push({ flag: buf[at], bytes: buf.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  if (at !== buf.length) out.push({ flag: -1, bytes: buf.subarray(at) });
  return out;
}

const body = (n) => Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'w '.repeat(n) }] }));

/** Each case: the bytes the client sends (already framed), in the pieces it writes them, and the path. */
const CASES = {
  'chat body (≈33 KB in 16 KB chunks)': () => {
    const s = requestShape('/v1/chat/completions', body(16_000));
    return { pieces: [s.headers, ...s.chunks].map((m) => frame(m)) };
  },
  'headers only (end_of_stream on headers)': () => ({ pieces: [frame(encodeRequest(requestHeaders([[':method', 'GET'], [':path', '/v1/models']], { endOfStream: true })))] }),
  'empty body (one empty chunk with end_of_stream)': () => {
    const s = requestShape('/v1/chat/completions', Buffer.alloc(0));
    return { pieces: [s.headers, encodeRequest(requestBody(Buffer.alloc(0), true))].map((m) => frame(m)) };
  },
  'large body (≈400 KB → 7 echo chunks)': () => {
    const s = requestShape('/v1/completions', body(200_000));
    return { pieces: [s.headers, ...s.chunks].map((m) => frame(m)) };
  },
  'request + 20-chunk SSE response': () => {
    const s = requestShape('/v1/chat/completions', body(2_000));
    const r = sseResponse(20);
    return { pieces: [s.headers, ...s.chunks, r.headers, ...r.chunks].map((m) => frame(m)) };
  },
  'frames split at odd boundaries (3-byte then 1,000-byte writes)': () => {
    const s = requestShape('/v1/chat/completions', body(4_000));
    const all = Buffer.concat([s.headers, ...s.chunks].map((m) => frame(m)));
    const pieces = [all.subarray(0, 3)];
    for (let off = 3; off < all.length; off += 1000) pieces.push(all.subarray(off, Math.min(all.length, off + 1000)));
    return { pieces };
  },
  'half-close with no message': () => ({ pieces: [] }),
  'compressed flag without grpc-encoding': () => {
    const s = requestShape('/v1/chat/completions', body(10));
    return { pieces: [frame(s.headers, 1)] };
  },
  'truncated message then half-close': () => {
    const s = requestShape('/v1/chat/completions', body(10));
    return { pieces: [frame(s.headers).subarray(0, 20)] };
  },
  'unknown method': () => ({ pieces: [frame(requestShape('/x', Buffer.alloc(0)).headers)], path: '/envoy.service.ext_proc.v3.ExternalProcessor/Nope' }),
};

function exchange(port, { pieces, path = PROCESS, headers: extra = {} }) {
  return new Promise((resolve) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    const data = [];
    let headers = {};
    let trailers = {};
    const timer = setTimeout(() => req.close(), 5000);
    req.on('response', (h, flags) => (headers = { ...h, ...(flags & 1 ? { '(end_stream)': 'trailers-only' } : {}) }));
    req.on('trailers', (t) => (trailers = { ...t }));
    req.on('data', (d) => data.push(d));
    req.on('error', (e) => (trailers = { error: e.message }));
    req.on('close', () => {
      clearTimeout(timer);
      session.close();
      resolve({ headers: clean(headers), trailers: clean(trailers), messages: deframe(Buffer.concat(data)), rst: req.rstCode });
    });
    let i = 0;
    const next = () => {
      if (i < pieces.length) req.write(pieces[i++], () => setImmediate(next));
      else req.end();
    };
    next();
  });
}

function clean(h) {
  const out = {};
  for (const k of Object.keys(h).sort()) if (k !== 'date') out[k] = String(h[k]);
  return out;
}

function decoded(m) {
  if (m.flag !== 0) return `<flag ${m.flag}, ${m.bytes.length} bytes>`;
  try {
    const j = toJson(ProcessingResponseSchema, fromBinary(ProcessingResponseSchema, m.bytes));
    return JSON.stringify(j, (_k, v) => (typeof v === 'string' && v.length > 80 ? `${v.slice(0, 24)}…(${v.length} chars)` : v));
  } catch (e) {
    return `<undecodable: ${e.message}>`;
  }
}

const children = [];
try {
  for (const s of SERVERS) children.push(await startServer(s));
  let differences = 0;
  for (const [name, make] of Object.entries(CASES)) {
    const c = make();
    const answers = [];
    for (const child of children) answers.push(await exchange(child.info.port, c));
    const ref = answers[0];
    console.log(`\n## ${name}`);
    console.log(`  grpc-js: headers ${JSON.stringify(ref.headers)} trailers ${JSON.stringify(ref.trailers)} rst ${ref.rst}; ${ref.messages.length} messages, ${ref.messages.reduce((a, m) => a + m.bytes.length, 0)} bytes`);
    for (let i = 1; i < SERVERS.length; i++) {
      const a = answers[i];
      const notes = [];
      if (JSON.stringify(a.headers) !== JSON.stringify(ref.headers)) notes.push(`headers ${JSON.stringify(a.headers)}`);
      if (JSON.stringify(a.trailers) !== JSON.stringify(ref.trailers)) notes.push(`trailers ${JSON.stringify(a.trailers)}`);
      if (a.rst !== ref.rst) notes.push(`rst ${a.rst}`);
      if (a.messages.length !== ref.messages.length) notes.push(`${a.messages.length} messages`);
      const n = Math.min(a.messages.length, ref.messages.length);
      let sameBytes = a.messages.length === ref.messages.length;
      for (let k = 0; k < n; k++) {
        if (!a.messages[k].bytes.equals(ref.messages[k].bytes) || a.messages[k].flag !== ref.messages[k].flag) {
          sameBytes = false;
          const da = decoded(a.messages[k]);
          const dr = decoded(ref.messages[k]);
          notes.push(da === dr ? `message ${k}: other bytes (${a.messages[k].bytes.length} vs ${ref.messages[k].bytes.length}), same decoded` : `message ${k} differs: ${da} vs grpc-js ${dr}`);
        }
      }
      for (let k = n; k < a.messages.length; k++) notes.push(`extra message ${k}: ${decoded(a.messages[k])}`);
      if (notes.length) differences++;
      console.log(`  ${SERVERS[i].name}: ${notes.length ? notes.join('; ') : 'identical'}${notes.length && sameBytes ? ' (messages byte-identical)' : ''}`);
    }
  }
  // Connect's default compression, against a client that advertises gzip as grpc-js does (Envoy's gRPC client does not).
  const gz = await startServer(SERVERS.find((s) => s.name === 'connect'), ['--gzip']);
  children.push(gz);
  const s = requestShape('/v1/chat/completions', body(16_000));
  const a = await exchange(gz.info.port, { pieces: [s.headers, ...s.chunks].map((m) => frame(m)), headers: { 'grpc-accept-encoding': 'identity,deflate,gzip' } });
  console.log(`\n## connect with its default acceptCompression (--gzip), client sends grpc-accept-encoding: identity,deflate,gzip`);
  console.log(`  connect: headers ${JSON.stringify(a.headers)}; messages ${a.messages.map((m) => `flag ${m.flag} ${m.bytes.length} B`).join(', ')} (the ≈33 KB echo gzipped; the other servers answer identity)`);
  console.log(`\n${differences} server×case answers differ from grpc-js in some way (details above)`);
} finally {
  for (const c of children) await stop(c);
}
