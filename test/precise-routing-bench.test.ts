// The precise-routing benchmark's plumbing (bench/precise-routing.bench.ts, the demo's new
// strategies and flags, the comparison's disruption hook): each scenario becomes the demo run
// it claims to be, the targets are judged as the issue states them, and a disruption runs
// alongside each strategy's run against a real simulated pod.
import { describe, expect, it } from 'vitest';
import { demoPlanFromArgs, preciseConfigText } from '../bench/demo.ts';
import { runComparison } from '../bench/load/compare.ts';
import { makeWorkload } from '../bench/load/workloads.ts';
import { scenarioRuns, summaryMarkdown, targets, type Figures } from '../bench/precise-routing.bench.ts';
import { startSimPod } from '../bench/sim/server.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { createLogger } from '../src/log.ts';
import { makePool } from './helpers/scheduling.ts';

const fig = (hit: number, p90: number): Figures => ({ hit, ttftP50: p90 / 2, ttftP90: p90, throughput: 10, failed: 0 });

describe('precise-routing benchmark', () => {
  it('turns each scenario into its demo run: cache pressure, restarts, replicas', () => {
    const plan = scenarioRuns(['--pods', '8', '--groups', '64', '--system-tokens', '6000', '--pressure-demand', '1.5']);
    if (plan === 'help') throw new Error('help');
    expect(plan.runs.map((r) => r.scenario)).toEqual(['pressure', 'restart', 'replicas']);
    const demo = plan.runs.map((r) => demoPlanFromArgs(r.demoArgv));
    for (const d of demo) {
      if (d === 'help') throw new Error('help');
      expect(d.strategies).toEqual(['precise', 'approximate', 'oracle', 'round-robin']);
    }
    const [pressure, restart, replicas] = demo as Exclude<(typeof demo)[number], 'help'>[];
    // 64 × 6000 prompt tokens = 1.5 × the fleet's 8 pods × 2000 blocks × 16 tokens.
    expect(pressure.simArgs).toContain('--num-gpu-blocks=2000');
    expect(pressure.restart).toBeUndefined();
    expect(restart.restart).toEqual({ pods: 2, afterMs: 10_000 + 15_000 });
    expect(replicas.eppReplicas).toBe(2);
    expect(restart.eppReplicas).toBe(1);
    expect(() => scenarioRuns(['--scenarios', 'pressure,nope'])).toThrow(/unknown scenario "nope"/);
    expect(() => demoPlanFromArgs(['--pods', '2', '--restart-pods', '3'])).toThrow(/more than --pods/);
  });

  it('judges the targets as the issue states them', () => {
    const ok = targets('replicas', { precise: fig(0.6, 200), oracle: fig(0.62, 190), approximate: fig(0.45, 260) });
    expect(ok.map((t) => t.met)).toEqual([true, true]);
    const miss = targets('restart', { precise: fig(0.5, 270), oracle: fig(0.6, 260), approximate: fig(0.5, 270) });
    expect(miss.map((t) => t.met)).toEqual([false, false]); // 83 % of the oracle; a tie is not "below"
    expect(targets('pressure', { precise: fig(0.5, 270), approximate: fig(0.5, 270) })[0]).toMatchObject({ met: true, what: /not above/ });
    const md = summaryMarkdown([{ scenario: 'restart', figures: { precise: fig(0.5, 270), oracle: fig(0.6, 260), approximate: fig(0.5, 270) } }]);
    expect(md).toContain('| restart | precise | 50.0 % |');
    expect(md).toContain('| restart | precise hit rate ≥ 95 % of the oracle\'s | **no** | 50.0 % vs 60.0 % (83.3 %) |');
  });

  it('runs the precise strategy on a config llm-epp accepts, with the GAIE default weights', () => {
    const text = preciseConfigText('http://127.0.1.1:8000', 5557, 'sim-model');
    const cfg = loadConfig(parseConfigText(text, 'precise'), createRegistry(), { pool: makePool([]).pool, log: createLogger('silent'), metrics: undefined, random: Math.random }, 'precise');
    expect(cfg.profiles.get('default')?.scorers.map((s) => [s.scorer.type, s.weight])).toEqual([
      ['queue-scorer', 2],
      ['kv-cache-utilization-scorer', 2],
      ['prefix-cache-scorer', 3],
    ]);
  });

  it('runs a disruption alongside each strategy\'s run, and stops it when the run ends', async () => {
    const pod = await startSimPod({ model: 'sim-model', timeScale: 0.01 });
    try {
      const url = `http://127.0.0.1:${pod.port}`;
      const seen: string[] = [];
      const runs = await runComparison({
        targets: [['a', url], ['b', url]],
        workload: () => makeWorkload('shared-prefix', { seed: 1, groups: 1, promptsPerGroup: 2, systemTokens: 50, questionTokens: 5, outputTokens: 2 }),
        stages: [{ concurrency: 1, maxRequests: 3, durationMs: 5000 }],
        during: async (strategy, first, signal) => {
          seen.push(`${strategy}:${first}:start`);
          await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
          seen.push(`${strategy}:end`);
        },
      });
      expect(runs.map((r) => r.stages[0].records.length)).toEqual([3, 3]);
      expect(seen).toEqual(['a:0:start', 'a:end', 'b:0:start', 'b:end']);
    } finally {
      await pod.close();
    }
  });
});
