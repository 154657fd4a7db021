// Ctrl-C during a run: the first SIGINT (or SIGTERM, SIGHUP) stops the run so the
// caller can write a partial report of what completed and exit 130; a second
// one exits at once.
import { EXIT_INTERRUPTED } from './outcome.ts';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface Interrupt {
  readonly signal: AbortSignal;
  /** Which signal stopped the run, if one did. */
  readonly by: string | undefined;
  dispose(): void;
}

export function onInterrupt(say: (line: string) => void): Interrupt {
  const ac = new AbortController();
  let by: string | undefined;
  const handler = (sig: NodeJS.Signals) => {
    if (by !== undefined) process.exit(EXIT_INTERRUPTED);
    by = sig;
    say(`\n${sig}: stopping; writing a partial report of what completed (again to quit at once)`);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    signal: ac.signal,
    get by() {
      return by;
    },
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
    },
  };
}
