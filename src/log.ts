import { pino, type Logger, type LevelWithSilent } from 'pino';
import { PinoPretty } from 'pino-pretty';

export type { Logger };

/** Log bytes buffered while stdout's reader is slow; past this, lines are dropped, not kept. */
const MAX_BUFFERED_LOG_BYTES = 16 << 20;

type Destination = ReturnType<typeof pino.destination>;
const destinations = new WeakMap<Logger, Destination>();

// Prompt text never reaches the logger: request logs carry ids, models,
// endpoints and timings only. Lines go to stdout asynchronously, so a slow
// log reader never stalls the event loop, with a bounded buffer.
export function createLogger(level: LevelWithSilent = 'info', format: 'json' | 'text' = 'json'): Logger {
  const dest = pino.destination({ dest: 1, sync: false, maxLength: MAX_BUFFERED_LOG_BYTES });
  const opts = { level, base: { component: 'llm-epp' }, timestamp: pino.stdTimeFunctions.isoTime };
  // Text (--log-format=text, a terminal by default): the same lines made readable, multi-line
  // messages (a YAML error's caret) kept as they are; written through the same bounded buffer.
  const log = format === 'text' ? pino(opts, PinoPretty({ destination: dest, colorize: process.stdout.isTTY === true, ignore: 'pid,hostname,component', translateTime: 'SYS:HH:MM:ss.l' })) : pino(opts, dest);
  destinations.set(log, dest);
  return log;
}

/** The log format to use: as asked, or for auto, text when stdout is a terminal. */
export function resolveLogFormat(format: 'auto' | 'text' | 'json', isTTY = process.stdout.isTTY === true): 'text' | 'json' {
  return format === 'auto' ? (isTTY ? 'text' : 'json') : format;
}

/**
 * Flush what is buffered before the process exits, for at most `timeoutMs`.
 * If stdout cannot take it (its reader is gone or stuck), give up on those
 * lines: otherwise pino's exit hook would retry the write forever and the
 * process would never exit (seen when the process that read our stdout died).
 */
export function flushLogger(log: Logger, timeoutMs = 1000): Promise<void> {
  const dest = destinations.get(log);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      // What could be written has been; the exit hook's synchronous flush
      // loops forever on a broken pipe (EPIPE is retried like EAGAIN).
      if (dest) dest.flushSync = () => {};
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    try {
      log.flush(done);
    } catch {
      done();
    }
  });
}

/** Go/zap-style verbosity (-v) as used by the GAIE EPP: 4 = debug, 5+ = trace. */
export function levelFromVerbosity(v: number): LevelWithSilent {
  if (v >= 5) return 'trace';
  if (v >= 4) return 'debug';
  return 'info';
}
