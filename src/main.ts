#!/usr/bin/env -S node --max-semi-space-size=4
// llm-epp command line: parse flags, start, stop cleanly on SIGTERM/SIGINT.
import { startApp, VERSION } from './app.ts';
import { FlagError, helpText, parseFlags } from './flags.ts';
import { createLogger, flushLogger } from './log.ts';

async function main(): Promise<void> {
  let options;
  try {
    options = parseFlags(process.argv.slice(2));
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`llm-epp: ${err.message}\nRun llm-epp --help for the flags.\n`);
      process.exit(2);
    }
    throw err;
  }
  if (options.help) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  if (options.version) {
    process.stdout.write(`llm-epp ${VERSION}\n`);
    return;
  }
  const log = createLogger(options.logLevel);
  let app;
  try {
    app = await startApp(options, { logger: log });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'llm-epp failed to start');
    process.exit(1);
  }
  // SIGTERM: health NOT_SERVING at once, keep serving for --shutdown-delay,
  // drain open streams for up to --drain-timeout, exit 0. A second signal
  // exits at once.
  let stopping = false;
  const exit = (code: number) => void flushLogger(log).then(() => process.exit(code));
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without draining');
      exit(1);
      return;
    }
    stopping = true;
    log.info({ signal, shutdownDelayMs: options.shutdownDelayMs, drainTimeoutMs: options.drainTimeoutMs }, 'shutting down');
    app.stop().then(
      () => {
        log.info('stopped');
        exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A bug must never take the picker down silently: log it; keep serving.
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
}

void main();
