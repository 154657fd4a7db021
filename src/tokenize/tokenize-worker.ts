// A worker thread of the tokenizer pool (tokenizer-pool.ts): loads the tokenizer once,
// says whether that worked, then encodes each text it is sent (without special tokens;
// the pool adds them) and hands the ids back as a transferred buffer.
import { parentPort, workerData } from 'node:worker_threads';
import { TextTokenizer } from './text-tokenizer.ts';
import { readTokenizerFiles } from './tokenizer-files.ts';

export interface WorkerJob {
  readonly id: number;
  readonly text: string;
}

export type WorkerReply = { readonly id: number; readonly ids: Uint32Array } | { readonly id: number; readonly error: string };

export type WorkerStatus = { readonly ready: true } | { readonly ready: false; readonly error: string };

/** Longest error text passed back. */
const MAX_ERROR_CHARS = 200;

const port = parentPort;
if (port) {
  let tokenizer: TextTokenizer | undefined;
  try {
    tokenizer = await TextTokenizer.load(readTokenizerFiles((workerData as { path: string }).path));
    port.postMessage({ ready: true } satisfies WorkerStatus);
  } catch (err) {
    port.postMessage({ ready: false, error: (err as Error).message } satisfies WorkerStatus);
  }
  const tok = tokenizer;
  if (tok) {
    port.on('message', (job: WorkerJob) => {
      tok.encodeRaw(job.text).then(
        (ids) => port.postMessage({ id: job.id, ids } satisfies WorkerReply, [ids.buffer as ArrayBuffer]),
        (err: Error) => port.postMessage({ id: job.id, error: `tokenization failed: ${String(err.message).slice(0, MAX_ERROR_CHARS)}` } satisfies WorkerReply),
      );
    });
  }
}
