// A small gateway for local benchmarks: it does for each request what Envoy
// does with an EPP — an ext_proc stream in FULL_DUPLEX_STREAMED mode to
// llm-epp, then a proxy to the endpoint in the destination header (walking the
// fallback list on connect failure), with the response streamed back through
// the ext_proc response path. The same proxy routes without an EPP
// (round-robin, random, least-request) to give the baselines.
//
//   node bench/gateway/gateway.ts --port 8081 --strategy epp --epp 127.0.0.1:9002
//   node bench/gateway/gateway.ts --port 8082 --strategy round-robin --endpoints 127.0.0.1:8000,127.0.0.1:8001
import { Client, credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages.ts';
import { EXT_PROC_SERVICE_NAME, decodeResponse, encodeRequest } from '../../src/extproc/proto.ts';
import { requestBody, requestHeaders, responseBody, responseHeaders } from '../lib/ext-proc-messages.ts';

export type Strategy = 'epp' | 'round-robin' | 'random' | 'least-request';

export interface GatewayOptions {
  port?: number;
  host?: string;
  strategy: Strategy;
  /** Baselines: the endpoints (host:port). */
  endpoints?: string[];
  /** strategy epp: llm-epp's ext_proc address (plaintext). */
  epp?: string;
  /** Per-attempt connect timeout to an endpoint. */
  connectTimeoutMs?: number;
}

export interface Gateway {
  readonly port: number;
  /** Requests sent to each endpoint (served). */
  readonly served: Map<string, number>;
  stop(): Promise<void>;
}

type Call = ClientDuplexStream<Buffer, ProcessingResponse>;
const PATH = `/${EXT_PROC_SERVICE_NAME}/Process`;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host', 'content-length']);

/** Replies of one ext_proc stream, awaited in order. */
class Inbox {
  #queue: ProcessingResponse[] = [];
  #waiter: (() => void) | undefined;
  #error: Error | undefined;
  #ended = false;

  constructor(call: Call) {
    call.on('data', (m: ProcessingResponse) => {
      this.#queue.push(m);
      this.#waiter?.();
    });
    call.on('error', (e: Error) => {
      this.#error = e;
      this.#waiter?.();
    });
    call.on('end', () => {
      this.#ended = true;
      this.#waiter?.();
    });
  }

  async next(): Promise<ProcessingResponse> {
    for (;;) {
      const m = this.#queue.shift();
      if (m) return m;
      if (this.#error) throw this.#error;
      if (this.#ended) throw new Error('ext_proc stream ended');
      await new Promise<void>((r) => (this.#waiter = r));
      this.#waiter = undefined;
    }
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function isConnectError(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  return code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'EHOSTUNREACH' || code === 'ECONNRESET';
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const endpoints = opts.endpoints ?? [];
  if (opts.strategy === 'epp' && !opts.epp) throw new Error('strategy epp needs --epp host:port');
  if (opts.strategy !== 'epp' && endpoints.length === 0) throw new Error(`strategy ${opts.strategy} needs --endpoints`);
  const agent = new Agent({ connectTimeout: opts.connectTimeoutMs ?? 2000, keepAliveTimeout: 60_000, connections: 256 });
  const grpc = opts.epp ? new Client(opts.epp, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 }) : undefined;
  const inFlight = new Map<string, number>(endpoints.map((e) => [e, 0]));
  const served = new Map<string, number>();
  let rr = 0;

  const pick = (): string[] => {
    switch (opts.strategy) {
      case 'round-robin': {
        const i = rr++ % endpoints.length;
        return [...endpoints.slice(i), ...endpoints.slice(0, i)];
      }
      case 'random': {
        const i = Math.floor(Math.random() * endpoints.length);
        return [...endpoints.slice(i), ...endpoints.slice(0, i)];
      }
      default:
        return [...endpoints].sort((a, b) => (inFlight.get(a) ?? 0) - (inFlight.get(b) ?? 0) || Math.random() - 0.5);
    }
  };

  /** Forward to the first endpoint that accepts the connection. */
  const forward = async (targets: string[], req: IncomingMessage, headers: Record<string, string>, body: Buffer) => {
    let lastErr: unknown;
    for (const target of targets) {
      try {
        inFlight.set(target, (inFlight.get(target) ?? 0) + 1);
        const res = await request(`http://${target}${req.url ?? '/'}`, {
          method: (req.method ?? 'GET') as 'GET',
          headers,
          body: body.length > 0 ? body : undefined,
          dispatcher: agent,
        });
        return { target, res, release: () => inFlight.set(target, Math.max(0, (inFlight.get(target) ?? 1) - 1)) };
      } catch (err) {
        inFlight.set(target, Math.max(0, (inFlight.get(target) ?? 1) - 1));
        lastErr = err;
        if (!isConnectError(err)) break;
      }
    }
    throw lastErr ?? new Error('no endpoint');
  };

  const clientHeaders = (req: IncomingMessage): Record<string, string> => {
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) h[k] = Array.isArray(v) ? v.join(', ') : v;
    return h;
  };

  const baseline = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    const { target, res: up, release } = await forward(pick(), req, clientHeaders(req), body);
    served.set(target, (served.get(target) ?? 0) + 1);
    try {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      out['x-llm-epp-endpoint'] = target;
      res.writeHead(up.statusCode, out);
      for await (const chunk of up.body) res.write(chunk);
      res.end();
    } finally {
      release();
    }
  };

  const viaEpp = async (req: IncomingMessage, res: ServerResponse) => {
    const call: Call = grpc!.makeBidiStreamRequest(PATH, (b: Buffer) => b, decodeResponse);
    const inbox = new Inbox(call);
    try {
      const headers = clientHeaders(req);
      const list: [string, string][] = [[':method', req.method ?? 'GET'], [':path', req.url ?? '/'], [':authority', req.headers.host ?? 'gateway'], [':scheme', 'http']];
      for (const [k, v] of Object.entries(headers)) list.push([k, v]);
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      call.write(encodeRequest(requestHeaders(list, { endOfStream: !hasBody })));
      // Stream the request body to the EPP as it arrives, as Envoy does.
      if (hasBody) {
        let sent = false;
        for await (const chunk of req) {
          call.write(encodeRequest(requestBody(chunk as Buffer, false)));
          sent = true;
        }
        call.write(encodeRequest(requestBody(Buffer.alloc(0), true)));
        void sent;
      }
      const first = await inbox.next();
      if (first.immediate_response) {
        const imm = first.immediate_response;
        res.writeHead(imm.status.code, { 'content-type': 'application/json' }).end(imm.body);
        call.end();
        return;
      }
      const set = first.request_headers?.response?.header_mutation?.set_headers ?? [];
      const mutated: Record<string, string> = { ...headers };
      let destination = '';
      for (const o of set) {
        const key = o.header.key.toLowerCase();
        const value = o.header.raw_value && o.header.raw_value.length ? Buffer.from(o.header.raw_value).toString() : (o.header.value ?? '');
        if (key === 'x-gateway-destination-endpoint') destination = value;
        else if (!key.startsWith(':') && !HOP_BY_HOP.has(key)) mutated[key] = value;
      }
      // The body comes back in streamed_response chunks.
      const body: Buffer[] = [];
      if (hasBody) {
        for (;;) {
          const m = await inbox.next();
          const s = m.request_body?.response?.body_mutation?.streamed_response;
          if (!s) throw new Error('expected a streamed request body reply');
          if (s.body?.length) body.push(Buffer.from(s.body));
          if (s.end_of_stream) break;
        }
      }
      const { target, res: up, release } = await forward(destination.split(',').filter(Boolean), req, mutated, Buffer.concat(body));
      served.set(target, (served.get(target) ?? 0) + 1);
      try {
        const upHeaders: [string, string][] = [[':status', String(up.statusCode)]];
        for (const [k, v] of Object.entries(up.headers)) if (typeof v === 'string') upHeaders.push([k, v]);
        call.write(
          encodeRequest({
            ...responseHeaders(upHeaders, false),
            metadata_context: { filter_metadata: { 'envoy.lb': { fields: { 'x-gateway-destination-endpoint-served': { stringValue: target } } } } },
          }),
        );
        const hr = await inbox.next();
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        for (const o of hr.response_headers?.response?.header_mutation?.set_headers ?? []) {
          out[o.header.key] = o.header.raw_value && o.header.raw_value.length ? Buffer.from(o.header.raw_value).toString() : (o.header.value ?? '');
        }
        out['x-llm-epp-endpoint'] = target;
        res.writeHead(up.statusCode, out);
        // Each upstream chunk goes through the EPP and back out as it comes.
        const echoes = (async () => {
          for (;;) {
            const m = await inbox.next();
            const s = m.response_body?.response?.body_mutation?.streamed_response;
            if (!s) continue;
            if (s.body?.length) res.write(s.body);
            if (s.end_of_stream) return;
          }
        })();
        for await (const chunk of up.body) call.write(encodeRequest(responseBody(chunk as Buffer, false)));
        call.write(encodeRequest(responseBody(Buffer.alloc(0), true)));
        await echoes;
        res.end();
      } finally {
        release();
      }
      call.end();
    } catch (err) {
      call.cancel();
      throw err;
    }
  };

  const server: Server = createServer((req, res) => {
    const handler = opts.strategy === 'epp' ? viaEpp : baseline;
    handler(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `gateway: ${err.message}`, type: 'gateway_error', code: 502 } }));
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    served,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      grpc?.close();
      await agent.close();
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8081' },
      host: { type: 'string', default: '127.0.0.1' },
      strategy: { type: 'string', default: 'epp' },
      epp: { type: 'string' },
      endpoints: { type: 'string', default: '' },
    },
  });
  const strategy = values.strategy as Strategy;
  if (!['epp', 'round-robin', 'random', 'least-request'].includes(strategy)) throw new Error(`unknown strategy ${strategy}`);
  const gw = await startGateway({
    port: Number(values.port),
    host: values.host,
    strategy,
    epp: values.epp,
    endpoints: values.endpoints.split(',').filter(Boolean),
  });
  process.stdout.write(JSON.stringify({ port: gw.port, strategy }) + '\n');
  process.on('SIGTERM', () => void gw.stop().then(() => process.exit(0)));
}
