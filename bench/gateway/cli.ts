// `npm run gateway -- …`: the benchmark gateway's command line. Prints one JSON
// line {"port", "strategy"} when it serves; any mistake or start-up failure is
// one line on stderr ("gateway: …") and a non-zero exit, never a stack.
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { parseFlags, runMain, UsageError } from '../lib/cli-flags.ts';
import type { EppTls } from './epp-channel.ts';
import { STRATEGIES, parseAddress, type GatewayOptions, type Strategy } from './options.ts';
import type { Gateway } from './gateway.ts';

export const USAGE = `Usage: npm run gateway -- [flags]
       npx node bench/gateway/gateway.ts [flags]

A local stand-in for Envoy: with --strategy epp, each request goes through an
ext_proc stream (FULL_DUPLEX_STREAMED) to llm-epp, which picks the endpoint;
the other strategies route without an EPP, as baselines.

Flags:
  --port N                      port to listen on (default 8081; 0 = any free port)
  --host ADDR                   address to listen on (default 127.0.0.1)
  --strategy NAME               ${STRATEGIES.join(' | ')} (default epp)
  --epp HOST:PORT[,HOST:PORT…]  llm-epp's ext_proc address (its --grpc-port), for --strategy epp;
                                several replicas: each request's stream goes to the next in turn
  --epp-tls                     talk TLS to the EPP (llm-epp serves TLS unless --secure-serving=false)
  --epp-ca FILE                 with --epp-tls: PEM certificate(s) to verify the EPP with
                                (llm-epp's tls.crt from its --cert-path)
  --epp-insecure-skip-verify    with --epp-tls: do not verify the EPP's certificate
                                (llm-epp's default certificate is self-signed)
  --endpoints H:P,H:P,…         the model servers, for the other strategies (oracle: simulated
                                pods only — it asks each one's /sim/prefix-match what it caches)
  -h, --help                    this text

Once serving, it prints {"port": N, "strategy": "…"} on stdout. GET /gateway/stats
answers its own figures as JSON: requests, errors, inFlight, cpuMs and loopLag
{count, p50Ms, p99Ms, maxMs} (the lag since the previous GET).

Examples:
  npm run gateway -- --strategy epp --epp 127.0.0.1:9002
  npm run gateway -- --strategy epp --epp 127.0.0.1:9002 --epp-tls --epp-insecure-skip-verify
  npm run gateway -- --port 8082 --strategy round-robin --endpoints 127.0.0.1:8000,127.0.0.1:8001
`;

const OPTIONS = {
  port: { type: 'string', default: '8081' },
  host: { type: 'string', default: '127.0.0.1' },
  strategy: { type: 'string', default: 'epp' },
  epp: { type: 'string' },
  'epp-tls': { type: 'boolean', default: false },
  'epp-ca': { type: 'string' },
  'epp-insecure-skip-verify': { type: 'boolean', default: false },
  endpoints: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** The command line as startGateway options; a UsageError naming the flag on any mistake. `undefined` for --help. */
export function gatewayOptions(argv: string[]): GatewayOptions | undefined {
  const v = parseFlags(argv, OPTIONS);
  if (v.help) return undefined;
  const port = Number(v.port);
  if (!/^\d+$/.test(v.port) || port > 65535) throw new UsageError(`--port must be a port number 0-65535, got "${v.port}"`);
  const strategy = v.strategy as Strategy;
  if (!STRATEGIES.includes(strategy)) throw new UsageError(`--strategy must be one of ${STRATEGIES.join(', ')}, got "${v.strategy}"`);
  const usage = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  const o: GatewayOptions = { port, host: v.host, strategy };
  if (strategy === 'epp') {
    if (!v.epp) throw new UsageError("--strategy epp needs --epp HOST:PORT (llm-epp's --grpc-port)");
    if (v.endpoints !== undefined) throw new UsageError('--endpoints is for the baseline strategies; with --strategy epp the EPP picks the endpoints');
    usage(() => v.epp!.split(',').forEach((a) => parseAddress('--epp', a.trim())));
    o.epp = v.epp;
    if (v['epp-ca'] !== undefined && v['epp-insecure-skip-verify']) throw new UsageError('--epp-ca and --epp-insecure-skip-verify contradict each other: pick one');
    if ((v['epp-ca'] !== undefined || v['epp-insecure-skip-verify']) && !v['epp-tls']) {
      throw new UsageError(`${v['epp-ca'] !== undefined ? '--epp-ca' : '--epp-insecure-skip-verify'} applies to TLS: add --epp-tls`);
    }
    if (v['epp-tls']) {
      const tls: EppTls = { insecureSkipVerify: v['epp-insecure-skip-verify'] };
      if (v['epp-ca'] !== undefined) tls.ca = readCa(v['epp-ca']);
      o.eppTls = tls;
    }
  } else {
    if (v.epp !== undefined || v['epp-tls'] || v['epp-ca'] !== undefined || v['epp-insecure-skip-verify']) {
      throw new UsageError(`--epp and --epp-* are for --strategy epp, not ${strategy}`);
    }
    const endpoints = (v.endpoints ?? '').split(',').filter(Boolean);
    if (endpoints.length === 0) throw new UsageError(`--strategy ${strategy} needs --endpoints HOST:PORT,…`);
    usage(() => endpoints.forEach((e) => parseAddress('--endpoints', e)));
    o.endpoints = endpoints;
  }
  return o;
}

function readCa(file: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new UsageError(`--epp-ca ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--epp-ca ${file} holds no PEM certificate`);
  return pem;
}

export async function main(argv: string[], start: (o: GatewayOptions) => Promise<Gateway>): Promise<void> {
  await runMain('gateway', async () => {
    const o = gatewayOptions(argv);
    if (!o) {
      process.stdout.write(USAGE);
      return;
    }
    // node:http2 reads into a fresh 64 KB buffer per socket read, so large
    // bodies through the EPP churn external memory, and V8's separate external
    // limit then starts a full GC every ~15 requests of 200 KB (≈ 40 % of the
    // gateway's CPU, bench/gateway.bench.ts). Counted in the global heap limit
    // instead, they are collected on the heap's own schedule.
    setFlagsFromString('--external-memory-accounted-in-global-limit');
    const gw = await start(o);
    process.stdout.write(JSON.stringify({ port: gw.port, strategy: o.strategy }) + '\n');
    const stop = () => void gw.stop().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
