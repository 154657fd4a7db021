// Strategies side by side on the same pods, fairly: each strategy's run starts
// from a reset fleet (reset()), or, interleaved, stage by stage with the order
// of the strategies rotating from one stage to the next (and a reset before
// each stage's run when the pods can be reset), so no strategy always runs on
// caches another one warmed. Every strategy gets the same request sequence.
import type { HealthFigures } from './health.ts';
import { runStages, type PodCacheCounters, type RunResult, type StageSpec } from './runner.ts';
import type { Workload } from './workloads.ts';

export interface CompareOptions {
  /** [strategy name, base URL] in the order given. */
  targets: ReadonlyArray<readonly [string, string]>;
  /** A fresh workload with the same seed for each strategy. */
  workload: () => Workload;
  stages: StageSpec[];
  arrival?: 'poisson' | 'constant';
  seed?: number;
  timeoutMs?: number;
  maxInFlight?: number;
  progress?: boolean;
  cacheCounters?: () => Promise<PodCacheCounters>;
  health?: { begin(): Promise<void>; end(): Promise<HealthFigures> };
  signal?: AbortSignal;
  /** Reset the pods: before each strategy's run, or before each (stage, strategy) run when interleaved. */
  reset?: () => Promise<void>;
  interleave?: boolean;
  /**
   * Something to do to the fleet while each run goes (a pod restart mid-run): started with the run
   * (`firstStage`: the index of its first stage), aborted when the run ends; its failure fails the run.
   */
  during?: (strategy: string, firstStage: number, signal: AbortSignal) => Promise<void>;
  /** A line per run ("▶ round-robin: qps=28"). */
  log?: (line: string) => void;
}

/** The order of the strategies in stage `i` when interleaved: rotated by one per stage. */
export function interleavedOrder<T>(items: readonly T[], stage: number): T[] {
  const k = items.length ? stage % items.length : 0;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** One run with o.during alongside it. */
async function withDisruption(o: CompareOptions, strategy: string, firstStage: number, run: () => Promise<RunResult>): Promise<RunResult> {
  if (!o.during) return run();
  const ac = new AbortController();
  const disruption = o.during(strategy, firstStage, ac.signal);
  try {
    return await run();
  } finally {
    ac.abort();
    await disruption;
  }
}

/** Run every strategy; returns what completed (all of it unless the signal fired). */
export async function runComparison(o: CompareOptions): Promise<RunResult[]> {
  const common = {
    arrival: o.arrival,
    seed: o.seed,
    timeoutMs: o.timeoutMs,
    maxInFlight: o.maxInFlight,
    progress: o.progress,
    cacheCounters: o.cacheCounters,
    health: o.health,
    signal: o.signal,
  };
  const runs: RunResult[] = [];
  if (!o.interleave) {
    for (const [strategy, url] of o.targets) {
      if (o.signal?.aborted) break;
      await o.reset?.();
      o.log?.(`▶ ${strategy} (${url}): ${o.stages.length} stage${o.stages.length > 1 ? 's' : ''}`);
      runs.push(await withDisruption(o, strategy, 0, () => runStages({ ...common, url, strategy, workload: o.workload(), stages: o.stages })));
    }
    return runs;
  }
  // Interleaved: one run per strategy, filled stage by stage; one workload per strategy, continued across its stages.
  const t0 = performance.now();
  const byName = new Map<string, { run: RunResult; workload: Workload; url: string }>();
  for (const [strategy, url] of o.targets) {
    byName.set(strategy, { run: { strategy, url, workload: '', startedAt: new Date().toISOString(), stages: [] }, workload: o.workload(), url });
  }
  for (let i = 0; i < o.stages.length && !o.signal?.aborted; i++) {
    for (const [strategy] of interleavedOrder(o.targets, i)) {
      if (o.signal?.aborted) break;
      const t = byName.get(strategy)!;
      await o.reset?.();
      o.log?.(`▶ ${strategy} (${t.url}): stage ${i + 1}/${o.stages.length}`);
      const r = await withDisruption(o, strategy, i, () => runStages({ ...common, url: t.url, strategy, workload: t.workload, stages: [o.stages[i]], firstStageIndex: i, t0 }));
      t.run.workload = r.workload;
      t.run.stages.push(...r.stages);
    }
  }
  for (const [strategy] of o.targets) {
    const t = byName.get(strategy)!;
    if (t.run.stages.length) runs.push(t.run);
  }
  return runs;
}
