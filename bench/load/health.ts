// Whether a stage's figures can be trusted: the load generator, the processes
// it measures and the machine must have kept up. A stage is "unreliable" when
// the client sent late (schedule delay), any measured process's event loop
// lagged, the machine was overloaded (load average per core) or the hypervisor
// took the CPU away (steal). The figures come from probes.ts; this file only
// judges them, so the rules are testable without a busy machine.

/** Thresholds of the verdict. Defaults are the named constants below; every one is a flag of `load` and `demo`. */
export interface HealthThresholds {
  /** Load generator's schedule delay p99, ms. */
  scheduleDelayP99Ms: number;
  /** Event-loop lag p99 of any measured process (load generator included), ms. */
  loopLagP99Ms: number;
  /** 1-minute load average divided by the number of CPUs. */
  loadPerCore: number;
  /** Fraction of CPU time stolen by the hypervisor during the stage. */
  stealFraction: number;
}

export const SCHEDULE_DELAY_P99_MS = 50;
export const LOOP_LAG_P99_MS = 50;
export const LOAD_PER_CORE = 1.5;
export const STEAL_FRACTION = 0.1;

export const DEFAULT_THRESHOLDS: HealthThresholds = {
  scheduleDelayP99Ms: SCHEDULE_DELAY_P99_MS,
  loopLagP99Ms: LOOP_LAG_P99_MS,
  loadPerCore: LOAD_PER_CORE,
  stealFraction: STEAL_FRACTION,
};

/** Event-loop lag of one process over a stage (delay beyond the timer's resolution), ms. */
export interface LoopLag {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ProcessHealth {
  /** Event-loop lag, when the process reports it (llm-epp's /metrics, the lag probe of the demo's children). */
  loopLag?: LoopLag;
  /** CPU used over the stage in cores (1 = one core busy all the time), when /proc/<pid>/stat is readable. */
  cpuCores?: number;
}

/** What the probes measured during one stage. Fields are absent where the machine does not expose them. */
export interface HealthFigures {
  /** The load generator's own event-loop lag. */
  loopLag?: LoopLag;
  /** Other processes by name: "llm-epp", "fleet", "gateway round-robin", … */
  processes: Record<string, ProcessHealth>;
  cpus: number;
  /** 1-minute load average at the start and the end of the stage. */
  loadAverage?: { start: number; end: number };
  /** From /proc/stat deltas over the stage: CPU time stolen, and CPU time busy, as fractions of all CPU time. */
  stealFraction?: number;
  cpuBusyFraction?: number;
}

export interface StageHealth {
  reliable: boolean;
  reasons: string[];
  /** What to do about it; empty when reliable. */
  advice: string[];
  figures: HealthFigures & { scheduleDelayP99Ms: number };
  thresholds: HealthThresholds;
}

const ms = (v: number) => `${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)} ms`;

/** Judge one stage. `scheduleDelayP99Ms` comes from the stage's records (NaN when none). */
export function assessHealth(figures: HealthFigures | undefined, scheduleDelayP99Ms: number, thresholds: HealthThresholds = DEFAULT_THRESHOLDS): StageHealth {
  const f: HealthFigures = figures ?? { processes: {}, cpus: 0 };
  const reasons: string[] = [];
  const advice = new Set<string>();
  if (scheduleDelayP99Ms > thresholds.scheduleDelayP99Ms) {
    reasons.push(`the load generator sent late: schedule delay p99 ${ms(scheduleDelayP99Ms)} > ${ms(thresholds.scheduleDelayP99Ms)}`);
    advice.add('lower the rate (--rates) or use fewer pods (--pods)');
  }
  const lagging: Array<[string, LoopLag]> = [];
  if (f.loopLag) lagging.push(['load generator', f.loopLag]);
  for (const [name, p] of Object.entries(f.processes)) if (p.loopLag) lagging.push([name, p.loopLag]);
  for (const [name, lag] of lagging) {
    if (lag.p99Ms > thresholds.loopLagP99Ms) {
      reasons.push(`${name}'s event loop lagged: p99 ${ms(lag.p99Ms)} > ${ms(thresholds.loopLagP99Ms)} (max ${ms(lag.maxMs)})`);
      advice.add('lower the rate (--rates) or use fewer pods (--pods)');
    }
  }
  if (f.loadAverage && f.cpus > 0) {
    const perCore = Math.max(f.loadAverage.start, f.loadAverage.end) / f.cpus;
    if (perCore > thresholds.loadPerCore) {
      reasons.push(`the machine was overloaded: load average ${Math.max(f.loadAverage.start, f.loadAverage.end).toFixed(1)} on ${f.cpus} CPUs (${perCore.toFixed(1)} per core > ${thresholds.loadPerCore})`);
      advice.add('close other work on this machine');
      advice.add('lower the rate (--rates) or use fewer pods (--pods)');
    }
  }
  if (f.stealFraction !== undefined && f.stealFraction > thresholds.stealFraction) {
    reasons.push(`the hypervisor took ${(f.stealFraction * 100).toFixed(0)} % of the CPU (steal > ${(thresholds.stealFraction * 100).toFixed(0)} %)`);
    advice.add('run on a machine with dedicated CPUs, or close other work on the host');
  }
  return {
    reliable: reasons.length === 0,
    reasons,
    advice: [...advice],
    figures: { ...f, scheduleDelayP99Ms },
    thresholds,
  };
}

/** Flags shared by `load` and `demo` (node:util parseArgs options). */
export const HEALTH_OPTIONS = {
  'unreliable-delay': { type: 'string' },
  'unreliable-lag': { type: 'string' },
  'unreliable-load': { type: 'string' },
  'unreliable-steal': { type: 'string' },
} as const;

export const HEALTH_HELP = `Health (a stage is marked UNRELIABLE in the terminal and the reports when one is exceeded)
  --unreliable-delay MS    load generator's schedule delay p99 (default ${SCHEDULE_DELAY_P99_MS})
  --unreliable-lag MS      event-loop lag p99 of any measured process (default ${LOOP_LAG_P99_MS})
  --unreliable-load X      1-minute load average per CPU (default ${LOAD_PER_CORE})
  --unreliable-steal PCT   CPU steal, percent (default ${STEAL_FRACTION * 100})
`;

function positive(flag: string, v: string | undefined, fallback: number, scale = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag} must be a number >= 0, got "${v}"`);
  return n * scale;
}

/** Thresholds from the parsed flags. */
export function thresholdsFromFlags(v: { 'unreliable-delay'?: string; 'unreliable-lag'?: string; 'unreliable-load'?: string; 'unreliable-steal'?: string }): HealthThresholds {
  return {
    scheduleDelayP99Ms: positive('unreliable-delay', v['unreliable-delay'], SCHEDULE_DELAY_P99_MS),
    loopLagP99Ms: positive('unreliable-lag', v['unreliable-lag'], LOOP_LAG_P99_MS),
    loadPerCore: positive('unreliable-load', v['unreliable-load'], LOAD_PER_CORE),
    stealFraction: positive('unreliable-steal', v['unreliable-steal'], STEAL_FRACTION, 0.01),
  };
}
