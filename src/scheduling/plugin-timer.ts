// Every plugin call goes through here: timed into
// llm_d_epp_plugin_duration_seconds and its deprecated twin (by extension
// point, type and name) and, where a failure must not fail the request, guarded: a throwing
// plugin is logged and its fallback used. Shared by the scheduler (filters,
// scorers, pickers) and request control (producers and request hooks).
import type { Logger } from '../log.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import type { Plugin } from './framework.ts';

type Observer = { observe(v: number): void };

export class PluginTimer {
  readonly #metrics: EppMetrics | undefined;
  readonly #log: Logger;
  // One labelled child per (extension point, plugin): prom-client would
  // otherwise hash the label set on every observation.
  readonly #children = new Map<string, Observer>();

  constructor(metrics: EppMetrics | undefined, log: Logger) {
    this.#metrics = metrics;
    this.#log = log;
  }

  /** Run a plugin call, timed; exceptions propagate. */
  timed<T>(point: string, plugin: Plugin, fn: () => T): T {
    const m = this.#metrics;
    if (!m) return fn();
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.#histogram(m, point, plugin).observe((performance.now() - t0) / 1000);
    }
  }

  /** Run a plugin call, timed; on an exception log it and return `fallback`: one bad plugin must not fail every request. */
  guarded<T>(point: string, plugin: Plugin, fn: () => T, fallback: T): T {
    try {
      return this.timed(point, plugin, fn);
    } catch (err) {
      this.#log.error({ err, plugin: plugin.name, type: plugin.type, extensionPoint: point }, 'plugin failed; continuing without it');
      return fallback;
    }
  }

  /**
   * An async plugin call (a producer's prepare()), timed to its settlement;
   * a rejection or throw is logged and swallowed. undefined when the plugin
   * had nothing to wait for.
   */
  guardedAsync(point: string, plugin: Plugin, fn: () => Promise<void> | undefined): Promise<void> | undefined {
    const t0 = performance.now();
    const failed = (err: unknown) => {
      this.#log.error({ err, plugin: plugin.name, type: plugin.type, extensionPoint: point }, 'plugin failed; continuing without it');
    };
    const done = () => {
      if (this.#metrics) this.#histogram(this.#metrics, point, plugin).observe((performance.now() - t0) / 1000);
    };
    let p: Promise<void> | undefined;
    try {
      p = fn();
    } catch (err) {
      failed(err);
      done();
      return undefined;
    }
    if (!p) {
      done();
      return undefined;
    }
    return p.then(done, (err: unknown) => {
      failed(err);
      done();
    });
  }

  #histogram(m: EppMetrics, point: string, plugin: Plugin): Observer {
    const key = `${point}\0${plugin.name}`;
    let child = this.#children.get(key);
    if (!child) {
      child = m.pluginDuration.labels({ extension_point: point, plugin_type: plugin.type, plugin_name: plugin.name });
      this.#children.set(key, child);
    }
    return child;
  }
}
