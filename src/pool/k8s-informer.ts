// Keeping a @kubernetes/client-node informer alive. The library re-watches by
// itself when the API server closes a watch; after an error it stops, so here
// it is restarted with exponential backoff (the library resumes from the last
// resource version and re-lists on 410 Gone), and the owner is told when the
// informer breaks and when it is back.
import type { KubernetesObject, ListWatch } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';

const BASE_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;

export interface Supervision {
  /** Start (list + watch); false if the informer reported an error meanwhile. */
  start(): Promise<boolean>;
  /** Stop restarting (the informer itself is stopped by its owner). */
  stop(): void;
  readonly broken: boolean;
}

export function supervise(
  informer: ListWatch<KubernetesObject>,
  what: string,
  log: Logger,
  hooks: { onBroken?: () => void; onRecovered?: () => void } = {},
): Supervision {
  let errors = 0;
  let backoff = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let broken = false;
  const start = async () => {
    const before = errors;
    await informer.start();
    return errors === before;
  };
  informer.on('error', (err: unknown) => {
    errors++;
    if (stopped) return;
    broken = true;
    backoff = Math.min(MAX_BACKOFF_MS, backoff ? backoff * 2 : BASE_BACKOFF_MS);
    hooks.onBroken?.();
    log.warn({ what, err: (err as Error)?.message ?? String(err), retryInMs: backoff }, 'watch broken; keeping the last known state while re-listing');
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (stopped) return;
      void start().then((ok) => {
        if (!ok || stopped) return; // the error handler has scheduled the next try
        broken = false;
        backoff = 0;
        log.info({ what }, 'watch re-established');
        hooks.onRecovered?.();
      });
    }, backoff);
  });
  return {
    start,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    get broken() {
      return broken;
    },
  };
}
