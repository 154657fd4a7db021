// --endpoints-file FILE: the pool from a YAML file, reloaded when it changes.
// A bad edit is logged and ignored: the last good pool keeps serving.
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
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

export class FileSource {
  readonly #file: string;
  readonly #store: Datastore;
  readonly #log: Logger;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastText: string | undefined;
  #loading: Promise<void> = Promise.resolve();

  constructor(file: string, store: Datastore, log: Logger) {
    this.#file = resolve(file);
    this.#store = store;
    this.#log = log;
  }

  /** First load: errors are fatal so a bad file never starts an empty picker. */
  async start(): Promise<void> {
    const text = await readFile(this.#file, 'utf8');
    this.#apply(text);
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
        text = await readFile(this.#file, 'utf8');
      } catch (err) {
        this.#log.error({ err, file: this.#file }, 'cannot read endpoints file; keeping the last good pool');
        return;
      }
      if (text === this.#lastText) return;
      try {
        this.#apply(text);
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
  }

  #schedule(): void {
    // Editors write in several steps; settle before reading.
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.reload(), 50);
  }

  #apply(text: string): void {
    const specs = parseEndpointsYaml(text, this.#file);
    const change = this.#store.replaceAll(specs);
    this.#lastText = text;
    this.#log.info(
      { file: this.#file, endpoints: specs.length, added: change.added.length, removed: change.removed.length },
      'endpoint pool loaded',
    );
  }
}
