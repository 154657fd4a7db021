// dcgm-data-source (llm-d Router, alpha): scrapes NVIDIA's DCGM exporter for
// each endpoint — a sidecar on the pod (pod IP) or a DaemonSet on the node
// (useNodeAddress: the pod's node IP) — and hands the page to its
// dcgm-extractor. The app runs one collector per source (src/metrics/dcgm-page.ts).
import type { Plugin } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';
import { sourceInterval } from './interval.ts';

export class DcgmDataSource implements Plugin {
  readonly type = 'dcgm-data-source';
  readonly name: string;
  readonly scheme: 'http' | 'https';
  readonly path: string;
  readonly port: number;
  readonly insecureSkipVerify: boolean;
  readonly useNodeAddress: boolean;
  /** Own scrape interval; undefined: every --refresh-metrics-interval. */
  readonly intervalMs: number | undefined;

  constructor(name: string, o: { scheme: 'http' | 'https'; path: string; port: number; insecureSkipVerify: boolean; useNodeAddress: boolean; intervalMs: number | undefined }) {
    this.name = name;
    this.scheme = o.scheme;
    this.path = o.path;
    this.port = o.port;
    this.insecureSkipVerify = o.insecureSkipVerify;
    this.useNodeAddress = o.useNodeAddress;
    this.intervalMs = o.intervalMs;
  }
}

export function isDcgmDataSource(p: Plugin): p is DcgmDataSource {
  return p.type === 'dcgm-data-source';
}

export const dcgmDataSource = definePlugin({
  type: 'dcgm-data-source',
  stability: 'alpha',
  description: 'Scrapes NVIDIA DCGM exporter metrics for each endpoint (pod IP, or the node IP for a DaemonSet exporter) and hands them to its dcgm-extractor.',
  params: {
    scheme: { type: 'string', enum: ['http', 'https'], default: 'http', doc: 'http or https.' },
    path: { type: 'string', default: '/metrics', doc: 'The exporter\'s metrics path.' },
    port: { type: 'number', integer: true, min: 1, max: 65535, default: 9400, doc: 'The exporter\'s port.' },
    insecureSkipVerify: { type: 'boolean', default: true, doc: 'Skip certificate checks over https.' },
    useNodeAddress: { type: 'boolean', default: false, doc: 'Scrape the pod\'s node IP (a DaemonSet exporter, whose samples carry a pod label) instead of the pod IP (a sidecar).' },
    interval: { type: 'string', doc: 'Scrape interval (e.g. "1s"). Default: every --refresh-metrics-interval.' },
  },
  create: (name, p) => {
    const where = `plugin "${name}" (dcgm-data-source)`;
    if (!p.path.startsWith('/')) throw new ConfigError(`${where}: parameter "path" must start with "/"`);
    const intervalMs = sourceInterval(where, p.interval);
    return new DcgmDataSource(name, { scheme: p.scheme as 'http' | 'https', path: p.path, port: p.port, insecureSkipVerify: p.insecureSkipVerify, useNodeAddress: p.useNodeAddress, intervalMs });
  },
});
