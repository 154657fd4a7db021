// node:util parseArgs for the bench command lines, with its errors as one short
// line a person can act on ("unknown flag --foo") instead of a thrown stack.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

/** A command-line mistake: print `${tool}: ${message}` and exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

function friendly(err: { code?: string; message: string }): string {
  const flag = /'(-[^' ]+)/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${flag}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument "${/'([^']*)'/.exec(err.message)?.[1] ?? ''}" (flags start with --)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (err.message.includes('does not take an argument')) return `${flag} takes no value`;
      if (err.message.includes('ambiguous')) return `${flag} needs a value; one that starts with a dash is written ${flag}=VALUE`;
      return `${flag} needs a value`;
    default:
      return err.message.split('\n')[0];
  }
}

/** Parse `argv` strictly (no positionals); a UsageError with one line on any mistake. */
export function parseFlags<T extends ParseArgsOptionsConfig>(argv: string[], options: T): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: false }>>['values'] {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(friendly(err as { code?: string; message: string }));
  }
}

/**
 * Run a command's main: a UsageError or any other error becomes one line on
 * stderr (`tool: message`) and exit code 2 (usage) or 1 (anything else), never a stack.
 */
export async function runMain(tool: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    const usage = err instanceof UsageError;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${tool}: ${message.split('\n')[0]}${usage ? ' (see --help)' : ''}\n`);
    process.exit(usage ? 2 : 1);
  }
}
