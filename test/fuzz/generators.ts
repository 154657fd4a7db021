// Seeded case generators for the ext_proc fuzz suite. A case is the exact
// message sequence one stream sends, how the client side finishes, and
// whether the request is valid (then it must be routed).
import { mulberry32 } from '../../src/random.ts';
import type { HeaderValue, PbValue, ProcessingRequest } from '../../src/extproc/messages.ts';

export type Rng = () => number;
export type Finish = 'reply' | 'half-close' | 'cancel';
export interface FuzzCase {
  gen: string;
  msgs: ProcessingRequest[];
  finish: Finish;
  mustRoute: boolean;
  /** What the generator chose that matters for a failure (hint kind, body modes). */
  note?: string;
}
interface Ctx {
  r: Rng;
  id: string;
  pod: string;
}

/** Each case draws from its own mulberry32 stream, so (seed, index) reproduces it alone. */
export const caseRng = (seed: number, index: number): Rng => mulberry32((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);

const int = (r: Rng, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)];
const bytes = (r: Rng, n: number) => Buffer.from(Array.from({ length: n }, () => int(r, 256)));
const PATHS = ['/v1/completions', '/v1/chat/completions', '/v1/responses', '/v1/embeddings', '/', '/v1/chat/completions/?x=1'];

function headers(c: Ctx, path = pick(c.r, PATHS), eos = false): ProcessingRequest {
  const hv = (key: string, v: string): HeaderValue => ({ key, raw_value: Buffer.from(v) });
  const list = [hv(':method', 'POST'), hv(':path', path), hv(':authority', 'gw'), hv('x-request-id', c.id)];
  return { request_headers: { headers: { headers: list }, end_of_stream: eos }, protocol_config: { request_body_mode: 4, response_body_mode: 4 } };
}
const body = (b: Buffer, eos: boolean): ProcessingRequest => ({ request_body: { body: b, end_of_stream: eos } });
const respHeaders = (status: string, eos: boolean): ProcessingRequest => ({
  response_headers: { headers: { headers: [{ key: ':status', raw_value: Buffer.from(status) }, { key: 'content-type', raw_value: Buffer.from('application/json') }] }, end_of_stream: eos },
});
const respBody = (b: string, eos: boolean): ProcessingRequest => ({ response_body: { body: Buffer.from(b), end_of_stream: eos } });

/** The body split at random points (each chunk ≤ 64 KiB, like Envoy's reads); the last chunk carries end_of_stream. */
function chunks(r: Rng, b: Buffer, eos = true): ProcessingRequest[] {
  const out: ProcessingRequest[] = [];
  let at = 0;
  do {
    const n = Math.min(b.length - at, 1 + int(r, r() < 0.5 ? 64 : 65_536));
    out.push(body(b.subarray(at, at + n), false));
    at += n;
  } while (at < b.length);
  out[out.length - 1].request_body!.end_of_stream = eos;
  return out;
}

function validJson(c: Ctx, path: string): Record<string, unknown> {
  const text = 'hello '.repeat(1 + int(c.r, 40));
  if (path.includes('chat')) return { model: 'm', messages: [{ role: 'user', content: text }], stream: c.r() < 0.3 };
  if (path.includes('responses')) return { model: 'm', input: text };
  if (path.includes('embeddings')) return { model: 'm', input: [text] };
  return { model: 'm', prompt: text, max_tokens: 8 };
}

/** A well-formed request with a complete response phase: must be routed. */
function valid(c: Ctx, head = headers(c, pick(c.r, PATHS.slice(0, 4)))): ProcessingRequest[] {
  const path = head.request_headers!.headers!.headers![1].raw_value!.toString();
  const resp = [respHeaders(pick(c.r, ['200', '500', '429']), false), respBody('{"usage":{"prompt_tokens":3,"completion_tokens":2}}', true)];
  if (c.r() < 0.5) resp[0].metadata_context = { filter_metadata: { 'envoy.lb': { fields: { 'x-gateway-destination-endpoint-served': { stringValue: pick(c.r, [c.pod, 'nope:1', '']) } } } } };
  const b = Buffer.from(JSON.stringify(validJson(c, path)));
  // BUFFERED: Envoy sends the whole body as one message.
  return [head, ...(head.protocol_config?.request_body_mode === 2 ? [body(b, true)] : chunks(c.r, b)), ...resp];
}

const ODD = (r: Rng): unknown => pick(r, [42, -1.5, true, null, [], ['m'], { name: 'm' }, '', 'x'.repeat(int(r, 300)), [[1, 2]], { $: [null] }]);

