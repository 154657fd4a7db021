// The container holds only what the Dockerfile copies: check that this is
// enough for llm-epp to load its whole module graph and start (--version
// imports everything main.ts does).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../', import.meta.url).pathname;

describe('Dockerfile', () => {
  it('copies everything llm-epp needs to start, runs as non-root and exposes the three ports', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const copied = [...finalStage.matchAll(/^COPY (?!--from)(\S+) /gm)].map((m) => m[1]);
    expect(finalStage).toMatch(/^USER 1000:1000$/m);
    // Production dependencies are installed with the same Node major as the runtime.
    expect(dockerfile).toMatch(/^FROM node:24-slim AS deps$/m);
    expect(finalStage).toMatch(/^FROM gcr\.io\/distroless\/nodejs24-debian12:nonroot$/m);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(finalStage).toMatch(/^EXPOSE 9002 9003 9090$/m);
    const dir = mkdtempSync(join(tmpdir(), 'llm-epp-image-'));
    for (const path of copied) cpSync(join(root, path), join(dir, path), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    const entry = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(finalStage)![1]) as string[];
    // distroless puts node at /nodejs/bin/node and has no shell or PATH lookup to rely on.
    expect(entry[0]).toBe('/nodejs/bin/node');
    const out = execFileSync(process.execPath, [...entry.slice(1), '--version'], { cwd: dir, encoding: 'utf8' });
    expect(out).toMatch(/^llm-epp \d+\.\d+\.\d+/);
  });
});
