// The app's own logger (src/log.ts createLogger) with its output captured:
// pino writes each line to logger[symbols.streamSym], so pointing that at an
// in-memory sink keeps every option createLogger sets (level, base, time).
import { pino, type LevelWithSilent } from 'pino';
import { createLogger, type Logger } from '../../src/log.ts';

export interface CapturedLog {
  logger: Logger;
  /** Raw JSON lines as pino wrote them. */
  raw: string[];
  /** The same lines, parsed. */
  lines(): Record<string, unknown>[];
}

export function captureLogger(level: LevelWithSilent = 'debug'): CapturedLog {
  const logger = createLogger(level);
  const raw: string[] = [];
  (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] = {
    write(s: string) {
      for (const line of s.split('\n')) if (line !== '') raw.push(line);
    },
  };
  return { logger, raw, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}