function randomValue(r: Rng, depth = 0): PbValue {
  switch (int(r, depth > 2 ? 4 : 6)) {
    case 0: return { numberValue: r() * 1e6 - 5e5 };
    case 1: return { boolValue: r() < 0.5 };
    case 2: return { stringValue: pick(r, ['', 'a,b', '127.0.0.1', '::1', 'x'.repeat(200)]) };
    case 3: return { nullValue: 0 };
    case 4: return { listValue: { values: Array.from({ length: int(r, 4) }, () => randomValue(r, depth + 1)) } };
    default: return { structValue: { fields: { k: randomValue(r, depth + 1) } } };
  }
}

/** A subset hint of every Value kind; only the hints that do not exclude the pod demand routing. */
function subsetHint(c: Ctx): { value: PbValue; allowsPod: boolean } {
  switch (int(c.r, 7)) {
    case 0: return { value: { numberValue: int(c.r, 100) }, allowsPod: true };
    case 1: return { value: { boolValue: c.r() < 0.5 }, allowsPod: true };
    case 2: return { value: { nullValue: 0 }, allowsPod: true };
    case 3: return { value: { structValue: { fields: { a: { stringValue: c.pod } } } }, allowsPod: true };
    case 4: return { value: { stringValue: c.pod }, allowsPod: true };
    case 5: return { value: { listValue: { values: [{ stringValue: c.pod }, { numberValue: 1 }, { nullValue: 0 }] } }, allowsPod: true };
    default: return { value: c.r() < 0.5 ? { listValue: { values: [{ stringValue: '10.255.0.1:8000' }] } } : randomValue(c.r), allowsPod: false };
  }
}

