// The gateway's own health, so a report can tell its cost from the EPP's:
// requests, errors it answered itself, CPU time, and its event-loop lag.
// Served as JSON on GET /gateway/stats; each GET (or stats() call) reports the
// lag since the previous one and starts a new window, the other figures are
// totals since start (take differences for a stage).
import { monitorEventLoopDelay } from 'node:perf_hooks';

export const STATS_PATH = '/gateway/stats';
const RESOLUTION_MS = 10;

export interface GatewayStats {
  /** Requests answered (any status). */
  requests: number;
  /** Of those, answered with the gateway's own 5xx (EPP or upstream failure). */
  errors: number;
  inFlight: number;
  /** The gateway process's CPU time (user + system) since it started, ms. */
  cpuMs: number;
  /** Event-loop delay beyond the timer's resolution, over the window since the previous read, ms. */
  loopLag: { count: number; p50Ms: number; p99Ms: number; maxMs: number };
}

export class StatsRecorder {
  requests = 0;
  errors = 0;
  inFlight = 0;
  readonly #lag = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.#lag.enable();
  }

  read(): GatewayStats {
    const h = this.#lag;
    const ms = (ns: number) => (h.count === 0 ? 0 : Math.round(Math.max(0, ns / 1e6 - RESOLUTION_MS) * 1000) / 1000);
    const cpu = process.cpuUsage();
    const stats: GatewayStats = {
      requests: this.requests,
      errors: this.errors,
      inFlight: this.inFlight,
      cpuMs: Math.round((cpu.user + cpu.system) / 100) / 10,
      loopLag: { count: h.count, p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max) },
    };
    h.reset();
    return stats;
  }

  stop(): void {
    this.#lag.disable();
  }
}
