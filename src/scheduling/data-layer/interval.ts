// A data source's `interval` parameter ("1s", "500ms"): positive, or a
// ConfigError naming the plugin.
import { configDuration } from '../params.ts';

/** Milliseconds, or undefined when not given (the source then scrapes every --refresh-metrics-interval). */
export function sourceInterval(where: string, text: string | undefined): number | undefined {
  return text === undefined ? undefined : configDuration(`${where}: parameter "interval"`, text);
}
