// Markdown reference of every registered plugin, from the definitions
// themselves (README's plugin section is generated with `npm run docs:plugins`).
import { createRegistry } from './builtin-plugins.ts';
import type { ParamSpec } from './scheduling/params.ts';

function fmtDefault(spec: ParamSpec): string {
  const d = (spec as { default?: unknown }).default;
  if (d === undefined) return '–';
  return '`' + (Array.isArray(d) ? JSON.stringify(d) : String(d)) + '`';
}

export function pluginDocs(): string {
  const out: string[] = [];
  for (const def of createRegistry().definitions().sort((a, b) => a.type.localeCompare(b.type))) {
    const aliases = def.aliases?.length ? ` (also accepted as ${def.aliases.map((a) => '`' + a + '`').join(', ')})` : '';
    out.push(`#### \`${def.type}\`${aliases}`, '', def.description, '');
    const params = Object.entries(def.params);
    if (params.length === 0) out.push('No parameters.', '');
    else {
      out.push('| Parameter | Type | Default | Meaning |', '|---|---|---|---|');
      for (const [name, spec] of params) out.push(`| \`${name}\` | ${spec.type} | ${fmtDefault(spec)} | ${spec.doc} |`);
      out.push('');
    }
  }
  return out.join('\n');
}

if (import.meta.main) process.stdout.write(pluginDocs());
