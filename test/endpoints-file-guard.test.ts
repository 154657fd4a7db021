// --endpoints-file reloads that would empty or sharply shrink the pool are
// held back until the file has stayed the same for the settle time: a file
// caught half-written, or emptied by mistake, never takes the pool away.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { FileSource } from '../src/pool/file-source.ts';

const yaml = (n: number) => 'endpoints:\n' + Array.from({ length: n }, (_, i) => `  - address: 10.0.0.${i + 1}\n    port: 8000\n`).join('');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let sources: FileSource[] = [];
afterEach(() => {
  for (const s of sources) s.stop();
  sources = [];
});

async function start(initial: string, opts: { maxShrink?: number; settleMs?: number; maxBytes?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'llm-epp-guard-'));
  const file = join(dir, 'endpoints.yaml');
  writeFileSync(file, initial);
  const store = new Datastore();
  const src = new FileSource(file, store, createLogger('silent'), { maxShrink: opts.maxShrink ?? 0.5, settleMs: opts.settleMs ?? 200, maxBytes: opts.maxBytes ?? 1 << 20 });
  sources.push(src);
  await src.start();
  const write = async (text: string) => {
    writeFileSync(file, text);
    await src.reload();
  };
  return { store, src, write };
}

describe('endpoints file guard', () => {
  it('holds an empty file back, then applies it once it has stayed empty for the settle time', async () => {
    const { store, src, write } = await start(yaml(3));
    await write('');
    expect(store.list().length).toBe(3);
    expect(src.holding).toBe(true);
    await sleep(300); // the source looks again by itself after the settle time
    expect(store.list().length).toBe(0);
    expect(src.holding).toBe(false);
  });

  it('holds a truncated file (3 → 1) back, and forgets it when the full file comes back', async () => {
    const { store, src, write } = await start(yaml(3));
    await write(yaml(3).split('\n').slice(0, 3).join('\n') + '\n');
    expect(store.list().length).toBe(3);
    expect(src.holding).toBe(true);
    await write(yaml(3));
    expect(src.holding).toBe(false);
    await sleep(300);
    expect(store.list().length).toBe(3);
  });

  it('a file that keeps changing while it shrinks waits until it settles', async () => {
    const { store, write } = await start(yaml(4));
    await write(yaml(1));
    await sleep(120);
    await write(yaml(0) + '# still editing\n');
    await sleep(120);
    expect(store.list().length).toBe(4); // 240 ms since the first shrink, but only 120 since the last change
    await sleep(200);
    expect(store.list().length).toBe(0);
  });

  it('applies small shrinks, growth and --endpoints-file-max-shrink=1 (only an empty file is held) at once', async () => {
    const a = await start(yaml(3));
    await a.write(yaml(2));
    expect(a.store.list().length).toBe(2);
    await a.write(yaml(5));
    expect(a.store.list().length).toBe(5);
    const b = await start(yaml(10), { maxShrink: 1 });
    await b.write(yaml(1));
    expect(b.store.list().length).toBe(1);
    await b.write('endpoints: []\n');
    expect(b.store.list().length).toBe(1);
  });

  it('rejects a file over --max-config-bytes before parsing it: at start-up an error, on reload the pool stays', async () => {
    await expect(start(yaml(3) + '#'.repeat(2048), { maxBytes: 1024 })).rejects.toThrow(/larger than --max-config-bytes/);
    const { store, write } = await start(yaml(3), { maxBytes: 1024 });
    await write(yaml(4) + '#'.repeat(2048));
    expect(store.list().length).toBe(3);
  });
});
