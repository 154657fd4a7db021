// A request worker (--workers): one thread that serves ext_proc on the shared
// port with its own director, scheduler and plugins, on the pool the control
// thread mirrors to it (supervisor.ts). Started only by the supervisor.
import { parentPort, workerData } from 'node:worker_threads';
import { startApp } from './app.ts';
import { grpcLogsTo } from './extproc/server.ts';
import { createLogger, flushLogger, resolveLogFormat } from './log.ts';
import { applyStates, type FromWorker, type ToWorker, type WorkerInit } from './workers/messages.ts';
import { applyHealth } from './workers/worker-health.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const log = createLogger(init.options.logLevel, resolveLogFormat(init.options.logFormat)).child({ worker: init.index });
grpcLogsTo(log);
// As on the main thread: a bug is logged, the worker keeps serving.
process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));
process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

const send = (m: FromWorker) => port.postMessage(m);

try {
  const app = await startApp(init.options, { logger: log, host: init.host, poolName: init.poolName, processMetrics: false, worker: init });
  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'pool':
        app.datastore.replaceAll(m.specs);
        break;
      case 'states':
        applyStates(app.datastore, m.states);
        // New metrics may let queued requests go.
        app.flow?.wake();
        break;
      case 'policy':
        app.policy.setObjectives(m.objectives);
        app.policy.setRewrites(m.rewrites);
        break;
      case 'health':
        applyHealth(app.health, m.health);
        break;
      case 'metrics':
        app.metrics.registry.getMetricsAsJSON().then(
          (json) => send({ t: 'metrics', id: m.id, json }),
          (err: unknown) => {
            log.warn({ err }, 'metrics collection failed');
            send({ t: 'metrics', id: m.id, json: [] });
          },
        );
        break;
      case 'stop':
        app.stop(m.drainMs, m.delayMs).then(
          () => flushLogger(log).then(() => send({ t: 'stopped' })),
          (err: unknown) => {
            log.error({ err }, 'worker shutdown failed');
            send({ t: 'stopped' });
          },
        );
        break;
    }
  });
  send({ t: 'listening', port: app.ports.grpc });
} catch (err) {
  // The control thread reports it (a port in use names its flag, as without workers).
  send({ t: 'failed', message: (err as Error).message });
  log.debug({ err: (err as Error).message }, 'request worker failed to start');
  await flushLogger(log);
  process.exit(1);
}
