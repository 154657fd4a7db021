// Resetting simulated pods between strategies, so each starts from empty
// caches and zeroed counters instead of inheriting the previous strategy's
// warm cache: POST /sim/reset on every pod (bench/sim/server.ts). Pods are
// known by their own URLs (--metrics), never through a gateway, which would
// forward the reset to one pod only.
import { request } from 'undici';

const RESET_TIMEOUT_MS = 10_000;

/** Pod base URLs (scheme://host:port) from their /metrics URLs. */
export function podBases(metricsUrls: Iterable<string>): string[] {
  return [...new Set([...metricsUrls].map((u) => new URL(u).origin))];
}

/** POST /sim/reset on each pod. Returns the pods that did not accept it, with why. */
export async function resetPods(bases: readonly string[]): Promise<Array<{ pod: string; why: string }>> {
  const failed: Array<{ pod: string; why: string }> = [];
  await Promise.all(
    bases.map(async (b) => {
      try {
        const res = await request(`${b}/sim/reset`, { method: 'POST', headersTimeout: RESET_TIMEOUT_MS, bodyTimeout: RESET_TIMEOUT_MS });
        await res.body.dump();
        if (res.statusCode !== 200) failed.push({ pod: b, why: `HTTP ${res.statusCode}` });
      } catch (e) {
        failed.push({ pod: b, why: (e as { code?: string }).code ?? (e as Error).message });
      }
    }),
  );
  return failed;
}

export type ResetMode = 'auto' | 'on' | 'off';

export interface ResetDecision {
  /** Reset the pods before each strategy's run (each stage's, when interleaved). */
  reset: boolean;
  /** Why, for the terminal and the report. */
  note: string;
  /** Something the user should know (a comparison that may be unfair). */
  warning?: string;
}

/**
 * Whether to reset between strategies. auto: when the targets serve simulated pods and the pods'
 * URLs are known (and they accept the reset); on: required (an error otherwise); off: never.
 */
export async function decideReset(mode: ResetMode, o: { targets: number; simulated: boolean; pods: readonly string[]; interleave: boolean }): Promise<ResetDecision> {
  const several = o.targets > 1;
  const unfair = several && !o.interleave ? 'later targets run on caches the earlier ones warmed, which favours them' : undefined;
  if (mode === 'off') return { reset: false, note: 'no reset between strategies (--reset-between off)', ...(unfair ? { warning: unfair } : {}) };
  if (o.pods.length === 0) {
    if (mode === 'on') throw new Error("--reset-between on needs the pods' own URLs: give --metrics with each pod's /metrics URL");
    if (o.simulated && unfair) return { reset: false, note: 'simulated pods, but their URLs are unknown', warning: `${unfair}: give --metrics with each pod's /metrics URL so every strategy starts from a reset fleet, or use --interleave` };
    return { reset: false, note: o.simulated ? 'simulated pods, URLs unknown' : 'real pods: not reset', ...(unfair ? { warning: `${unfair}; --interleave alternates which strategy goes first` } : {}) };
  }
  if (mode === 'auto' && !o.simulated) return { reset: false, note: 'real pods: not reset', ...(unfair ? { warning: `${unfair}; --interleave alternates which strategy goes first` } : {}) };
  const failed = await resetPods(o.pods);
  if (failed.length === 0) return { reset: true, note: `each strategy starts from a reset fleet (POST /sim/reset on ${o.pods.length} pods)` };
  const why = failed.slice(0, 3).map((f) => `${f.pod}: ${f.why}`).join(', ');
  if (mode === 'on') throw new Error(`--reset-between on: pods did not accept POST /sim/reset (${why})`);
  return { reset: false, note: 'pods cannot be reset', warning: `pods did not accept POST /sim/reset (${why})${unfair ? '; ' + unfair : ''}` };
}
