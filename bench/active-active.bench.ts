// `npm run bench:active-active`: active-active llm-epp replicas on the
// simulated fleet, with the demo's shared-prefix workload through the
// benchmark gateway (which spreads its streams over the replicas): one replica
// alone, then N replicas without sync (each learns a share of the prefixes: the
// degradation llm-d's operations guide warns about), then N replicas with
// --state-sync through a real redis-server this script starts. Approximate
// prefix routing (the GAIE default config) in every run.
//
//   npm run bench:active-active                          replicas 2,3, 20 s stages
//   npm run bench:active-active -- --replicas 2 --duration 30s --append-results
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { demoPlanFromArgs, runDemo } from './demo.ts';
import { figuresOf, type Figures } from './precise-routing.bench.ts';
import { ROOT, freePort, startRedisServer } from './lib/processes.ts';

const HELP = `Usage: npm run bench:active-active -- [options]

  --replicas LIST     replica counts to compare with one replica (default 2,3)
  --rate R            offered load, req/s (default 28, the demo's)
  --duration D        measured time per run (default 20s)
  --warmup D          warm-up per run (default 10s)
  --pods N            simulated pods (default 8)
  --append-results    append the table and the command to bench/RESULTS.md

Needs redis-server on the PATH (Debian package redis-server).
`;

interface Row {
  label: string;
  replicas: number;
  sync: boolean;
  f: Figures;
}


const pct = (x: number | undefined) => (x === undefined ? '–' : `${(x * 100).toFixed(1)} %`);

async function main(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      replicas: { type: 'string', default: '2,3' },
      rate: { type: 'string', default: '28' },
      duration: { type: 'string', default: '20s' },
      warmup: { type: 'string', default: '10s' },
      pods: { type: 'string', default: '8' },
      'append-results': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const counts = v.replicas.split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 2 || n > 8)) throw new Error(`--replicas: replica counts 2-8, got "${v.replicas}"`);
  const port = await freePort('127.0.0.1');
  const redis = await startRedisServer(port);
  const runs: { label: string; replicas: number; sync: boolean }[] = [{ label: 'one replica', replicas: 1, sync: false }];
  for (const n of counts) runs.push({ label: `${n} replicas, no sync`, replicas: n, sync: false }, { label: `${n} replicas, --state-sync`, replicas: n, sync: true });
  const rows: Row[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  try {
    for (const [i, r] of runs.entries()) {
      const args = [
        '--strategies=approximate',
        `--pods=${v.pods}`,
        `--rates=${v.rate}`,
        `--duration=${v.duration}`,
        `--warmup=${v.warmup}`,
        `--epp-replicas=${r.replicas}`,
        '--progress=false',
        `--out=${ROOT}bench/results/active-active-${stamp}-${i}`,
        `--title=active-active: ${r.label}`,
        // A stream of its own per run: no run warms from another's history.
        ...(r.sync ? [`--epp-args=--state-sync=redis://127.0.0.1:${port}?key=llm-epp:bench:${stamp}:${i}`] : []),
      ];
      const plan = demoPlanFromArgs(args);
      if (plan === 'help') continue;
      process.stderr.write(`\n=== ${r.label}: npm run demo -- ${args.join(' ')}\n`);
      const result = await runDemo(plan);
      const stage = result.report.stages[0];
      if (!stage) throw new Error(`${r.label}: the demo produced no stage`);
      rows.push({ ...r, f: figuresOf(stage) });
    }
  } finally {
    redis.kill('SIGKILL');
  }
  const one = rows[0].f;
  const lines = [
    '| run | prefix-cache hit | vs one replica | TTFT p50 ms | TTFT p90 ms | p90 vs one replica | req/s | failed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const hitRatio = r.f.hit !== undefined && one.hit ? `${((r.f.hit / one.hit) * 100).toFixed(1)} %` : '–';
      return `| ${r.label} | ${pct(r.f.hit)} | ${hitRatio} | ${r.f.ttftP50.toFixed(0)} | ${r.f.ttftP90.toFixed(0)} | ${((r.f.ttftP90 / one.ttftP90) * 100).toFixed(1)} % | ${r.f.throughput.toFixed(1)} | ${r.f.failed} |`;
    }),
  ];
  const md = lines.join('\n');
  process.stdout.write('\n' + md + '\n');
  if (v['append-results']) {
    const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
    appendFileSync(`${ROOT}bench/RESULTS.md`, `\n## Active-active replicas: approximate prefix routing with and without --state-sync — ${when} UTC\n\n${md}\n\nCommand: \`npm run bench:active-active -- ${argv.join(' ')}\`. Fleet, replicas, gateway, redis-server and load generator on the same machine.\n`);
  }
  return 0;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
