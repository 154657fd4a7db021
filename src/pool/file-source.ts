// --endpoints-file FILE: the pool from a YAML file, reloaded when it changes.
// A bad edit is logged and ignored: the last good pool keeps serving. A file
// that is valid but empties the pool or drops more than --endpoints-file-max-shrink
// of it at once (a truncated write looks like that) is held back until it has
// stayed the same for --endpoints-file-settle; only then is it believed.
import { parse as parseYaml } from 'yaml';
import type { Logger } from '../log.ts';
import { WatchedFile } from '../watched-file.ts';
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
  readonly #file: WatchedFile;
  readonly #store: Datastore;
  readonly #log: Logger;
  readonly #opts: FileSourceOptions;
  #settleTimer: NodeJS.Timeout | undefined;
  /** A shrinking file waiting to prove it is stable. */
  #held: { text: string; since: number } | undefined;

  constructor(file: string, store: Datastore, log: Logger, opts: FileSourceOptions = DEFAULT_FILE_SOURCE_OPTIONS) {
    this.#store = store;
    this.#log = log;
    this.#opts = opts;
    this.#file = new WatchedFile(file, { maxBytes: opts.maxBytes, what: 'endpoints file', watch: opts.watch }, log, (text, initial) => this.#apply(text, initial));
    this.#file.onUnchanged = () => {
      if (this.#held) this.#log.info({ file: this.#file.path }, 'endpoints file is back to the pool being served; nothing held back');
      this.#held = undefined;
    };
  }

  /** A file held back now (for tests and the log). */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /** First load: errors are fatal so a bad file never starts an empty picker. */
  start(): Promise<void> {
    return this.#file.start();
  }

  /** Re-read now (also used by tests). Resolves when the reload is done. */
  reload(): Promise<void> {
    return this.#file.reload();
  }

  stop(): void {
    this.#file.stop();
    if (this.#settleTimer) clearTimeout(this.#settleTimer);
  }

  /** Apply a file's pool; false when a shrinking file is held back. */
  #apply(text: string, initial: boolean): boolean {
    const file = this.#file.path;
    const specs = parseEndpointsYaml(text, file);
    const current = this.#store.list().length;
    if (!initial && this.#shrinksTooFar(current, specs.length)) {
      const now = performance.now();
      if (this.#held?.text !== text) {
        this.#held = { text, since: now };
        this.#log.warn(
          { file, endpoints: current, fileEndpoints: specs.length, settleMs: this.#opts.settleMs },
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
        return false;
      }
      this.#log.warn({ file, endpoints: specs.length }, 'held-back endpoints file stayed unchanged; applying it');
    }
    this.#held = undefined;
    const change = this.#store.replaceAll(specs);
    this.#log.info({ file, endpoints: specs.length, added: change.added.length, removed: change.removed.length }, 'endpoint pool loaded');
    return true;
  }

  #shrinksTooFar(current: number, next: number): boolean {
    if (current === 0 || next >= current) return false;
    return next === 0 || (current - next) / current > this.#opts.maxShrink;
  }
}
