// Seeded fuzzing of the ext_proc server (test/fuzz/): malformed bodies, odd
// JSON shapes and every message order must leave llm-epp serving, with no
// stream left hanging and nothing held once the streams are gone.
// Reproduce or widen with: node test/fuzz/cli.ts --cases 100000 --seed N [--case I]
import { expect, it } from 'vitest';
import { runFuzz, summarize } from './fuzz/ext-proc-fuzz.ts';

it('survives 3000 seeded ext_proc fuzz streams', { timeout: 120_000 }, async () => {
  const report = await runFuzz({ cases: 3000, seed: 20261204 });
  expect(summarize(report.failures)).toEqual([]);
  expect(report.inFlightLeft).toBe(0);
  expect(report.bufferedLeft).toBe(0);
  expect(report.rssEndMB - report.rssStartMB).toBeLessThan(100);
});
