// A data source's `interval` parameter ("1s", "500ms"): positive, or a
// ConfigError naming the plugin.
import { ConfigError } from '../params.ts';
import { parseDuration } from '../../units.ts';

/** Milliseconds, or undefined when not given (the source then scrapes every --refresh-metrics-interval). */
export function sourceInterval(where: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (e) {
    throw new ConfigError(`${where}: parameter "interval": ${(e as Error).message}`);
  }
  if (!(ms > 0)) throw new ConfigError(`${where}: parameter "interval" must be positive`);
  return ms;
}
