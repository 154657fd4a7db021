// bench:active-active --kill-restart's reading of a run (bench/active-active.bench.ts): the
// windows around the kill, which replica each request went to (from the gateway's turns), the
// failures by when they happened, the replicas' /metrics, and the Markdown it prints.
import { describe, expect, it } from 'vitest';
import {
  attributeTurns,
  eppSample,
  failureBreakdown,
  killRestartMarkdown,
  killRestartWindows,
  predictedMatch,
  promValue,
  windowOf,
  type KillRestartResult,
} from '../bench/active-active.bench.ts';
import type { RequestRecord, StageResult } from '../bench/load/runner.ts';

function rec(i: number, startMs: number, o: Partial<RequestRecord> = {}): RequestRecord {
  return {
    id: `r${i}`,
    stage: 0,
    warmup: false,
    intendedMs: startMs,
    startMs,
    scheduleDelayMs: 0,
    ok: true,
    status: 200,
    itlMs: [],
    e2eMs: 500,
    outputTokens: 10,
    promptTokens: 1000,
    cachedTokens: 500,
    ttftMs: 100,
    ...o,
  };
}

function stage(records: RequestRecord[], measuredStartMs = 1000, arrivalsEndMs = 10_000): StageResult {
  return { index: 0, name: 'qps=10', spec: { rate: 10 }, rate: 10, arrival: 'poisson', startMs: 0, measuredStartMs, arrivalsEndMs, endMs: arrivalsEndMs + 1000, records };
}

/**
 * A run of two replicas: a request every 100 ms from 0 to 9.9 s, the gateway's first request
 * (a preflight, not in the records) on replica 0, so the records alternate replica 1, 0, 1, …;
 * replica 1 killed at 4 s and ready at 5 s: its turn fails in between.
 */
function twoReplicaRun(): { records: RequestRecord[]; t: { killMs: number; readyMs: number } } {
  const t = { killMs: 4000, readyMs: 5000 };
  const records: RequestRecord[] = [];
  for (let i = 0; i < 100; i++) {
    const startMs = i * 100;
    const replica = (i + 1) % 2;
    const down = replica === 1 && startMs >= t.killMs && startMs < t.readyMs;
    // The restarted replica's picks hit less: 200 of 1000 tokens cached instead of 500.
    const cold = replica === 1 && startMs >= t.readyMs;
    records.push(rec(i, startMs, { warmup: startMs < 1000, ...(down ? { ok: false, status: 502, error: 'HTTP 502: gateway: connect ECONNREFUSED', e2eMs: 2 } : {}), ...(cold ? { cachedTokens: 200 } : {}) }));
  }
  // In flight through replica 1 at the kill: cut mid-stream.
  records[38] = rec(38, 3800, { ok: false, error: 'UND_ERR_SOCKET', e2eMs: 800 });
  return { records, t };
}

