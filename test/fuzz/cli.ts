// node test/fuzz/cli.ts --cases 100000 --seed N [--case I ...]: run the ext_proc
// fuzz suite (or replay single cases of a seed), print progress and the JSON
// report; exit 1 when anything failed.
import { parseArgs } from 'node:util';
import { runFuzz, summarize } from './ext-proc-fuzz.ts';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '3000' },
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    case: { type: 'string', multiple: true },
  },
});
const cases = Number(values.cases);
const seed = Number(values.seed);
const only = values.case?.map(Number);
if (!Number.isInteger(cases) || cases < 1 || !Number.isInteger(seed) || only?.some((i) => !Number.isInteger(i) || i < 0)) {
  console.error('usage: node test/fuzz/cli.ts [--cases N] [--seed N] [--case I ...]');
  process.exit(2);
}

const total = only?.length ?? cases;
console.error(`ext_proc fuzz: ${only ? `cases ${only.join(',')}` : `${cases} cases`}, seed ${seed}`);
const step = Math.max(1, Math.round(total / 20));
const report = await runFuzz({ cases, seed, only, onProgress: (done) => done % step === 0 && console.error(`  ${done}/${total}`) });
// A systematic bug fails thousands of cases: the summary groups them, the report lists the first 50.
for (const line of summarize(report.failures)) console.error(`FAIL ${line}`);
console.log(JSON.stringify({ ...report, failures: report.failures.slice(0, 50), failuresTotal: report.failures.length }, null, 2));
process.exit(report.failures.length > 0 ? 1 : 0);
