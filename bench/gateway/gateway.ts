// A small gateway for local benchmarks: it does for each request what Envoy
// does with an EPP — an ext_proc stream in FULL_DUPLEX_STREAMED mode to
// llm-epp, then a proxy to the endpoint in the destination header (walking the
// fallback list on connect failure), with the response streamed back through
// the ext_proc response path (bench/gateway/epp-exchange.ts). The same proxy
// routes without an EPP (round-robin, random, least-request, and the oracle
// that reads the simulated pods' true caches: oracle.ts) to give the
// baselines; --epp may name several EPP replicas, streams spread over them.
// GET /gateway/stats answers the gateway's own figures
// (bench/gateway/stats.ts). Command line: bench/gateway/cli.ts.
//
//   node bench/gateway/gateway.ts --port 8081 --strategy epp --epp 127.0.0.1:9002
//   node bench/gateway/gateway.ts --port 8082 --strategy round-robin --endpoints 127.0.0.1:8000,127.0.0.1:8001
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { EppChannel } from './epp-channel.ts';
import { checkEpp } from './epp-check.ts';
import { EppExchange, type ExchangeContext } from './epp-exchange.ts';
import { GatewayError, listenError } from './errors.ts';
import { STRATEGIES, parseAddress, type GatewayOptions } from './options.ts';
import { oracleOrder } from './oracle.ts';
import { clientHeaders, replyError, responseHeaders } from './http-util.ts';
import { STATS_PATH, StatsRecorder, type GatewayStats } from './stats.ts';
import { UpstreamCall, type InFlight, type UpstreamSink } from './upstream.ts';

export { STRATEGIES, parseAddress, type GatewayOptions, type Strategy } from './options.ts';
export { GatewayError } from './errors.ts';
export { STATS_PATH, type GatewayStats } from './stats.ts';

export interface Gateway {
  readonly port: number;
  /** Requests sent to each endpoint (served). */
  readonly served: Map<string, number>;
  /** The gateway's own figures; the event-loop lag covers the time since the previous read. */
  stats(): GatewayStats;
  stop(): Promise<void>;
}

/** The baselines: the whole request body, then the upstream response straight to the client. */
class BaselineExchange implements UpstreamSink {
  readonly #res: ServerResponse;
  readonly #stats: StatsRecorder;
  readonly #served: Map<string, number>;
  #call: UpstreamCall | undefined;
  #blocked = false;