function randomMessage(c: Ctx): ProcessingRequest {
  const eos = c.r() < 0.4;
  switch (int(c.r, 8)) {
    case 0: return headers(c, pick(c.r, PATHS), eos);
    case 1: return body(c.r() < 0.5 ? bytes(c.r, int(c.r, 200)) : Buffer.from('{"model":"m","prompt":"p"}'), eos);
    case 2: return { request_trailers: { trailers: { headers: [{ key: 'x-t', raw_value: Buffer.from('1') }] } } };
    case 3: return respHeaders(pick(c.r, ['200', '503', '', 'abc']), eos);
    case 4: return respBody(c.r() < 0.5 ? 'data: {"usage":{}}\n\n' : '{"model":"m"', eos);
    case 5: return { response_trailers: { trailers: { headers: [] } } };
    case 6: return { metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': randomValue(c.r) } } } } };
    default: return { protocol_config: { request_body_mode: int(c.r, 6), response_body_mode: int(c.r, 6) }, observability_mode: c.r() < 0.2 };
  }
}

type Gen = (c: Ctx) => { msgs: ProcessingRequest[]; finish?: Finish; mustRoute?: boolean; note?: string };

const GENERATORS: Record<string, Gen> = {
  // (a) body bytes
  'bytes-random': (c) => ({ msgs: [headers(c), ...chunks(c.r, bytes(c.r, int(c.r, 4096)))] }),
  'json-truncated': (c) => {
    const j = Buffer.from(JSON.stringify(validJson(c, '/v1/chat/completions')));
    return { msgs: [headers(c), ...chunks(c.r, j.subarray(0, int(c.r, j.length)))] };
  },
  'json-corrupt': (c) => {
    const j = Buffer.from(JSON.stringify(validJson(c, '/v1/completions')));
    for (let i = 0; i < 1 + int(c.r, 4); i++) j[int(c.r, j.length)] = int(c.r, 256);
    return { msgs: [headers(c, '/v1/completions'), ...chunks(c.r, j)] };
  },
  'huge-string': (c) => {
    const big = 'x'.repeat((1 << 20) - int(c.r, 1000));
    const j = c.r() < 0.5 ? { model: big, prompt: 'p' } : { model: 'm', messages: [{ role: 'user', content: big }] };
    return { msgs: [headers(c, c.r() < 0.5 ? '/v1/completions' : '/v1/chat/completions'), ...chunks(c.r, Buffer.from(JSON.stringify(j)))] };
  },
  'deep-nesting': (c) => {
    const n = 1 + int(c.r, 50_000); // past any recursive walker's stack (~10k frames)
    const [open, close] = c.r() < 0.5 ? ['[', ']'] : ['{"a":', '}'];
    return { msgs: [headers(c, '/v1/chat/completions'), ...chunks(c.r, Buffer.from(`{"model":"m","messages":${open.repeat(n)}1${close.repeat(n)}}`))] };
  },
  'non-utf8': (c) => {
    const bad = pick(c.r, [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]);
    const b = Buffer.concat([Buffer.from('{"model":"m'), Buffer.from(bad), Buffer.from('","prompt":"p"}')]);
    return { msgs: [headers(c, '/v1/completions'), ...chunks(c.r, b)] };
  },
  empty: (c) => ({ msgs: [headers(c), body(Buffer.alloc(0), true)] }),
  // (b) JSON shapes
  'json-shape': (c) => {
    const path = pick(c.r, PATHS.slice(0, 4));
    const j = validJson(c, path);
    const field = pick(c.r, ['model', 'messages', 'prompt', 'input', 'stream', 'stream_options', 'extra', 'max_tokens']);
    j[field] = field === 'prompt' && c.r() < 0.5 ? Array.from({ length: int(c.r, 50) }, () => int(c.r, 50_000)) : field === 'stream' ? pick(c.r, ['true', 1, null]) : ODD(c.r);
    return { msgs: [headers(c, path), ...chunks(c.r, Buffer.from(JSON.stringify(j)))] };
  },
  valid: (c) => ({ msgs: valid(c), mustRoute: true }),
  // (c) message order
  'headers-twice': (c) => {
    const eos = c.r() < 0.5;
    const modes = [int(c.r, 5), int(c.r, 5)];
    const h = (mode: number) => ({ ...headers(c, '/v1/completions', eos), protocol_config: { request_body_mode: mode, response_body_mode: 4 } });
    const msgs = [h(modes[0]), h(modes[1]), ...(eos ? [] : chunks(c.r, Buffer.from('{"model":"m","prompt":"p"}')))];
    return { msgs, note: `request_body_mode ${modes.join(' then ')}, headers end_of_stream ${eos}` };
  },
  'body-first': (c) => ({ msgs: [body(Buffer.from('{"model":"m","prompt":"p"}'), c.r() < 0.5), headers(c), body(Buffer.from('{}'), true)] }),
  'response-before-request-end': (c) => {
    const b = chunks(c.r, Buffer.from('{"model":"m","prompt":"late"}'));
    return { msgs: [headers(c), ...b.slice(0, -1), respHeaders('504', c.r() < 0.5), respBody('{}', true), ...b.slice(-1)] };
  },
  'trailers-first': (c) => ({ msgs: [{ request_trailers: { trailers: { headers: [] } } }, ...(c.r() < 0.5 ? valid(c) : [])] }),
  'no-phase': (c) => ({ msgs: [{ ...(c.r() < 0.5 ? { protocol_config: { request_body_mode: 4 } } : {}) }, ...valid(c).slice(0, int(c.r, 3))] }),
  'never-ending': (c) => ({ msgs: [headers(c), body(Buffer.from('{"model":"m",'), false)], finish: 'cancel' }),
  'half-close-mid-body': (c) => ({ msgs: [headers(c), body(Buffer.from('{"model":"m","prompt":'), false)], finish: 'half-close' }),
  'repeated-eos': (c) => ({ msgs: [headers(c, '/v1/completions'), ...Array.from({ length: 2 + int(c.r, 3) }, () => body(Buffer.from('{"model":"m","prompt":"p"}'), true))] }),
  'response-only': (c) => ({ msgs: [respHeaders('200', false), respBody('{"model":"m"}', c.r() < 0.5), { response_trailers: { trailers: { headers: [] } } }] }),
  'subset-hint': (c) => {
    const { value, allowsPod } = subsetHint(c);
    const metadata_context = { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': value } } } };
    return { msgs: valid(c).map((m) => ({ ...m, metadata_context })), mustRoute: allowsPod, note: `hint ${JSON.stringify(value)}` };
  },
  'body-mode': (c) => {
    const mode = int(c.r, 5);
    const head: ProcessingRequest = { ...headers(c, '/v1/completions'), protocol_config: { request_body_mode: mode, response_body_mode: int(c.r, 5) } };
    if (c.r() < 0.2) delete head.protocol_config; // an Envoy older than 1.33
    return { msgs: valid(c, head), mustRoute: true, note: `protocol_config ${JSON.stringify(head.protocol_config)}` };
  },
  'random-order': (c) => ({ msgs: Array.from({ length: 1 + int(c.r, 8) }, () => randomMessage(c)) }),
};
export const GENERATOR_NAMES = Object.keys(GENERATORS);

export function makeCase(seed: number, index: number, pod: string): FuzzCase {
  const r = caseRng(seed, index);
  const gen = pick(r, GENERATOR_NAMES);
  const out = GENERATORS[gen]({ r, id: `fuzz-${index}`, pod });
  // Any case may also be abandoned by the client part-way.
  const finish = out.finish ?? (r() < 0.08 ? 'cancel' : 'reply');
  return { gen, msgs: out.msgs, finish, mustRoute: (out.mustRoute ?? false) && finish !== 'cancel', note: out.note };
}
