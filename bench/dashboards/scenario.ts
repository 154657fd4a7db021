// What the dashboard check measures: a few simulated vLLM pods, one more
// "pod" whose metrics page answers 503 (so scrape errors are counted),
// llm-epp in this process on that pool, and the benchmark gateway in front
// of it doing Envoy's part. round() sends one mix of traffic through the
// gateway: streamed chat and completions (SSE with usage), non-streaming
// ones, a model no pod serves (the pod answers 404: a counted request
// error), several fairness ids and none, prompts sharing a prefix; flow
// control holds some of them for a moment.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startApp, type App } from '../../src/app.ts';
import { parseFlags } from '../../src/flags.ts';
import { createLogger } from '../../src/log.ts';
import { defaultConfigWithDetector } from '../lib/flow-config.ts';
import { startGateway, type Gateway } from '../gateway/gateway.ts';
import { startFleet, type Fleet } from '../sim/fleet.ts';

export const MODEL = 'sim-model';
const FAIRNESS_HEADER = 'x-llm-d-inference-fairness-id';
const SIM_PODS = 3;
// A long shared system prompt: later requests find its blocks in the prefix index.
const SYSTEM = 'You answer questions about the inventory of a hardware store, briefly and precisely. '.repeat(24);

// GAIE's default scorers, with flow control on: one request in flight per endpoint saturates the
// pool, so each round's five requests queue for a moment (flow control's panels get data).
const FLOW_CONTROL_CONFIG = defaultConfigWithDetector('{name: saturated-at-one, type: concurrency-detector, parameters: {maxConcurrency: 1}}', 'saturated-at-one', true);

export interface Scenario {
  readonly app: App;
  /** host:port of llm-epp's /metrics. */
  readonly metricsTarget: string;
  /** llm-epp's /metrics page as it is now. */
  page(): Promise<string>;
  /** One mix of requests through the gateway; throws when a response is not what it must be. */
  round(i: number): Promise<void>;
  close(): Promise<void>;
}

interface Send {
  path: string;
  fairness?: string;
  body: Record<string, unknown>;
  status: number;
  sse: boolean;
}

function mix(i: number): Send[] {
  const chat = (content: string) => [{ role: 'system', content: SYSTEM }, { role: 'user', content }];
  const usage = { include_usage: true };
  return [
    { path: '/v1/chat/completions', fairness: 'tenant-a', status: 200, sse: true, body: { model: MODEL, messages: chat(`How many hammers are left in aisle ${i}?`), stream: true, stream_options: usage, max_tokens: 24 } },
    { path: '/v1/completions', fairness: 'tenant-b', status: 200, sse: true, body: { model: MODEL, prompt: `${SYSTEM}Item ${i}:`, stream: true, stream_options: usage, max_tokens: 16 } },
    { path: '/v1/completions', fairness: 'tenant-c', status: 200, sse: false, body: { model: MODEL, prompt: `${SYSTEM}Price of item ${i}:`, max_tokens: 8 } },
    { path: '/v1/chat/completions', status: 200, sse: false, body: { model: MODEL, messages: chat(`Opening hours on day ${i}?`), max_tokens: 12 } },
    { path: '/v1/completions', fairness: 'tenant-a', status: 404, sse: false, body: { model: 'no-such-model', prompt: `Item ${i}`, max_tokens: 4 } },
  ];
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

async function closeServer(s: Server): Promise<void> {
  s.closeAllConnections();
  await new Promise<void>((r) => s.close(() => r()));
}

export async function startScenario(): Promise<Scenario> {
  const stack: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of stack.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const fleet: Fleet = await startFleet({
      pods: SIM_PODS,
      basePort: 0,
      pod: { model: MODEL, host: '127.0.0.1', timeScale: 0.05, enablePromptTokensDetails: true, streamInterval: 1 },
    });
    stack.push(() => fleet.close());
    const broken = createServer((_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end('not ready\n'));
    const brokenPort = await listen(broken);
    stack.push(() => closeServer(broken));

    const options = parseFlags([
      `--endpoints=${fleet.endpoints},127.0.0.1:${brokenPort}`,
      `--config-text=${FLOW_CONTROL_CONFIG}`,
      '--grpc-port=0',
      '--grpc-health-port=0',
      '--metrics-port=0',
      '--secure-serving=false',
      '--enable-grpc-stream-metrics',
      '--refresh-metrics-interval=50ms',
      '--shutdown-delay=0s',
      '--drain-timeout=1s',
    ]);
    const app = await startApp(options, { logger: createLogger('silent'), host: '127.0.0.1', processMetrics: true });
    stack.push(() => app.stop(100, 0));
    const deadline = Date.now() + 10_000;
    while (app.director.candidates(undefined).length < SIM_PODS) {
      if (Date.now() > deadline) throw new Error(`llm-epp did not read the metrics of the ${SIM_PODS} simulated pods within 10 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const gateway: Gateway = await startGateway({ strategy: 'epp', epp: `127.0.0.1:${app.ports.grpc}` });
    stack.push(() => gateway.stop());
    const metricsTarget = `127.0.0.1:${app.ports.metrics}`;

    const send = async (s: Send) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (s.fairness) headers[FAIRNESS_HEADER] = s.fairness;
      const res = await fetch(`http://127.0.0.1:${gateway.port}${s.path}`, { method: 'POST', headers, body: JSON.stringify(s.body) });
      const text = await res.text();
      if (res.status !== s.status) throw new Error(`${s.path} (model ${String(s.body.model)}): HTTP ${res.status}, expected ${s.status}: ${text.slice(0, 200)}`);
      if (s.sse && !text.trimEnd().endsWith('data: [DONE]')) throw new Error(`${s.path}: the event stream did not end with [DONE]`);
    };

    return {
      app,
      metricsTarget,
      page: async () => {
        const res = await fetch(`http://${metricsTarget}/metrics`);
        if (!res.ok) throw new Error(`llm-epp /metrics: HTTP ${res.status}`);
        return res.text();
      },
      round: async (i) => {
        await Promise.all(mix(i).map(send));
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
