// The layering ARCHITECTURE.md describes, checked on the import graph of
// src/ and scorers/ (static `import … from` and `export … from`, type-only
// ones included; dynamic imports are start-up wiring and are left out):
// - src/extproc/ speaks ext_proc: from src/scheduling/ it may import types only;
// - src/scheduling/ never imports request control, the ext_proc stream or the flags;
// - no cycles between folders (a file directly in src/ counts as its own node).
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(new URL('..', import.meta.url).pathname);

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const f of [...files('src'), ...files('scorers')]) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[3];
      if (!spec.startsWith('.')) continue;
      const to = relative(ROOT, resolve(join(ROOT, dirname(f)), spec));
      // `import { type A, type B }` is type-only too.
      const braces = /\{([^}]*)\}/.exec(m[0])?.[1];
      const allTypes = braces !== undefined && braces.split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '));
      out.push({ from: f, to, typeOnly: m[2] !== undefined || allTypes });
    }
  }
  return out;
}

/** The folder a file belongs to for the cycle rule: src/<folder>, scorers, or the file itself when it sits directly in src/. */
function node(file: string): string {
  const parts = file.split('/');
  if (parts[0] === 'scorers') return 'scorers';
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : file;
}

describe('import rules', () => {
  const all = edges();

  it('finds the imports (the parser works)', () => {
    expect(all.length).toBeGreaterThan(100);
    expect(all.some((e) => e.from === 'src/extproc/stream.ts' && e.to === 'src/request-control/director.ts')).toBe(true);
  });

  it('src/extproc/ imports nothing from src/scheduling/ but types', () => {
    const bad = all.filter((e) => e.from.startsWith('src/extproc/') && e.to.startsWith('src/scheduling/') && !e.typeOnly);
    expect(bad.map((e) => `${e.from} → ${e.to}`)).toEqual([]);
  });

  it('src/scheduling/ imports nothing from request control, the ext_proc stream or the flags', () => {
    const bad = all.filter(
      (e) => e.from.startsWith('src/scheduling/') && (e.to.startsWith('src/request-control/') || e.to.startsWith('src/extproc/') || e.to === 'src/flags.ts'),
    );
    expect(bad.map((e) => `${e.from} → ${e.to}`)).toEqual([]);
  });

  it('has no import cycles between folders', () => {
    const graph = new Map<string, Set<string>>();
    for (const e of all) {
      const a = node(e.from);
      const b = node(e.to);
      if (a === b) continue;
      if (!graph.has(a)) graph.set(a, new Set());
      graph.get(a)!.add(b);
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (n: string) => {
      state.set(n, 'open');
      path.push(n);
      for (const m of graph.get(n) ?? []) {
        if (state.get(m) === 'open') cycles.push([...path.slice(path.indexOf(m)), m].join(' → '));
        else if (!state.has(m)) visit(m);
      }
      path.pop();
      state.set(n, 'done');
    };
    for (const n of graph.keys()) if (!state.has(n)) visit(n);
    expect(cycles).toEqual([]);
  });
});
