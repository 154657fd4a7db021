// Starts llm-epp in-process on ephemeral ports against fake pods.
import { startApp, type App, type AppDeps } from '../../src/app.ts';
import { parseFlags } from '../../src/flags.ts';
import { createLogger } from '../../src/log.ts';
import { EnvoyClient } from './envoy-client.ts';

export async function startTestApp(
  extraFlags: string[],
  opts: { waitReady?: number; random?: () => number; kubeConfig?: unknown; leaseDurationMs?: number; deps?: Pick<AppDeps, 'spanExporter' | 'tracingEnv'> } = {},
): Promise<{ app: App; client: EnvoyClient }> {
  const options = parseFlags([
    '--grpc-port=0',
    '--grpc-health-port=0',
    '--metrics-port=0',
    '--secure-serving=false',
    '--refresh-metrics-interval=20ms',
    '--shutdown-delay=0s',
    ...extraFlags,
  ]);
  const app = await startApp(options, { logger: createLogger('silent'), host: '127.0.0.1', processMetrics: false, random: opts.random, kubeConfig: opts.kubeConfig, leaseDurationMs: opts.leaseDurationMs, ...opts.deps });
  const client = new EnvoyClient(`127.0.0.1:${app.ports.grpc}`, { tlsCert: options.secureServing ? app.certPem : undefined });
  if (opts.waitReady) await waitFor(() => app.director.candidates(undefined).length >= opts.waitReady!);
  return { app, client };
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Wait until every endpoint has been scraped since the last request routed to it, so the
 * queue-scorer sees the pods' own queues only (it also counts requests routed since a
 * pod's last scrape was sent). For tests that assert an exact ranking.
 */
export async function settled(app: App): Promise<void> {
  await waitFor(() => app.datastore.list().every((e) => e.dispatchedAtScrape === e.dispatched));
}
