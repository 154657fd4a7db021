// README's "Coming from llm-d Router / GAIE" table is generated from llm-epp
// itself (src/compat-table.ts): it cannot be stale, every item of llm-d
// Router v0.10's surface is classified, and every "same" header, pod key and
// API group is backed by the source file that handles it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EVIDENCE, compatSections, withCompatTable } from '../src/compat-table.ts';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README compatibility table (llm-d Router v0.10)', () => {
  it('is the generated one (npm run docs:plugins rewrites it)', () => {
    expect(withCompatTable(README)).toBe(README);
  });

  it('classifies every item of llm-d\'s surface: 96 plugins, 43 flags, every config section, gate, header, pod key and metric family', () => {
    const sections = new Map(compatSections().map((s) => [s.title, s.rows]));
    expect(sections.get('Plugins')).toHaveLength(96);
    expect(sections.get('Flags')).toHaveLength(43);
    for (const rows of sections.values()) for (const r of rows) expect(['same', 'differs', 'not yet']).toContain(r.status);
    // What issue 11 asked to carry over is "same".
    const status = (title: string, item: string) => sections.get(title)!.find((r) => r.item.startsWith('`' + item + '`'))?.status;
    for (const p of ['approx-prefix-cache-producer', 'prefix-cache-scorer', 'inflight-load-producer', 'endpoint-notification-source', 'decode-filter', 'utilization-filter', 'header-profile-handler', 'session-id-producer', 'file-discovery', 'openai-parser', 'anthropic-parser', 'vllmhttp-parser', 'data-parallel-profile-handler', 'dcgm-data-source', 'dcgm-extractor', 'endpoint-attribute-filter', 'endpoint-attribute-scorer']) {
      expect(status('Plugins', p), p).toBe('same');
    }
    for (const f of ['--tls-min-version', '--tls-cipher-suites', '--metrics-cert-dir', '--metrics-client-ca-file', '--allow-experimental-plugins', '--enable-grpc-stream-metrics']) expect(status('Flags', f), f).toBe('same');
    for (const h of ['x-llm-d-inference-objective', 'x-llm-d-inference-fairness-id']) expect(status('Headers', h), h).toBe('same');
  });

  it('every header, pod key and API group marked "same" appears in the source file that handles it', () => {
    for (const [name, { file }] of Object.entries(EVIDENCE)) {
      const text = readFileSync(new URL('../' + file, import.meta.url), 'utf8');
      const needle = name.includes(' ') ? name.split(' ')[0].split('/')[0] : name;
      expect(text.includes(needle), `${name} in ${file}`).toBe(true);
    }
  });
});
