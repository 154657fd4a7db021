#!/usr/bin/env -S node --max-semi-space-size=4
// llm-epp command line: parse flags, start, stop cleanly on SIGTERM/SIGINT.
import { buildScheduler, startApp, VERSION } from './app.ts';
import { grpcLogsTo } from './extproc/server.ts';
import { FlagError, helpText, parseFlags, type Options } from './flags.ts';
import { createLogger, flushLogger, resolveLogFormat, type Logger } from './log.ts';
import { Datastore } from './pool/datastore.ts';
import { availableCpus } from './workers/available-cpus.ts';

/** --check-config: load the config as llm-epp would, say what it configures, exit 0 or 1. */
async function checkConfig(options: Options): Promise<number> {
  const quiet = createLogger('warn', resolveLogFormat(options.logFormat));
  try {
    const { config } = await buildScheduler(options, new Datastore(), quiet, undefined);
    const source = options.configFile || (options.configText ? '--config-text' : 'the default config');
    const lines = [`llm-epp: ${source} is valid (${config.apiVersion})`];
    for (const p of config.profiles.values()) {
      const scorers = p.scorers.map((s) => `${s.scorer.name} ×${s.weight}`).join(', ') || 'none';
      lines.push(`  profile ${p.name}: filters [${p.filters.map((f) => f.name).join(', ')}], scorers [${scorers}], picker ${p.picker.name}`);
    }
    lines.push(`  profile handler ${config.profileHandler.name}; saturation detector ${config.saturationDetector.name}; ${config.plugins.size} plugins`);
    const fc = config.flowControlSettings;
    if (fc) {
      const bands = [...fc.bands.values()].sort((a, b) => b.priority - a.priority).map((b) => `${b.priority} (${b.fairness.name}, ${b.ordering.name}, ${b.maxRequests} requests)`);
      lines.push(`  flow control on: bands ${bands.join(', ')}; usage limit ${fc.usageLimit.name}; request TTL ${fc.defaultRequestTtlMs / 1000}s, no-endpoint TTL ${fc.noEndpointRequestTtlMs / 1000}s${fc.enableEviction ? '; in-flight eviction on' : ''}`);
    }
    process.stdout.write(lines.join('\n') + '\n');
    await flushLogger(quiet);
    return 0;
  } catch (err) {
    await flushLogger(quiet);
    process.stderr.write(`llm-epp: the config is not valid:\n  ${(err as Error).message.replace(/\n/g, '\n  ')}\n`);
    return 1;
  }
}

/** Start-up failed: one readable message on a terminal (a YAML error's caret intact); a JSON line otherwise. */
function reportStartFailure(log: Logger, text: boolean, err: unknown): void {
  const message = (err as Error)?.message ?? String(err);
  if (text) process.stderr.write(`llm-epp: failed to start: ${message}\n`);
  else log.fatal({ err: message }, 'llm-epp failed to start');
}

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
  if (options.checkConfig) process.exit(await checkConfig(options));
  // --workers 0 (the default): one request worker per CPU the container may use.
  if (options.workers === 0) options.workers = availableCpus();
  const logFormat = resolveLogFormat(options.logFormat);
  const log = createLogger(options.logLevel, logFormat);
  grpcLogsTo(log);
  let app;
  try {
    app = await startApp(options, { logger: log });
  } catch (err) {
    reportStartFailure(log, logFormat === 'text', err);
    await flushLogger(log);
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
