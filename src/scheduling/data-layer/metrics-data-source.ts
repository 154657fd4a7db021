// metrics-data-source (GAIE / llm-d data layer): llm-epp has one metrics
// collector, which scrapes every endpoint's Prometheus page; this plugin's
// parameters override the --model-server-metrics-* flags, so a config written
// for GAIE's Helm chart runs unchanged. The app reads them when it builds the
// collector.
import type { Plugin } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

export class MetricsDataSource implements Plugin {
  readonly type = 'metrics-data-source';
  readonly name: string;
  /** Undefined: the --model-server-metrics-* flag applies. */
  readonly scheme: 'http' | 'https' | undefined;
  readonly path: string | undefined;
  readonly insecureSkipVerify: boolean | undefined;

  constructor(name: string, o: { scheme?: string; path?: string; insecureSkipVerify?: boolean }) {
    this.name = name;
    this.scheme = o.scheme as 'http' | 'https' | undefined;
    this.path = o.path;
    this.insecureSkipVerify = o.insecureSkipVerify;
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
  },
  create: (name, p) => {
    if (p.path !== undefined && !p.path.startsWith('/')) throw new ConfigError(`plugin "${name}" (metrics-data-source): parameter "path" must start with "/"`);
    return new MetricsDataSource(name, p);
  },
});