describe('bench:active-active --kill-restart', () => {
  it('judges the run in windows around the kill, by send time', () => {
    const w = killRestartWindows(1000, { killMs: 4000, readyMs: 5000 }, 2000);
    expect(w.map((x) => [x.name, x.fromMs, x.toMs])).toEqual([
      ['before the kill', 1000, 4000],
      ['down (kill → ready)', 4000, 5000],
      ['back, first 2 s', 5000, 7000],
      ['back, later', 7000, Infinity],
    ]);
    const { records } = twoReplicaRun();
    const st = stage(records);
    const down = windowOf(st, w[1]);
    expect(down.records.map((r) => r.startMs)).toEqual([4000, 4100, 4200, 4300, 4400, 4500, 4600, 4700, 4800, 4900]);
    // Warm-up requests are never in a window.
    expect(windowOf(st, { name: 'all', fromMs: 0, toMs: Infinity }).records).toHaveLength(90);
    expect(windowOf(st, w[3], (r) => r.startMs % 200 === 0).records.every((r) => r.startMs >= 7000 && r.startMs % 200 === 0)).toBe(true);
  });

  it('finds the killed replica\'s gateway turn from the failures while it was down', () => {
    const { records, t } = twoReplicaRun();
    const turns = attributeTurns(records, 2, t)!;
    expect(turns.refused).toBe(5);
    expect(turns.onVictim).toBe(5);
    // Replica 1 took the even records (the preflight took the gateway's first turn).
    expect(records.filter((r) => turns.victimOf(r)).every((r) => (r.startMs / 100) % 2 === 0)).toBe(true);
    expect(records.filter((r) => turns.victimOf(r))).toHaveLength(50);
    // The order is the send order, whatever order the records come in.
    const shuffled = [...records].reverse();
    expect(attributeTurns(shuffled, 2, t)!.victimOf(records[40])).toBe(true);
    expect(attributeTurns(records.map((r) => ({ ...r, ok: true })), 2, t)).toBeUndefined();
  });

  it('counts every failure, by when it happened', () => {
    const { records, t } = twoReplicaRun();
    records.push(rec(100, 9000, { ok: false, error: 'HTTP 500: boom' }), rec(101, 9100, { ok: false, aborted: true, error: 'aborted' }));
    expect(failureBreakdown(records, t)).toEqual({ cut: { UND_ERR_SOCKET: 1 }, down: { 'HTTP 502': 5 }, other: { 'HTTP 500': 1 } });
  });

  it('reads the replicas\' /metrics', () => {
    const text = [
      '# HELP inference_extension_prefix_indexer_size Size of the prefix indexer.',
      'inference_extension_prefix_indexer_size 34288',
      'inference_extension_prefix_indexer_size_other 1',
      'inference_extension_prefix_indexer_hit_ratio_sum 12.5',
      'inference_extension_prefix_indexer_hit_ratio_count 20',
      'llm_epp_state_sync_batches_total{direction="sent"} 900',
      'llm_epp_state_sync_batches_total{direction="replayed"} 405',
      'llm_epp_state_sync_warm_start_seconds 0.13',
      'inference_pool_ready_pods{name="pool"} 8',
    ].join('\n');
    expect(promValue(text, 'llm_epp_state_sync_batches_total', { direction: 'replayed' })).toBe(405);
    expect(promValue(text, 'llm_epp_state_sync_batches_total', { direction: 'dropped' })).toBeUndefined();
    expect(promValue(text, 'inference_extension_prefix_indexer_size')).toBe(34288);
    expect(eppSample(text, 42)).toEqual({ atMs: 42, prefixBlocks: 34288, hitRatioSum: 12.5, hitRatioCount: 20, warmStartS: 0.13, replayedBatches: 405, readyPods: 8 });
    // Without --state-sync there is no warm start to report.
    expect(eppSample('inference_extension_prefix_indexer_size 3\n', 1)).toEqual({ atMs: 1, prefixBlocks: 3 });
    // Declared but never set (a replica that has neither index entries nor picks yet): zero.
    const fresh = [
      '# HELP inference_extension_prefix_indexer_size Size of the prefix indexer.',
      '# TYPE inference_extension_prefix_indexer_size gauge',
      '# TYPE inference_extension_prefix_indexer_hit_ratio histogram',
      '# TYPE inference_extension_prefix_indexer_hit_ratio_other gauge',
    ].join('\n');
    expect(eppSample(fresh, 2)).toEqual({ atMs: 2, prefixBlocks: 0, hitRatioSum: 0, hitRatioCount: 0 });
    expect(eppSample('# TYPE inference_extension_prefix_indexer_size gauge\n', 3)).toEqual({ atMs: 3, prefixBlocks: 0 });
    expect(predictedMatch({ atMs: 0, hitRatioSum: 2, hitRatioCount: 4 }, { atMs: 1, hitRatioSum: 5, hitRatioCount: 8 })).toBe(0.75);
    expect(predictedMatch({ atMs: 0, hitRatioSum: 2, hitRatioCount: 4 }, { atMs: 1, hitRatioSum: 2, hitRatioCount: 4 })).toBeUndefined();
    expect(predictedMatch({ atMs: 0 }, { atMs: 1, hitRatioSum: 2, hitRatioCount: 4 })).toBeUndefined();
  });

  it('prints the windows, the restarted replica at ready and the decisions split by replica', () => {
    const { records, t } = twoReplicaRun();
    const sample = (atMs: number, count: number, sum: number, extra = {}) => ({ atMs, hitRatioCount: count, hitRatioSum: sum, prefixBlocks: 1000, ...extra });
    const r: KillRestartResult = {
      label: '2 replicas, --state-sync',
      sync: true,
      replicas: 2,
      backMs: 2000,
      stage: stage(records),
      timeline: { ...t, goneMs: 4030, spawnMs: 4040, readyMs: 5000, podsReadyMs: 5100 },
      warmLog: { replayedBatches: 405, seconds: 0.13 },
      victim: { start: sample(1000, 5, 2), kill: sample(4000, 20, 11), ready: sample(5010, 3, 2.4, { warmStartS: 0.13, replayedBatches: 405 }), back: sample(7000, 13, 4.4) },
      other: { start: sample(1000, 5, 2), kill: sample(4000, 20, 11), ready: sample(5010, 40, 25), back: sample(7000, 50, 30) },
      reliable: false,
      healthReasons: ['the machine was overloaded'],
    };
    const md = killRestartMarkdown([r]);
    expect(md).toContain('| 2 replicas, --state-sync | down (kill → ready) | 3.0–4.0 | 10 | 5 | 50.0 % | 100 | 100 |');
    expect(md).toContain('| 2 replicas, --state-sync | 3.0 | 30 | 0.96 | 0.130 | 405 | 1000 / 1000 | 3 (read 10 ms after) | 1.06 | 0.76 |');
    // Right after the restart: the restarted replica's 10 picks hit 20 %, the other's 50 %.
    expect(md).toContain('| 2 replicas, --state-sync | restarted | 10 | 0 | 20.0 % | 100 | 20.0 % | 60.0 % |');
    expect(md).toContain('| 2 replicas, --state-sync | the other | 10 | 0 | 50.0 % | 100 | 50.0 % | 60.0 % |');
    expect(md).toContain('cut mid-stream at the kill 1 (UND_ERR_SOCKET × 1); sent while it was down 5 (HTTP 502 × 5); other 0');
    expect(md).toContain('5 of the 5 failures while it was down fell on one turn');
    expect(md).toContain('Machine did not keep up: the machine was overloaded.');
    // No failure while down (nothing to find the turns by): no split, said so.
    const none = killRestartMarkdown([{ ...r, stage: stage(records.map((q) => ({ ...q, ok: true }))) }]);
    expect(none).toContain('| 2 replicas, --state-sync | restarted | – | – | – | – |');
    expect(none).toContain('No failure while it was down');
  });
});
