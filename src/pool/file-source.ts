// --endpoints-file FILE: the pool from a YAML file, reloaded when it changes.
// A bad edit is logged and ignored: the last good pool keeps serving. A file
// that is valid but empties the pool or drops more than --endpoints-file-max-shrink
// of it at once (a truncated write looks like that) is held back until it has
// stayed the same for --endpoints-file-settle; only then is it believed.
import { watch, type FSWatcher } from 'node:fs';
import { readBoundedFile } from '../bounded-file.ts';
import { basename, dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Logger } from '../log.ts';
import type { Datastore } from './datastore.ts';
import { checkAddress, checkPort, type EndpointSpec } from './endpoint.ts';

const FIELDS = new Set(['address', 'port', 'name', 'namespace', 'labels']);

/**
 * Accepts `endpoints: [...]` or a bare list. Each entry:
 * `{address: 10.0.0.1, port: 8000, name?: vllm-0, namespace?: ns, labels?: {k: v}}`.
 */
export function parseEndpointsYaml(text: string, file = 'endpoints file'): EndpointSpec[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`${file}: invalid YAML: ${(e as Error).message}`);
  }
  if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
    const keys = Object.keys(doc);
    const unknown = keys.filter((k) => k !== 'endpoints');
    if (unknown.length) throw new Error(`${file}: unknown top-level field "${unknown[0]}" (expected "endpoints")`);
    doc = (doc as { endpoints?: unknown }).endpoints;
  }
  if (doc === null || doc === undefined) return [];
  if (!Array.isArray(doc)) throw new Error(`${file}: "endpoints" must be a list`);
  return doc.map((entry, i) => {
    const where = `${file}: endpoints[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new Error(`${where}: must be a mapping`);
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) if (!FIELDS.has(k)) throw new Error(`${where}: unknown field "${k}"`);
    if (typeof e.address !== 'string') throw new Error(`${where}: "address" must be a string IP address`);
    const spec: EndpointSpec = { address: checkAddress(e.address, where), port: checkPort(e.port, where) };
    if (e.name !== undefined) {
      if (typeof e.name !== 'string' || e.name === '') throw new Error(`${where}: "name" must be a non-empty string`);
      spec.name = e.name;
    }
    if (e.namespace !== undefined) {
      if (typeof e.namespace !== 'string' || e.namespace === '') throw new Error(`${where}: "namespace" must be a non-empty string`);
      spec.namespace = e.namespace;
    }
    if (e.labels !== undefined && e.labels !== null) {
      if (typeof e.labels !== 'object' || Array.isArray(e.labels)) throw new Error(`${where}: "labels" must be a mapping`);
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(e.labels as Record<string, unknown>)) {
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
          throw new Error(`${where}: label "${k}" must be a scalar`);
        }
        labels[k] = String(v);
      }
      spec.labels = labels;
    }
    return spec;
  });
}

export interface FileSourceOptions {
  /** Largest file read (--max-config-bytes). */
  maxBytes: number;
  /** Fraction of the pool a reload may remove at once without being held back. */
  maxShrink: number;
  /** How long a held-back file must stay unchanged before it is applied. */
  settleMs: number;
  /** Reload when the file changes (default true; file-discovery's watchFile). */
  watch?: boolean;
}

export const DEFAULT_FILE_SOURCE_OPTIONS: FileSourceOptions = { maxBytes: 4 << 20, maxShrink: 0.5, settleMs: 10_000 };

export class FileSource {
  readonly #file: string;
  readonly #store: Datastore;
  readonly #log: Logger;
  readonly #opts: FileSourceOptions;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #lastText: string | undefined;
  /** A shrinking file waiting to prove it is stable. */
  #held: { text: string; since: number } | undefined;
  #loading: Promise<void> = Promise.resolve();

  constructor(file: string, store: Datastore, log: Logger, opts: FileSourceOptions = DEFAULT_FILE_SOURCE_OPTIONS) {
    this.#file = resolve(file);
    this.#store = store;
    this.#log = log;
    this.#opts = opts;
  }

  /** A file held back now (for tests and the log). */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /** First load: errors are fatal so a bad file never starts an empty picker. */
  async start(): Promise<void> {
    const text = await readBoundedFile(this.#file, this.#opts.maxBytes);
    this.#apply(text, true);
    if (this.#opts.watch === false) return;
    // Watch the directory: editors and Kubernetes ConfigMap updates replace the
    // file (rename / symlink swap), which a watch on the file itself misses.
    const name = basename(this.#file);
    this.#watcher = watch(dirname(this.#file), (_event, changed) => {
      if (changed === null || changed === name || changed.startsWith('..')) this.#schedule();
    });
    this.#watcher.on('error', (err) => this.#log.warn({ err, file: this.#file }, 'endpoints file watch error'));
  }

  /** Re-read now (also used by tests). Resolves when the reload is done. */
  reload(): Promise<void> {
    this.#loading = this.#loading.then(async () => {
      let text: string;
      try {
        text = await readBoundedFile(this.#file, this.#opts.maxBytes);
      } catch (err) {
        this.#log.error({ err: (err as Error).message, file: this.#file }, 'cannot read endpoints file; keeping the last good pool');
        return;
      }
      if (text === this.#lastText) {
        if (this.#held) this.#log.info({ file: this.#file }, 'endpoints file is back to the pool being served; nothing held back');
        this.#held = undefined;
        return;
      }
      try {
        this.#apply(text, false);
      } catch (err) {
        this.#log.error({ err: (err as Error).message, file: this.#file }, 'invalid endpoints file; keeping the last good pool');
      }
    });
    return this.#loading;
  }

  stop(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#settleTimer) clearTimeout(this.#settleTimer);
  }

  #schedule(): void {
    // Editors write in several steps; settle before reading.
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.reload(), 50);
  }

  #apply(text: string, initial: boolean): void {
    const specs = parseEndpointsYaml(text, this.#file);
    const current = this.#store.list().length;
    if (!initial && this.#shrinksTooFar(current, specs.length)) {
      const now = performance.now();
      if (this.#held?.text !== text) {
        this.#held = { text, since: now };
        this.#log.warn(
          { file: this.#file, endpoints: current, fileEndpoints: specs.length, settleMs: this.#opts.settleMs },
          specs.length === 0
            ? 'endpoints file is empty; holding it back until it stays unchanged (the pool keeps serving)'
            : 'endpoints file drops too many endpoints at once; holding it back until it stays unchanged (the pool keeps serving)',
        );
      }
      const waited = now - this.#held.since;
      if (waited < this.#opts.settleMs) {
        // Look again once it could have settled.
        if (this.#settleTimer) clearTimeout(this.#settleTimer);
        this.#settleTimer = setTimeout(() => void this.reload(), this.#opts.settleMs - waited + 1);
        return;
      }
      this.#log.warn({ file: this.#file, endpoints: specs.length }, 'held-back endpoints file stayed unchanged; applying it');
    }
    this.#held = undefined;
    const change = this.#store.replaceAll(specs);
    this.#lastText = text;
    this.#log.info(
      { file: this.#file, endpoints: specs.length, added: change.added.length, removed: change.removed.length },
      'endpoint pool loaded',
    );
  }

  #shrinksTooFar(current: number, next: number): boolean {
    if (current === 0 || next >= current) return false;
    return next === 0 || (current - next) / current > this.#opts.maxShrink;
  }
}
