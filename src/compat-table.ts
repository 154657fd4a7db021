// The README's "Coming from llm-d Router / GAIE" table: every config section,
// feature gate, plugin, flag, header, pod key, CRD group and metric of llm-d
// Router v0.10 (its surface, kept in test/fixtures/llm-d-router-v0.10/ with
// its source commit) against what llm-epp does with it. The status of each
// row is worked out from llm-epp itself — configs are loaded, the plugin
// registry, the flag table and the metrics registry are read — so the table
// cannot drift: `npm run docs:plugins` rewrites it, and a test fails when the
// README's copy differs or an llm-d item is not classified.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRegistry } from './builtin-plugins.ts';
import { FLAGS } from './flags.ts';
import { createLogger } from './log.ts';
import { FlowControlMetrics } from './flowcontrol/metrics.ts';
import { programAwareGauges } from './flowcontrol/policies/program-aware.ts';
import { EppMetrics } from './observability/metrics.ts';
import { Datastore } from './pool/datastore.ts';
import { FEATURE_GATES, loadConfig, parseConfigText } from './scheduling/config.ts';
import { UNSUPPORTED_PLUGINS } from './scheduling/unsupported-plugins.ts';

const FIXTURES = new URL('../test/fixtures/llm-d-router-v0.10/', import.meta.url);

export type Status = 'same' | 'differs' | 'not yet';
export interface Row {
  readonly item: string;
  readonly status: Status;
  readonly note: string;
}
export interface Section {
  readonly title: string;
  readonly rows: readonly Row[];
}

interface Surface {
  configSections: string[];
  featureGates: string[];
  headers: { name: string; role: string }[];
  podKeys: { name: string; kind: string }[];
  crdGroups: string[];
  metricFamilies: { family: string; names: string[] }[];
  deprecatedMetrics: [string, string][];
}

function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8')) as T;
}

/** Load a config; undefined when it loads, else the refusal. */
function probe(yaml: string): string | undefined {
  try {
    loadConfig(parseConfigText(yaml, 'probe'), createRegistry(), { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random, allowExperimental: true }, 'probe');
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^probe: /, '');
  }
}

const HEAD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const BASE = 'plugins:\n- type: queue-scorer\n- type: max-score-picker\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue-scorer\n    weight: 2\n  - pluginRef: max-score-picker\n';

/** BASE with more plugins declared after its picker. */
const withPlugins = (extra: string) => BASE.replace('- type: max-score-picker\n', '- type: max-score-picker\n' + extra);
const SOURCES =
  withPlugins('- type: metrics-data-source\n- type: core-metrics-extractor\n- type: dcgm-data-source\n- type: dcgm-extractor\n') +
  'dataLayer:\n  sources:\n  - pluginRef: metrics-data-source\n    extractors:\n    - pluginRef: core-metrics-extractor\n  - pluginRef: dcgm-data-source\n    extractors:\n    - pluginRef: dcgm-extractor\n';

