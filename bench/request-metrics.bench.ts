// Per-request cost of request metrics: one request's whole recording
// (routed, response headers, 3 JSON chunks, end with usage), 200,000 times
// over 8 models × 4 fairness ids, in-process; then one scrape of the page.
//   npx node bench/request-metrics.bench.ts [repo root] [old|new]
// "old" runs the API of commits before e41852b (GAIE metric names only), to
// compare a checkout of one against this tree; the default is this tree.
const root = process.argv[2] ?? new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const variant = process.argv[3] ?? 'new';
const { EppMetrics } = await import(root + '/src/observability/metrics.ts');
const { RequestMetrics } = await import(root + '/src/request-control/request-metrics.ts');
const { Datastore } = await import(root + '/src/pool/datastore.ts');
const { createLogger } = await import(root + '/src/log.ts');
const metrics = new EppMetrics(new Datastore(), { poolName: 'p', stalenessThresholdMs: 1000, version: 'b', processMetrics: false });
const o = { metrics, log: createLogger('silent'), maxResponseUsageBytes: 1 << 20 };
const body = Buffer.from('{"id":"x","choices":[{"text":"hello"}],"usage":{"prompt_tokens":120,"completion_tokens":40}}');
const chunks = [body.subarray(0, 30), body.subarray(30, 60), body.subarray(60)];
function one(i: number): void {
  const model = `model-${i & 7}`;
  const m = variant === 'old'
    ? new RequestMetrics(o, 'r', model, model, performance.now())
    : new RequestMetrics(o, { requestId: 'r', model, targetModel: model, fairnessId: `tenant-${i & 3}`, priority: 0 }, performance.now());
  if (variant === 'old') (m as any).routed(1000, 0, undefined); else (m as any).routed(1000, undefined);
  m.responseHeaders('200', undefined, false);
  for (const c of chunks) m.responseBody(c);
  m.end(true, '10.0.0.1:8000');
}
for (let i = 0; i < 20000; i++) one(i); // warm-up
const N = 200000;
const runs: number[] = [];
for (let r = 0; r < 5; r++) {
  const t = performance.now();
  for (let i = 0; i < N; i++) one(i);
  runs.push(((performance.now() - t) * 1000) / N);
}
runs.sort((a, b) => a - b);
console.log(JSON.stringify({ variant, usPerRequest: { min: +runs[0].toFixed(2), median: +runs[2].toFixed(2), max: +runs[4].toFixed(2) } }));
// A scrape renders the page (derived twins included).
const t = performance.now();
const page = await metrics.registry.metrics();
console.log(JSON.stringify({ scrapeMs: +(performance.now() - t).toFixed(1), pageKB: Math.round(page.length / 1024) }));
