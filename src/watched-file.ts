// A YAML (or any text) file llm-epp reads at start-up and again whenever it
// changes: --endpoints-file and --objectives-file. The first read is the
// caller's to fail on; later reads are serialised, settle 50 ms after the last
// change (editors write in several steps), skip a file whose text did not
// change, and log a failure while the last good content keeps serving. The
// directory is watched, not the file: editors and Kubernetes ConfigMap
// updates replace the file (rename, symlink swap), which a watch on the file
// itself misses.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { readBoundedFile } from './bounded-file.ts';
import type { Logger } from './log.ts';

export interface WatchedFileOptions {
  /** Largest file read. */
  maxBytes: number;
  /** What the file is, for log lines ("endpoints file"). */
  what: string;
  /** Reload when the file changes (default true). */
  watch?: boolean;
}

export class WatchedFile {
  readonly path: string;
  readonly #opts: WatchedFileOptions;
  readonly #log: Logger;
  /**
   * Applies a text; throws when it is invalid (the last good one keeps
   * serving); returns false when it holds the text back (not taken yet).
   */
  readonly #apply: (text: string, initial: boolean) => boolean | void;
  /** A reload found the text the last apply took. */
  onUnchanged: (() => void) | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastText: string | undefined;
  #loading: Promise<void> = Promise.resolve();

  constructor(path: string, opts: WatchedFileOptions, log: Logger, apply: (text: string, initial: boolean) => boolean | void) {
    this.path = resolve(path);
    this.#opts = opts;
    this.#log = log;
    this.#apply = apply;
  }

  /** Read and apply the file once (errors reach the caller), then watch it. */
  async start(): Promise<void> {
    const text = await readBoundedFile(this.path, this.#opts.maxBytes);
    if (this.#apply(text, true) !== false) this.#lastText = text;
    if (this.#opts.watch === false) return;
    const name = basename(this.path);
    this.#watcher = watch(dirname(this.path), (_event, changed) => {
      if (changed === null || changed === name || changed.startsWith('..')) this.#schedule();
    });
    this.#watcher.on('error', (err) => this.#log.warn({ err, file: this.path }, `${this.#opts.what} watch error`));
  }

  /** Re-read now. Resolves when the reload is done; never rejects. */
  reload(): Promise<void> {
    this.#loading = this.#loading.then(async () => {
      let text: string;
      try {
        text = await readBoundedFile(this.path, this.#opts.maxBytes);
      } catch (err) {
        this.#log.error({ err: (err as Error).message, file: this.path }, `cannot read ${this.#opts.what}; keeping the last good one`);
        return;
      }
      if (text === this.#lastText) {
        this.onUnchanged?.();
        return;
      }
      try {
        if (this.#apply(text, false) !== false) this.#lastText = text;
      } catch (err) {
        this.#log.error({ err: (err as Error).message, file: this.path }, `invalid ${this.#opts.what}; keeping the last good one`);
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
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.reload(), 50);
  }
}
