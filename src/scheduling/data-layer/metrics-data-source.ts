// metrics-data-source (GAIE / llm-d data layer): llm-epp has one metrics
// collector, which scrapes every endpoint's Prometheus page; this plugin's
// parameters override the --model-server-metrics-* flags, so a config written
// for GAIE's Helm chart runs unchanged. The app reads them when it builds the
// collector.
import type { Plugin } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';
import { sourceInterval } from './interval.ts';

export class MetricsDataSource implements Plugin {
  readonly type = 'metrics-data-source';
  readonly name: string;
  /** Undefined: the --model-server-metrics-* flag applies. */
  readonly scheme: 'http' | 'https' | undefined;
  readonly path: string | undefined;
  readonly insecureSkipVerify: boolean | undefined;
  /** Own scrape interval; undefined: every --refresh-metrics-interval. */
  readonly intervalMs: number | undefined;
  /** Scrape port when it differs from the endpoint's (a sidecar in front of the model server). */
  readonly port: number | undefined;
  readonly tls: { caCertPath?: string; clientCertPath?: string; clientKeyPath?: string } | undefined;

  constructor(name: string, o: { scheme?: string; path?: string; insecureSkipVerify?: boolean; intervalMs?: number; port?: number; caCertPath?: string; clientCertPath?: string; clientKeyPath?: string }) {
    this.name = name;
    this.scheme = o.scheme as 'http' | 'https' | undefined;
    this.path = o.path;
    this.insecureSkipVerify = o.insecureSkipVerify;
    this.intervalMs = o.intervalMs;
    this.port = o.port;
    this.tls = o.caCertPath || o.clientCertPath || o.clientKeyPath ? { caCertPath: o.caCertPath, clientCertPath: o.clientCertPath, clientKeyPath: o.clientKeyPath } : undefined;
  }
}

export function isMetricsDataSource(p: Plugin): p is MetricsDataSource {
  return p.type === 'metrics-data-source';
}

export const metricsDataSource = definePlugin({
  type: 'metrics-data-source',
  description: 'Scrapes every endpoint\'s Prometheus page (llm-epp\'s collector, every --refresh-metrics-interval). Parameters given here override the --model-server-metrics-* flags.',
  params: {
    scheme: { type: 'string', enum: ['http', 'https'], doc: 'http or https (default: --model-server-metrics-scheme, http).' },
    path: { type: 'string', doc: 'Metrics path (default: --model-server-metrics-path, /metrics).' },
    insecureSkipVerify: { type: 'boolean', doc: 'Skip certificate checks over https (default: --model-server-metrics-https-insecure-skip-verify, true).' },
    interval: { type: 'string', doc: 'Scrape interval of this source (e.g. "1s"); a positive multiple of --refresh-metrics-interval. Default: every --refresh-metrics-interval.' },
    port: { type: 'number', integer: true, min: 1, max: 65535, doc: 'Scrape this port instead of the endpoint\'s (default: --model-server-metrics-port, else the endpoint port).' },
    caCertPath: { type: 'string', doc: 'PEM CA bundle to verify the model server\'s certificate over https.' },
    clientCertPath: { type: 'string', doc: 'PEM client certificate presented over https (mTLS); needs clientKeyPath.' },
    clientKeyPath: { type: 'string', doc: 'PEM key of clientCertPath.' },
  },
  create: (name, p) => {
    const where = `plugin "${name}" (metrics-data-source)`;
    if (p.path !== undefined && !p.path.startsWith('/')) throw new ConfigError(`${where}: parameter "path" must start with "/"`);
    if (!!p.clientCertPath !== !!p.clientKeyPath) throw new ConfigError(`${where}: parameters "clientCertPath" and "clientKeyPath" go together`);
    const intervalMs = sourceInterval(where, p.interval);
    return new MetricsDataSource(name, { ...p, intervalMs });
  },
});