/** A config using each section: whether it loads decides the row; `same` says what llm-epp does with it (a refusal speaks for itself). */
const CONFIG_PROBES: Record<string, { yaml: string; same?: string }> = {
  featureGates: { yaml: BASE + 'featureGates: [haPopulateNonLeaderDatastore]\n', same: 'flowControl; haPopulateNonLeaderDatastore=false refused (see feature gates)' },
  plugins: { yaml: BASE, same: 'name, type, strict parameters' },
  'plugins[].parameters': { yaml: 'plugins:\n- type: queue-scorer\n- type: prefix-cache-scorer\n  parameters:\n    blockSizeTokens: 16\n- type: max-score-picker\n', same: 'unknown parameters fail, naming plugin and field' },
  schedulingProfiles: { yaml: BASE, same: 'profiles of filters, weighted scorers, picker' },
  'schedulingProfiles[].plugins[].weight': { yaml: BASE, same: 'weights as numbers' },
  'dataLayer.injectDefaults': { yaml: BASE + 'dataLayer:\n  injectDefaults: true\n', same: 'default metrics source and extractor injected' },
  'dataLayer.sources': { yaml: SOURCES, same: 'metrics-data-source, dcgm-data-source, endpoint-notification-source; per-source interval' },
  'dataLayer.sources[].extractors': { yaml: SOURCES, same: 'core-metrics-extractor, dcgm-extractor, endpoint extractors (prefix producers)' },
  'dataLayer.discovery': { yaml: withPlugins('- type: file-discovery\n  parameters:\n    path: /etc/pool/endpoints.yaml\n') + 'dataLayer:\n  discovery:\n    pluginRef: file-discovery\n', same: 'file-discovery' },
  'dataLayer.peerDiscovery': { yaml: BASE + 'dataLayer:\n  peerDiscovery:\n    pluginRef: x\n' },
  'dataLayer.crossReplicaSyncerPluginRef': { yaml: BASE + 'dataLayer:\n  crossReplicaSyncerPluginRef: x\n' },
  'dataLayer.crossReplicaSyncInterval': { yaml: BASE + 'dataLayer:\n  crossReplicaSyncInterval: 1s\n' },
  flowControl: { yaml: BASE + 'featureGates: [flowControl]\nflowControl:\n  maxRequests: 10\n', same: 'with the flowControl gate: bands, TTLs, limits, policies and in-flight eviction (src/flowcontrol/README.md says where llm-epp differs)' },
  'requestHandler.parsers': { yaml: BASE + 'requestHandler:\n  parsers:\n  - pluginRef: openai-parser\n', same: 'openai, anthropic, vllmhttp, passthrough parsers (classify requests)' },
  saturationDetector: { yaml: withPlugins('- type: utilization-detector\n') + 'saturationDetector:\n  pluginRef: utilization-detector\n', same: 'utilization-detector, concurrency-detector' },
  parser: { yaml: BASE + 'parser:\n  pluginRef: openai-parser\n', same: 'deprecated in llm-d; accepted with a warning' },
};

function configRows(s: Surface): Row[] {
  return s.configSections.map((item) => {
    const p = CONFIG_PROBES[item];
    if (!p) throw new Error(`config section ${item} of llm-d Router has no probe in src/compat-table.ts`);
    const refusal = probe(HEAD + p.yaml);
    return refusal === undefined ? { item: `\`${item}\``, status: 'same', note: p.same ?? '' } : { item: `\`${item}\``, status: 'not yet', note: `refused: ${refusal}` };
  });
}

function gateRows(s: Surface): Row[] {
  return s.featureGates.map((g) => {
    const gate = FEATURE_GATES[g];
    if (!gate) throw new Error(`feature gate ${g} of llm-d Router is not in FEATURE_GATES`);
    const on = probe(HEAD + BASE + `featureGates: [${g}]\n`);
    const off = probe(HEAD + BASE + `featureGates: [${g}=false]\n`);
    if (on === undefined && off === undefined) return { item: `\`${g}\``, status: 'same', note: `default ${gate.default}` };
    // Refusing to turn a gate on is a missing feature; refusing to turn one off, a difference.
    return { item: `\`${g}\``, status: on !== undefined ? 'not yet' : 'differs', note: `default ${gate.default}; ${on !== undefined ? `\`${g}\` (on) refused` : `\`${g}=false\` refused`}: ${gate.refuse?.why ?? on ?? off}` };
  });
}

/** Registered plugins whose behaviour differs from llm-d Router's, and how. */
const PLUGIN_DIFFERENCES: Record<string, string> = {
  'probabilistic-admitter': 'a shed request gets 429 with x-llm-d-request-dropped-reason: rejected-saturated; llm-d wraps an admission plugin\'s refusal as 500',
};

function pluginRows(): Row[] {
  const inventory = fixture<{ plugins: { type: string; stability: string; deprecated: boolean }[] }>('plugins.json').plugins;
  const defs = createRegistry().definitions();
  return inventory.map(({ type, stability, deprecated }) => {
    const tag = `\`${type}\`${stability === 'alpha' ? ' (alpha)' : ''}${deprecated ? ' (deprecated in llm-d)' : ''}`;
    const def = defs.find((d) => d.type === type || d.aliases?.includes(type) || d.deprecatedAliases?.includes(type));
    if (def) {
      const as = def.type === type ? '' : `as \`${def.type}\``;
      const differs = PLUGIN_DIFFERENCES[type];
      return { item: tag, status: differs ? 'differs' : 'same', note: [as, def.deprecated ? 'deprecated: warned at load' : '', differs ?? ''].filter(Boolean).join('; ') };
    }
    const u = UNSUPPORTED_PLUGINS.get(type);
    if (u) return { item: tag, status: 'not yet', note: `refused: ${u.why}` };
    throw new Error(`llm-d Router plugin ${type} is neither registered in llm-epp nor listed in src/scheduling/unsupported-plugins.ts`);
  });
}

