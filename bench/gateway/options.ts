// The gateway's options, shared by startGateway and its command line.
import type { EppTls } from './epp-channel.ts';
import { GatewayError } from './errors.ts';

export const STRATEGIES = ['epp', 'round-robin', 'random', 'least-request', 'oracle'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface GatewayOptions {
  port?: number;
  host?: string;
  strategy: Strategy;
  /** Baselines: the endpoints (host:port). */
  endpoints?: string[];
  /** strategy epp: llm-epp's ext_proc address (host:port), or several replicas' (comma-separated). */
  epp?: string;
  /** strategy epp: TLS to the EPP (plaintext when absent). */
  eppTls?: EppTls;
  /** How long the start-up check waits for the EPP. */
  eppCheckTimeoutMs?: number;
  /** Per-attempt connect timeout to an endpoint. */
  connectTimeoutMs?: number;
}

/** host:port → its parts; a GatewayError naming the flag otherwise. */
export function parseAddress(flag: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new GatewayError(`${flag} must be host:port, got "${value}"`);
  return { host: m[1] ?? m[2], port };
}
