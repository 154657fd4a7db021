import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

// Prompt text never reaches the logger: request logs carry ids, models,
// endpoints and timings only.
export function createLogger(level: LevelWithSilent = 'info'): Logger {
  return pino({
    level,
    base: { component: 'llm-epp' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** Go/zap-style verbosity (-v) as used by the GAIE EPP: 4 = debug, 5+ = trace. */
export function levelFromVerbosity(v: number): LevelWithSilent {
  if (v >= 5) return 'trace';
  if (v >= 4) return 'debug';
  return 'info';
}