  /** `targets`: the endpoints in order, or (the oracle) a function of the whole body that finds them. */
  constructor(agent: Agent, inFlight: InFlight, served: Map<string, number>, stats: StatsRecorder, targets: string[] | ((body: Buffer) => Promise<string[]>), req: IncomingMessage, res: ServerResponse) {
    this.#res = res;
    this.#stats = stats;
    this.#served = served;
    const headers = clientHeaders(req.rawHeaders);
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      bytes += c.length;
    });
    req.once('end', () => {
      let body: Buffer | Buffer[] | null = null;
      if (chunks.length === 1) body = chunks[0];
      else if (chunks.length > 1) {
        body = chunks;
        headers.push('content-length', String(bytes));
      }
      const send = (order: string[]) => {
        if (!res.destroyed) this.#call = new UpstreamCall(agent, inFlight, order, { method: req.method ?? 'GET', path: req.url ?? '/', headers, body }, this);
      };
      if (Array.isArray(targets)) return send(targets);
      const whole = body === null ? Buffer.alloc(0) : Array.isArray(body) ? Buffer.concat(body) : body;
      targets(whole).then(send, (err: Error) => this.onError(err));
    });
    res.once('close', () => this.#call?.abort(new Error('client went away')));
  }

  onStart(target: string, status: number, headers: Record<string, string | string[] | undefined>): void {
    this.#served.set(target, (this.#served.get(target) ?? 0) + 1);
    this.#res.writeHead(status, responseHeaders(headers, 'x-llm-epp-endpoint', target));
  }

  onData(chunk: Buffer): boolean {
    if (!this.#res.write(chunk) && !this.#blocked) {
      this.#blocked = true;
      this.#res.once('drain', () => {
        this.#blocked = false;
        this.#call?.resume();
      });
    }
    return !this.#blocked;
  }

  onEnd(): void {
    this.#stats.requests++;
    this.#res.end();
  }

  onError(err: Error): void {
    this.#stats.requests++;
    if (this.#res.headersSent) return void this.#res.destroy(err);
    this.#stats.errors++;
    replyError(this.#res, 502, `gateway: ${err.message}`);
  }
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const endpoints = opts.endpoints ?? [];
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!STRATEGIES.includes(opts.strategy)) throw new GatewayError(`--strategy must be one of ${STRATEGIES.join(', ')}, got "${opts.strategy}"`);
  if (opts.strategy === 'epp' && !opts.epp) throw new GatewayError('--strategy epp needs --epp host:port (llm-epp\'s --grpc-port)');
  if (opts.strategy !== 'epp' && endpoints.length === 0) throw new GatewayError(`--strategy ${opts.strategy} needs --endpoints host:port,…`);
  for (const e of endpoints) parseAddress('--endpoints', e);
  // Several EPP replicas (active-active): each stream goes to the next one in turn, as Envoy
  // spreads ext_proc streams over the endpoints of the EPP's cluster.
  const channels: EppChannel[] = [];
  if (opts.strategy === 'epp') {
    const addresses = opts.epp!.split(',').map((a) => ({ ...parseAddress('--epp', a.trim()), tls: opts.eppTls }));
    for (const address of addresses) await checkEpp(address, opts.eppCheckTimeoutMs);
    for (const address of addresses) channels.push(new EppChannel(address));
  }

  const agent = new Agent({ connectTimeout: opts.connectTimeoutMs ?? 2000, keepAliveTimeout: 60_000, connections: 256, pipelining: 1 });
  const inFlight: InFlight = new Map(endpoints.map((e) => [e, 0]));
  const served = new Map<string, number>();
  const stats = new StatsRecorder();
  const contexts: ExchangeContext[] = channels.map((channel) => ({ channel, agent, inFlight, served, stats }));
  let nextEpp = 0;
  let rr = 0;
  const rotate = (i: number) => (i === 0 ? endpoints : [...endpoints.slice(i), ...endpoints.slice(0, i)]);
  const oracle = (body: Buffer) => oracleOrder(agent, endpoints, inFlight, body);
  const pick = (): string[] | ((body: Buffer) => Promise<string[]>) => {
    switch (opts.strategy) {
      case 'oracle':
        return oracle;
      case 'round-robin':
        return rotate(rr++ % endpoints.length);
      case 'random':
        return rotate(Math.floor(Math.random() * endpoints.length));
      default:
        return [...endpoints].sort((a, b) => (inFlight.get(a) ?? 0) - (inFlight.get(b) ?? 0) || Math.random() - 0.5);
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    req.on('error', () => {}); // a client that goes away mid-body: the exchange sees the response close
    if (req.url === STATS_PATH && req.method === 'GET') {
      const body = JSON.stringify(stats.read());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    stats.inFlight++;
    res.once('close', () => stats.inFlight--);
    try {
      if (contexts.length) new EppExchange(contexts[nextEpp++ % contexts.length], req, res);
      else new BaselineExchange(agent, inFlight, served, stats, pick(), req, res);
    } catch (err) {
      stats.requests++;
      stats.errors++;
      replyError(res, 502, `gateway: ${(err as Error).message}`);
    }
  };

  const server: Server = createServer(handle);
  server.keepAliveTimeout = 60_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    for (const c of channels) c.close();
    stats.stop();
    await agent.close();
    throw listenError(err as NodeJS.ErrnoException, host, port);
  }
  return {
    port: (server.address() as AddressInfo).port,
    served,
    stats: () => stats.read(),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      for (const c of channels) c.close();
      stats.stop();
      await agent.close();
    },
  };
}

if (import.meta.main) await (await import('./cli.ts')).main(process.argv.slice(2), startGateway);
