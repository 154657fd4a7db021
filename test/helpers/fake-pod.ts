// Small fake model servers for tests: each serves a real vLLM metrics page
// (test/fixtures/metrics) with the queue, running and KV gauges it is told,
// and can be made slow, failing or dead.
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

const FIXTURE = readFileSync(new URL('../fixtures/metrics/vllm-composite-datadog-vllm_metrics.prom', import.meta.url), 'utf8');

export interface PodState {
  waiting: number;
  running: number;
  kv: number;
  /** Answer /metrics with this status instead of 200. */
  status?: number;
  /** Delay every /metrics answer by this many ms. */
  delayMs?: number;
}

export class FakePod {
  readonly state: PodState;
  scrapes = 0;
  #server: Server;
  port = 0;

  readonly host: string;

  constructor(state: Partial<PodState> = {}, host = '127.0.0.1') {
    this.host = host;
    this.state = { waiting: 0, running: 0, kv: 0, ...state };
    this.#server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.scrapes++;
      const answer = () => {
        if (this.state.status && this.state.status !== 200) {
          res.writeHead(this.state.status).end('unavailable');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.page());
      };
      if (this.state.delayMs) setTimeout(answer, this.state.delayMs);
      else answer();
    });
  }

  page(): string {
    const s = this.state;
    return FIXTURE.replace(/^(vllm:num_requests_waiting\{[^}]*\}) .*$/m, `$1 ${s.waiting.toFixed(1)}`)
      .replace(/^(vllm:num_requests_running\{[^}]*\}) .*$/m, `$1 ${s.running.toFixed(1)}`)
      .replace(/^(vllm:kv_cache_usage_perc\{[^}]*\}) .*$/m, `$1 ${s.kv}`);
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, this.host, r));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  get key(): string {
    return `${this.host}:${this.port}`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
