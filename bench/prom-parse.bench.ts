// Parse throughput of src/metrics/prom-text.ts, with and without the `wanted` filter, and of
// the npm package parse-prometheus-text-format for comparison.
//
//   node bench/prom-parse.bench.ts          (Node 24: `npx node …` uses the project's node)
//   PPTF_PATH=/tmp/ppbench/node_modules/parse-prometheus-text-format node bench/prom-parse.bench.ts
//
// The comparison package is not a project dependency: install it outside the project
// (cd /tmp/ppbench && npm init -y && npm i parse-prometheus-text-format) and point PPTF_PATH
// at the package directory or its main file. Without PPTF_PATH that candidate is skipped.
// Note that package returns values as unparsed strings and does less work per sample.
// BENCH_MS sets the measuring time per candidate and page (default 1500); BENCH_DUMP=1
// prints the synthetic page instead.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { extractMetrics, getEngine, wantedMetricNames } from '../src/metrics/engines.ts';

import { syntheticVllmPage } from './lib/vllm-page.ts';

interface Candidate {
  readonly name: string;
  readonly run: (page: string) => number;
}

const vllm = getEngine('vllm')!;
const wanted = wantedMetricNames(vllm);
const candidates: Candidate[] = [
  { name: 'llm-epp, wanted filter', run: (p) => parsePrometheusText(p, wanted).size },
  { name: 'llm-epp, wanted + extractMetrics', run: (p) => extractMetrics(vllm, parsePrometheusText(p, wanted)).runningRequests },
  { name: 'llm-epp, no filter', run: (p) => parsePrometheusText(p).size },
];

const pptfPath = process.env.PPTF_PATH;
if (pptfPath !== undefined && pptfPath !== '') {
  const req = createRequire(import.meta.url);
  const mod = req(pptfPath) as ((t: string) => unknown[]) | { default: (t: string) => unknown[] };
  const fn = typeof mod === 'function' ? mod : mod.default;
  candidates.push({ name: 'parse-prometheus-text-format', run: (p) => fn(p).length });
} else {
  console.error('PPTF_PATH not set: skipping parse-prometheus-text-format');
}

const MEASURE_MS = Number(process.env.BENCH_MS ?? 1500);

function measure(c: Candidate, page: string): { perSec: number; usPerPage: number } {
  let sink = 0;
  // Warm-up so the JIT has optimised the hot paths before timing.
  const warmEnd = performance.now() + Math.min(500, MEASURE_MS / 3);
  while (performance.now() < warmEnd) for (let i = 0; i < 50; i++) sink += c.run(page);
  // Several rounds; report the median to damp GC and scheduler noise.
  const rounds: number[] = [];
  const roundMs = MEASURE_MS / 5;
  for (let r = 0; r < 5; r++) {
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < roundMs) {
      for (let i = 0; i < 50; i++) sink += c.run(page);
      n += 50;
      t = performance.now();
    }
    rounds.push((n * 1000) / (t - t0));
  }
  if (sink === -1) console.log(sink); // keep results observable
  rounds.sort((a, b) => a - b);
  const perSec = rounds[2];
  return { perSec, usPerPage: 1e6 / perSec };
}

const pages: [string, string][] = [
  ['vLLM composite fixture', readFileSync(new URL('../test/fixtures/metrics/vllm-composite-datadog-vllm_metrics.prom', import.meta.url), 'utf8')],
  ['synthetic vLLM V1 page', syntheticVllmPage()],
];

if (process.env.BENCH_DUMP === '1') {
  // Print the synthetic page (e.g. to inspect or save it) and stop.
  process.stdout.write(pages[1][1]);
  process.exit(0);
}

console.log(`node ${process.version}, ${MEASURE_MS} ms per measurement (median of 5 rounds)`);
for (const [label, page] of pages) {
  const lines = page.split('\n').length;
  const samples = [...parsePrometheusText(page).values()].reduce((a, l) => a + l.length, 0);
  console.log(`\n${label}: ${(page.length / 1024).toFixed(1)} KiB, ${lines} lines, ${samples} samples`);
  for (const c of candidates) {
    const { perSec, usPerPage } = measure(c, page);
    const mbps = (perSec * page.length) / 1e6;
    console.log(
      `  ${c.name.padEnd(34)} ${Math.round(perSec).toString().padStart(8)} pages/s  ${usPerPage.toFixed(1).padStart(7)} µs/page  ${mbps.toFixed(0).padStart(4)} MB/s`,
    );
  }
}
