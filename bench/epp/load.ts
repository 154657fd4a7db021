// Envoy-like ext_proc load: one gRPC stream per request, FULL_DUPLEX_STREAMED,
// the body sent in Envoy-sized chunks without waiting, then (optionally) a
// streamed SSE response passed through. Closed loop (fixed concurrency, for
// saturation) and open loop (fixed arrival rate, for latency at a load).
//
// Messages are encoded once when a workload is built and sent as bytes, so the
// generator spends its CPU on the transport, not on re-encoding.
import { Client, credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages.ts';
import { EXT_PROC_SERVICE_NAME, decodeResponse, encodeRequest } from '../../src/extproc/proto.ts';
import { requestBody, requestHeaders, responseBody, responseHeaders } from '../lib/ext-proc-messages.ts';

export interface RequestShape {
  /** Encoded request-headers message. */
  headers: Buffer;
  /** Encoded request-body messages: the body in Envoy-sized chunks, end_of_stream on the last. */
  chunks: Buffer[];
  bodyBytes: number;
}

export interface ResponseShape {
  headers: Buffer;
  /** Encoded response-body messages. */
  chunks: Buffer[];
  bytes: number;
}

export interface Sample {
  /** From the last body byte sent to the destination (headers reply) received: the decision as Envoy sees it. */
  decisionMs: number;
  /** From the last body byte sent to the last echoed body byte received: what the EPP adds to the request. */
  addedMs: number;
  /** Response pass-through time (first response byte sent to last echoed), when a response was sent. */
  responseMs: number;
  /** The endpoint picked: x-gateway-destination-endpoint of the headers reply ('' when absent). */
  destination: string;
}

export interface LoadResult {
  samples: Sample[];
  errors: number;
  errorKinds: Record<string, number>;
  /** Open loop: how late requests started against their schedule (a saturated client shows here). */
  scheduleDelayMs: number[];
  elapsedMs: number;
}

type Call = ClientDuplexStream<Buffer, ProcessingResponse>;
const PATH = `/${EXT_PROC_SERVICE_NAME}/Process`;
const identity = (b: Buffer) => b;

export class ExtProcLoad {
  readonly #clients: Client[] = [];
  #next = 0;

  constructor(address: string, channels = 2) {
    for (let i = 0; i < channels; i++) {
      // A local subchannel pool per client: separate HTTP/2 connections, as Envoy uses several.
      this.#clients.push(
        new Client(address, credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'grpc.max_send_message_length': 64 << 20,
          'grpc.max_receive_message_length': 64 << 20,
        }),
      );
    }
  }

  close(): void {
    for (const c of this.#clients) c.close();
  }

  one(req: RequestShape, res?: ResponseShape): Promise<Sample> {
    const client = this.#clients[this.#next++ % this.#clients.length];
    const call: Call = client.makeBidiStreamRequest(PATH, identity, decodeResponse);
    return new Promise<Sample>((resolve, reject) => {
      let bodyEnd = 0;
      let decision = 0;
      let echoed = 0;
      let added = 0;
      let respStart = 0;
      let respEchoed = 0;
      let respBytes = 0;
      let responseMs = 0;
      let destination = '';
      let failed: Error | undefined;
      call.on('data', (m: ProcessingResponse) => {
        if (m.immediate_response) {
          failed = new Error(`immediate ${m.immediate_response.status.code}`);
          return;
        }
        if (m.request_headers) {
          decision = performance.now() - bodyEnd;
          destination = destinationOf(m.request_headers.response);
        } else if (m.request_body) {
          const s = m.request_body.response.body_mutation?.streamed_response;
          echoed += s?.body.length ?? 0;
          if (s?.end_of_stream) {
            added = performance.now() - bodyEnd;
            if (!res) call.end();
            else {
              respStart = performance.now();
              call.write(res.headers);
              respBytes = res.bytes;
              for (const c of res.chunks) call.write(c);
            }
          }
        } else if (m.response_body) {
          const s = m.response_body.response.body_mutation?.streamed_response;
          respEchoed += s?.body.length ?? 0;
          if (s?.end_of_stream) {
            responseMs = performance.now() - respStart;
            call.end();
          }
        }
      });
      call.on('end', () => {
        if (failed) reject(failed);
        else if (added === 0) reject(new Error('stream ended before the body echo'));
        else if (res && respEchoed < respBytes) reject(new Error('response not fully echoed'));
        else resolve({ decisionMs: decision, addedMs: added, responseMs, destination });
      });
      call.on('error', (err) => reject(err));
      call.write(req.headers);
      for (const c of req.chunks) call.write(c);
      bodyEnd = performance.now();
      void echoed;
    });
  }

  /** `concurrency` streams back to back for `durationMs`. */
  async closedLoop(concurrency: number, durationMs: number, pick: (i: number) => RequestShape, res?: ResponseShape): Promise<LoadResult> {
    const result: LoadResult = { samples: [], errors: 0, errorKinds: {}, scheduleDelayMs: [], elapsedMs: 0 };
    const start = performance.now();
    const end = start + durationMs;
    let i = 0;
    const worker = async () => {
      while (performance.now() < end) {
        try {
          result.samples.push(await this.one(pick(i++), res));
        } catch (err) {
          this.#error(result, err);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    result.elapsedMs = performance.now() - start;
    return result;
  }

  /**
   * Open loop: start a request every 1/rate s regardless of completions, for `durationMs`.
   * `onSample` sees each completed request as it completes (its index as given to `pick`).
   */
  async openLoop(rate: number, durationMs: number, pick: (i: number) => RequestShape, res?: ResponseShape, onSample?: (i: number, s: Sample) => void): Promise<LoadResult> {
    const result: LoadResult = { samples: [], errors: 0, errorKinds: {}, scheduleDelayMs: [], elapsedMs: 0 };
    const interval = 1000 / rate;
    const total = Math.floor((durationMs / 1000) * rate);
    const start = performance.now();
    const pending: Promise<void>[] = [];
    let i = 0;
    await new Promise<void>((done) => {
      const tick = () => {
        const now = performance.now();
        while (i < total && start + i * interval <= now) {
          result.scheduleDelayMs.push(now - (start + i * interval));
          const at = i;
          pending.push(
            this.one(pick(i), res).then(
              (s) => {
                result.samples.push(s);
                onSample?.(at, s);
              },
              (err) => this.#error(result, err),
            ),
          );
          i++;
        }
        if (i >= total) return done();
        setTimeout(tick, Math.max(0, start + i * interval - performance.now()));
      };
      tick();
    });
    await Promise.all(pending);
    result.elapsedMs = performance.now() - start;
    return result;
  }

  #error(result: LoadResult, err: unknown): void {
    result.errors++;
    const kind = (err as Error).message.slice(0, 60);
    result.errorKinds[kind] = (result.errorKinds[kind] ?? 0) + 1;
  }
}

/** The destination header a headers reply sets, '' when none. */
function destinationOf(r: { header_mutation?: { set_headers?: { header: { key: string; raw_value?: Buffer; value?: string } }[] } }): string {
  for (const h of r.header_mutation?.set_headers ?? []) {
    if (h.header.key.toLowerCase() === 'x-gateway-destination-endpoint') return h.header.raw_value?.length ? h.header.raw_value.toString('latin1') : (h.header.value ?? '');
  }
  return '';
}

/** Build the request-headers message and Envoy-sized chunks of a body. */
export function requestShape(path: string, body: Buffer, chunkSize = 16_384): RequestShape {
  const chunks: Buffer[] = [];
  for (let off = 0; off < body.length; off += chunkSize) {
    const end = Math.min(off + chunkSize, body.length);
    chunks.push(encodeRequest(requestBody(body.subarray(off, end), end === body.length)));
  }
  const headers = requestHeaders(
    [
      [':method', 'POST'],
      [':path', path],
      [':authority', 'gateway'],
      ['content-type', 'application/json'],
      ['content-length', String(body.length)],
      ['x-request-id', 'bench'],
    ],
    { endOfStream: false },
  );
  return { headers: encodeRequest(headers), chunks, bodyBytes: body.length };
}

/** A streamed chat response of `n` SSE chunks ending with usage and [DONE]. */
export function sseResponse(n: number): ResponseShape {
  const raw: Buffer[] = [];
  const chunk = (json: string) => Buffer.from('data: ' + json + '\n\n');
  for (let i = 0; i < n - 2; i++) {
    raw.push(chunk(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: `tok${i} ` } }] })));
  }
  raw.push(chunk(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 8000, completion_tokens: n - 2, total_tokens: 8000 + n - 2 } })));
  raw.push(Buffer.from('data: [DONE]\n\n'));
  const chunks = raw.map((body, i) => encodeRequest(responseBody(body, i === raw.length - 1)));
  const headers = responseHeaders([[':status', '200'], ['content-type', 'text/event-stream']], false);
  return { headers: encodeRequest(headers), chunks, bytes: raw.reduce((a, b) => a + b.length, 0) };
}
