#!/usr/bin/env -S node --max-semi-space-size=4
// llm-epp command line: parse flags, start, stop cleanly on SIGTERM/SIGINT.
import { startApp, VERSION } from './app.ts';
import { FlagError, helpText, parseFlags } from './flags.ts';
import { createLogger } from './log.ts';

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
  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down');
    app.stop(options.drainTimeoutMs).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A bug must never take the picker down silently: log it; keep serving.
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
}

void main();