function flagRows(): Row[] {
  const names = readFileSync(new URL('flags.txt', FIXTURES), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  return names.map((name) => {
    // -v is parsed ahead of the table (a Go-style verbosity), not a FLAGS entry.
    if (name === 'v') return { item: '`-v`', status: 'same', note: 'verbosity: 4 is debug, 5 trace, as in the GAIE EPP' };
    const f = FLAGS.find((x) => x.name === name);
    if (!f) throw new Error(`llm-d Router flag --${name} is not in llm-epp's FLAGS`);
    // Refused as llm-d Router refuses it (removed there), or a Go-only facility with a Node.js equivalent named.
    if (f.refused) return { item: `\`--${name}\``, status: f.help.startsWith('Removed in llm-d Router') ? 'same' : 'differs', note: f.help };
    if (f.group === 'llmd' || name === 'tracing') return { item: `\`--${name}\``, status: 'differs', note: f.help };
    return { item: `\`--${name}\``, status: 'same', note: '' };
  });
}

/** Headers, pod keys and CRD groups llm-epp handles, each backed by the source file that names it (checked by the test). */
export const EVIDENCE: Record<string, { file: string; note?: string }> = {
  'x-gateway-destination-endpoint': { file: 'src/extproc/messages.ts' },
  'x-gateway-destination-endpoint-subset': { file: 'src/extproc/messages.ts' },
  'x-gateway-destination-endpoint-served': { file: 'src/extproc/messages.ts' },
  'x-gateway-destination-endpoint-scores': { file: 'src/extproc/messages.ts', note: 'with --emit-endpoint-scores' },
  'x-gateway-inference-objective': { file: 'src/request-control/policy.ts' },
  'x-llm-d-inference-objective': { file: 'src/request-control/policy.ts' },
  'x-gateway-inference-fairness-id': { file: 'src/request-control/policy.ts' },
  'x-llm-d-inference-fairness-id': { file: 'src/request-control/policy.ts' },
  'x-gateway-model-name-rewrite': { file: 'src/request-control/policy.ts', note: 'only with --allow-client-model-rewrite' },
  'x-llm-d-model-name-rewrite': { file: 'src/request-control/policy.ts', note: 'only with --allow-client-model-rewrite' },
  'x-request-id': { file: 'src/extproc/stream.ts' },
  'x-llm-d-request-dropped-reason': { file: 'src/errors.ts', note: 'flow control\'s outcomes, no endpoints, in-flight eviction and the probabilistic-admitter' },
  'x-llm-d-slo-ttft-ms': { file: 'src/flowcontrol/policies/slo-deadline.ts', note: 'slo-deadline-ordering-policy; predicted-latency routing is not implemented' },
  'x-session-token': { file: 'src/scheduling/session/affinity.ts' },
  'x-session-id': { file: 'src/scheduling/session/affinity.ts' },
  'x-data-parallel-host-port': { file: 'src/scheduling/profile-handlers/data-parallel.ts' },
  'llm-d.ai/engine-type': { file: 'src/metrics/engines.ts' },
  'inference.networking.k8s.io/engine-type': { file: 'src/metrics/engines.ts' },
  'llm-d.ai/active-ports': { file: 'src/pool/k8s-source.ts' },
  'inference.networking.k8s.io/active-ports': { file: 'src/pool/k8s-source.ts' },
  'llm-d.ai/role': { file: 'src/scheduling/filters/role.ts' },
  'llm-d.ai/v1alpha2 InferenceObjective': { file: 'src/request-control/k8s-policy-source.ts', note: 'preferred when installed' },
  'llm-d.ai/v1alpha2 InferenceModelRewrite': { file: 'src/request-control/k8s-policy-source.ts', note: 'preferred when installed' },
  'inference.networking.x-k8s.io/v1alpha2 InferenceObjective': { file: 'src/request-control/k8s-policy-source.ts', note: 'when only it is installed' },
  'inference.networking.x-k8s.io/v1alpha2 InferenceModelRewrite': { file: 'src/request-control/k8s-policy-source.ts', note: 'when only it is installed' },
  'inference.networking.k8s.io/v1 InferencePool': { file: 'src/pool/k8s-source.ts' },
};

const MISSING_FEATURE: Record<string, string> = {
  'x-prefiller-host-port': 'P/D disaggregation is not implemented yet',
  'x-encoder-hosts-ports': 'encode disaggregation is not implemented yet',
  'x-kv-cache-source-host-port': 'KV-cache transfer routing is not implemented',
  'x-llm-d-slo-tpot-ms': 'predicted-latency routing is not implemented',
  'x-gateway-inference-request-cost': 'llm-epp\'s usage-limit policies gate by pool saturation only; a request\'s cost is not read',
  'x-llm-d-video-fps': 'multimodal routing hints are not implemented',
  'x-claude-code-session-id': 'agent-identity (fairness ids from agent session headers) is not implemented; set x-llm-d-inference-fairness-id at the gateway',
};

function evidenceRows(items: { name: string; note?: string }[]): Row[] {
  return items.map(({ name, note }) => {
    const e = EVIDENCE[name];
    if (e) return { item: `\`${name}\``, status: 'same', note: [note, e.note].filter(Boolean).join('; ') };
    const why = MISSING_FEATURE[name];
    if (why) return { item: `\`${name}\``, status: 'not yet', note: why };
    throw new Error(`${name} (llm-d Router) is classified neither in EVIDENCE nor in MISSING_FEATURE of src/compat-table.ts`);
  });
}

const FAMILY_GAPS: Record<string, string> = {
  disaggregation: 'P/D disaggregation is not implemented yet',
  'predicted latency and SLO': 'predicted-latency routing is not implemented',
  'multimodal encoder cache': 'multimodal encoder-cache routing is not implemented',
  'KV-cache index and events (precise prefix)': 'precise prefix-cache routing is not implemented yet',
  'plugin data scope': 'llm-epp plugins read request data through declared StateKeys, checked at config load; there is no run-time scope to violate',
};

/** When a family llm-epp emits is there. */
const FAMILY_NOTES: Record<string, string> = {
  'ext_proc streams': 'with --enable-grpc-stream-metrics',
  'in-flight load': 'with an inflight-load-producer in the config',
  'flow control': 'with the flowControl feature gate',
  'program-aware fairness': 'with a program-aware-fairness policy',
};

function metricRows(s: Surface): Row[] {
  const m = new EppMetrics(new Datastore(), { poolName: 'p', stalenessThresholdMs: 1000, version: 'v', processMetrics: false, streamMetrics: true });
  // Registered when flow control starts, and by a program-aware-fairness plugin.
  new FlowControlMetrics(m.registry, { poolName: 'p' });
  programAwareGauges(m.registry);
  const registered = new Set(m.registry.getMetricsAsArray().map((x) => x.name));
  const rows: Row[] = [];
  for (const { family, names } of s.metricFamilies) {
    const have = names.filter((n) => registered.has(`llm_d_epp_${n}`));
    const item = `${family}: ${names.map((n) => '`' + n + '`').join(', ')}`;
    if (have.length === names.length) rows.push({ item, status: 'same', note: FAMILY_NOTES[family] ?? '' });
    else if (have.length === 0) {
      const why = FAMILY_GAPS[family];
      if (!why) throw new Error(`metric family "${family}" is not emitted by llm-epp and has no reason in FAMILY_GAPS`);
      rows.push({ item, status: 'not yet', note: why });
    } else throw new Error(`metric family "${family}": llm-epp emits ${have.join(', ')} but not the rest`);
  }
  const twins = s.deprecatedMetrics.filter(([old]) => registered.has(old)).map(([old]) => old);
  const absent = s.deprecatedMetrics.filter(([old]) => !registered.has(old));
  rows.push({ item: `deprecated twins (${twins.length}): ${twins.map((n) => '`' + n + '`').join(', ')}`, status: 'same', note: 'served with their llm_d_epp_ twin, as llm-d does (derived from it at scrape time)' });
  for (const [old, now] of absent) {
    const fam = s.metricFamilies.find((f) => f.names.includes(now));
    if (!fam || !FAMILY_GAPS[fam.family]) throw new Error(`deprecated metric ${old} is not emitted and its family has no reason`);
  }
  if (absent.length) rows.push({ item: `deprecated twins of the families above that llm-epp lacks: ${absent.map(([o]) => '`' + o + '`').join(', ')}`, status: 'not yet', note: 'with their features' });
  return rows;
}

export function compatSections(): Section[] {
  const s = fixture<Surface>('surface.json');
  return [
    { title: 'EndpointPickerConfig sections', rows: configRows(s) },
    { title: 'Feature gates', rows: gateRows(s) },
    { title: 'Plugins', rows: pluginRows() },
    { title: 'Flags', rows: flagRows() },
    { title: 'Headers', rows: evidenceRows(s.headers.map((h) => ({ name: h.name, note: h.role }))) },
    { title: 'Pod labels and annotations, API groups', rows: evidenceRows([...s.podKeys.map((k) => ({ name: k.name, note: k.kind })), ...s.crdGroups.map((g) => ({ name: g }))]) },
    { title: 'Metrics (llm_d_epp_ families)', rows: metricRows(s) },
  ];
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function compatTable(): string {
  const sections = compatSections();
  const count = (rows: readonly Row[], st: Status) => rows.filter((r) => r.status === st).length;
  const all = sections.flatMap((s) => s.rows);
  const out = [
    'Every item of llm-d Router v0.10\'s surface and what llm-epp does with it: **same** (accepted and honoured under the same name), **differs** (accepted; the note says how llm-epp\'s behaviour differs), **not yet** (refused with one line naming the item, or not emitted, until the feature lands). Generated from llm-epp itself by `npm run docs:plugins` (`src/compat-table.ts`); a test fails when this copy is stale.',
    '',
    '| Section | same | differs | not yet |',
    '|---|---:|---:|---:|',
    ...sections.map((s) => `| ${s.title} | ${count(s.rows, 'same')} | ${count(s.rows, 'differs')} | ${count(s.rows, 'not yet')} |`),
    `| **All** | **${count(all, 'same')}** | **${count(all, 'differs')}** | **${count(all, 'not yet')}** |`,
    '',
  ];
  for (const s of sections) {
    out.push('<details>', `<summary>${s.title}</summary>`, '', '| llm-d Router v0.10 | llm-epp | Note |', '|---|---|---|');
    for (const r of s.rows) out.push(`| ${cell(r.item)} | ${r.status} | ${cell(r.note)} |`);
    out.push('', '</details>', '');
  }
  return out.join('\n');
}

const START = '<!-- compat:start -->\n';
const END = '<!-- compat:end -->';

/** README.md with its compatibility section replaced by the current table. */
export function withCompatTable(readme: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START.trim()} … ${END} section`);
  return readme.slice(0, start + START.length) + compatTable() + readme.slice(end);
}

if (import.meta.main) {
  const url = new URL('../README.md', import.meta.url);
  if (process.argv.includes('--write')) writeFileSync(url, withCompatTable(readFileSync(url, 'utf8')));
  else process.stdout.write(compatTable());
}
