// Markdown reference of every registered plugin, from the definitions
// themselves (README's plugin section is regenerated with `npm run docs:plugins`).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRegistry } from './builtin-plugins.ts';
import { withCompatTable } from './compat-table.ts';
import type { ParamSpec } from './scheduling/params.ts';

function fmtDefault(spec: ParamSpec): string {
  const d = (spec as { default?: unknown }).default;
  if (d === undefined) return '–';
  return '`' + (Array.isArray(d) ? JSON.stringify(d) : String(d)) + '`';
}

const START = '<!-- plugins:start -->\n';
const END = '<!-- plugins:end -->';

export function pluginDocs(): string {
  const out: string[] = [];
  for (const def of createRegistry().definitions().sort((a, b) => a.type.localeCompare(b.type))) {
    const aliases = def.aliases?.length ? ` (also accepted as ${def.aliases.map((a) => '`' + a + '`').join(', ')})` : '';
    out.push(`#### \`${def.type}\`${aliases}`, '', def.description, '');
    const notes: string[] = [];
    if (def.stability === 'alpha') notes.push('*Alpha:* in an `llm-d.ai/v1alpha1` config it needs `--allow-experimental-plugins`.');
    if (def.deprecated !== undefined) notes.push(`*Deprecated:* ${def.deprecated}`);
    if (def.deprecatedAliases?.length) notes.push(`*Deprecated names:* ${def.deprecatedAliases.map((a) => '`' + a + '`').join(', ')} (warned at load).`);
    if (notes.length) out.push(notes.join(' '), '');
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

/** Replace the README's generated sections (plugin reference, llm-d compatibility table) with current ones. */
function writeReadme(): void {
  const url = new URL('../README.md', import.meta.url);
  const readme = withCompatTable(readFileSync(url, 'utf8'));
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START} … ${END} section`);
  writeFileSync(url, readme.slice(0, start + START.length) + pluginDocs() + readme.slice(end));
}

if (import.meta.main) {
  if (process.argv.includes('--write')) writeReadme();
  else process.stdout.write(pluginDocs());
}
