// Reads a config-like file with a size cap checked before the bytes are read:
// a 100 MB YAML by mistake (or on purpose) is refused in microseconds instead
// of being parsed for a minute at gigabytes of heap.
import { open } from 'node:fs/promises';

export async function readBoundedFile(path: string, maxBytes: number): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > maxBytes) throw new Error(`file is ${size} bytes, larger than --max-config-bytes (${maxBytes})`);
    // Read at most one byte past the cap: a file that grew since stat is caught too.
    const buf = Buffer.alloc(Math.min(maxBytes + 1, Math.max(size, 1) + 65_536));
    let length = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw new Error(`file is larger than --max-config-bytes (${maxBytes})`);
      if (length === buf.length) break;
    }
    return buf.toString('utf8', 0, length);
  } finally {
    await fh.close();
  }
}
