// CPU cost of the metrics collector alone: 128 fake vLLM pods (realistic
// ~25 KB pages, bench/epp/fleet.ts, in a child process) scraped every 50 ms by
// llm-epp's MetricsCollector in this process; reports this process's CPU as a
// share of one core, and how many pods were fresh at the end. Run it on two
// commits to compare scrape clients.
//   node bench/scrape.bench.ts [--pods 128] [--seconds 10] [--interval 50]
import { parseArgs } from 'node:util';
import { createLogger } from '../src/log.ts';
import { MetricsCollector } from '../src/metrics/collector.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { json, start, stop } from './lib/processes.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '128' }, seconds: { type: 'string', default: '10' }, interval: { type: 'string', default: '50' } } });
const pods = Number(values.pods);
const fleet = await start(['bench/epp/fleet.ts', `--pods=${pods}`], (l) => {
  const j = json(l) as { ports?: number[] } | undefined;
  return j?.ports ? Object.fromEntries(j.ports.map((p, i) => [String(i), p])) : undefined;
});
const store = new Datastore();
store.replaceAll(Object.values(fleet.info).map((port) => ({ address: '127.0.0.1', port })));
const collector = new MetricsCollector(store, { intervalMs: Number(values.interval), timeoutMs: 1000, scheme: 'http', path: '/metrics', port: 0, insecureSkipVerify: true }, createLogger('silent'));
collector.start();
// Warm up (connections, JIT), then measure.
await new Promise((r) => setTimeout(r, 2000));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await new Promise((r) => setTimeout(r, Number(values.seconds) * 1000));
const cpu = process.cpuUsage(cpu0);
const wall = (performance.now() - t0) / 1000;
const fresh = store.list().filter((e) => performance.now() - e.metricsUpdatedAt < 500).length;
await collector.stop();
await stop(fleet);
const core = ((cpu.user + cpu.system) / 1e6 / wall) * 100;
process.stdout.write(`${pods} pods every ${values.interval} ms for ${wall.toFixed(1)} s: ${core.toFixed(1)} % of a core (user ${(cpu.user / 1e6).toFixed(2)} s, system ${(cpu.system / 1e6).toFixed(2)} s); ${fresh}/${pods} pods fresh at the end\n`);
