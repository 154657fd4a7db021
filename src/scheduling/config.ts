// EndpointPickerConfig loading, validation and defaulting, following the GAIE /
// llm-d loader so that their configs run unchanged. Everything is checked at
// start-up; any error names the plugin or profile and the field, and nothing
// half-configured is ever returned.
import { parse as parseYaml } from 'yaml';
import type { EngineResolver } from '../metrics/engines.ts';
import { isCoreMetricsExtractor, type CoreMetricsExtractor } from './data-layer/core-metrics-extractor.ts';
import { isMetricsDataSource, type MetricsDataSource } from './data-layer/metrics-data-source.ts';
import { isDataProducer, isFilter, isPicker, isProfileHandler, isSaturationDetector, isScorer, type StateKey, type Plugin, type PluginContext, type SaturationDetector, type SchedulerProfile, type WeightedScorer, type Filter, type Picker } from './framework.ts';
import { ConfigError } from './params.ts';
import type { PipelineConfig } from './pipeline.ts';
import type { PluginRegistry } from './registry.ts';

export const API_VERSIONS = ['inference.networking.x-k8s.io/v1alpha1', 'llm-d.ai/v1alpha1'] as const;

/** GAIE's built-in default: queue 2, KV-cache 2, prefix 3, max-score picker, single profile. */
export const DEFAULT_CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: max-score-picker
`;

const TOP_LEVEL = new Set(['apiVersion', 'kind', 'plugins', 'schedulingProfiles', 'featureGates', 'saturationDetector', 'data', 'dataLayer', 'flowControl', 'parser']);
// Gates whose behaviour llm-epp always has (data layer) or that only change
// legacy metric plumbing: accepted as no-ops.
const ACCEPTED_GATES = new Set(['dataLayer', 'enableLegacyMetrics']);
const UNSUPPORTED_SECTIONS: Record<string, string> = {
  flowControl: 'flow control (queuing by priority band and fairness) is not implemented in llm-epp; without it, sheddable requests (priority < 0) are rejected with 429 when the saturationDetector reports saturation, as in GAIE',
};

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function strictKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new ConfigError(`${where}: unknown field "${k}" (allowed: ${allowed.join(', ')})`);
  }
}

/** Parse the YAML text of an EndpointPickerConfig. */
export function parseConfigText(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    throw new ConfigError(`${source}: invalid YAML: ${(e as Error).message}`);
  }
  if (!isMap(doc)) throw new ConfigError(`${source}: the config must be a YAML mapping (an EndpointPickerConfig)`);
  return doc;
}

/** What the data-layer section or plugins set for the metrics collector; undefined fields: the flags apply. */
export interface DataLayerSettings {
  readonly scheme?: 'http' | 'https';
  readonly path?: string;
  readonly insecureSkipVerify?: boolean;
  /** Engine mapping per pod; undefined: the built-in engines and labels. */
  readonly engines?: EngineResolver;
}

export interface LoadedConfig extends PipelineConfig {
  readonly featureGates: readonly string[];
  readonly apiVersion: string;
  /** The configured saturationDetector, else a default utilization-detector (GAIE). */
  readonly saturationDetector: SaturationDetector;
  readonly dataLayer: DataLayerSettings;
}

/**
 * A `{pluginRef, …extra}` mapping → the plugin it names, which `ok` must accept:
 * the one check behind profile entries, sections and data-layer sources.
 */
function refTo(raw: unknown, where: string, plugins: ReadonlyMap<string, Plugin>, extra: readonly string[] = [], ok?: (p: Plugin) => boolean, want = ''): Plugin {
  if (!isMap(raw)) throw new ConfigError(`${where}: must be a mapping with "pluginRef"`);
  strictKeys(raw, ['pluginRef', ...extra], where);
  if (typeof raw.pluginRef !== 'string') throw new ConfigError(`${where}: "pluginRef" is required`);
  const p = plugins.get(raw.pluginRef);
  if (!p) throw new ConfigError(`${where}: pluginRef "${raw.pluginRef}" names no plugin (declared: ${[...plugins.keys()].join(', ') || 'none'})`);
  if (ok && !ok(p)) throw new ConfigError(`${where}: "${raw.pluginRef}" (${p.type}) is not ${want}`);
  return p;
}

/** `section: {pluginRef}` → the plugin, or undefined when the section is absent. */
function sectionRef(doc: Record<string, unknown>, key: string, plugins: ReadonlyMap<string, Plugin>, source: string, ok: (p: Plugin) => boolean, want: string): Plugin | undefined {
  const v = doc[key];
  return v === undefined || v === null ? undefined : refTo(v, `${source}: ${key}`, plugins, [], ok, want);
}

/** The data-layer section (`data` or `dataLayer`): {sources: [{pluginRef, extractors: [{pluginRef}]}]}. */
function dataLayerSection(doc: Record<string, unknown>, plugins: ReadonlyMap<string, Plugin>, source: string): { src?: MetricsDataSource; ext?: CoreMetricsExtractor } {
  if (doc.data !== undefined && doc.dataLayer !== undefined) throw new ConfigError(`${source}: give "data" or "dataLayer", not both`);
  const key = doc.data !== undefined ? 'data' : 'dataLayer';
  const v = doc[key];
  if (v === undefined || v === null) return {};
  const where = `${source}: ${key}`;
  if (!isMap(v)) throw new ConfigError(`${where}: must be a mapping with "sources"`);
  strictKeys(v, ['sources'], where);
  const sources = v.sources ?? [];
  if (!Array.isArray(sources)) throw new ConfigError(`${where}: "sources" must be a list`);
  let src: MetricsDataSource | undefined;
  let ext: CoreMetricsExtractor | undefined;
  sources.forEach((raw, i) => {
    const w = `${where}: sources[${i}]`;
    const p = refTo(raw, w, plugins, ['extractors'], isMetricsDataSource, 'a metrics-data-source (the only data source llm-epp has)') as MetricsDataSource;
    // One collector scrapes each endpoint once.
    if (src) throw new ConfigError(`${w}: llm-epp scrapes each endpoint once; give one metrics-data-source`);
    src = p;
    const extractors = (raw as Record<string, unknown>).extractors ?? [];
    if (!Array.isArray(extractors)) throw new ConfigError(`${w}: "extractors" must be a list`);
    extractors.forEach((e, j) => {
      const x = refTo(e, `${w}: extractors[${j}]`, plugins, [], isCoreMetricsExtractor, 'a core-metrics-extractor') as CoreMetricsExtractor;
      if (ext && ext !== x) throw new ConfigError(`${w}: extractors[${j}]: one core-metrics-extractor maps every engine; give one`);
      ext = x;
    });
  });
  return { src, ext };
}

export function loadConfig(doc: Record<string, unknown>, registry: PluginRegistry, baseCtx: Omit<PluginContext, 'plugins'>, source = 'config'): LoadedConfig {
  for (const k of Object.keys(doc)) {
    if (!TOP_LEVEL.has(k)) throw new ConfigError(`${source}: unknown field "${k}"`);
  }
  for (const [k, why] of Object.entries(UNSUPPORTED_SECTIONS)) {
    if (doc[k] !== undefined) throw new ConfigError(`${source}: "${k}": ${why}`);
  }
  const apiVersion = doc.apiVersion;
  if (typeof apiVersion !== 'string' || !(API_VERSIONS as readonly string[]).includes(apiVersion)) {
    throw new ConfigError(`${source}: apiVersion must be one of ${API_VERSIONS.join(', ')}, got ${JSON.stringify(apiVersion)}`);
  }
  if (doc.kind !== 'EndpointPickerConfig') throw new ConfigError(`${source}: kind must be EndpointPickerConfig, got ${JSON.stringify(doc.kind)}`);

  const featureGates: string[] = [];
  if (doc.featureGates !== undefined && doc.featureGates !== null) {
    if (!Array.isArray(doc.featureGates)) throw new ConfigError(`${source}: featureGates must be a list of gate names`);
    for (const g of doc.featureGates) {
      if (typeof g !== 'string') throw new ConfigError(`${source}: featureGates entries must be strings`);
      if (g === 'flowControl') throw new ConfigError(`${source}: featureGates: flowControl: ${UNSUPPORTED_SECTIONS.flowControl}`);
      if (!ACCEPTED_GATES.has(g)) throw new ConfigError(`${source}: featureGates: unknown gate "${g}" (known: ${[...ACCEPTED_GATES, 'flowControl'].join(', ')})`);
      featureGates.push(g);
    }
  }

  // Plugins, created in declaration order so later ones can find earlier ones.
  const rawPlugins = doc.plugins ?? [];
  if (!Array.isArray(rawPlugins)) throw new ConfigError(`${source}: plugins must be a list`);
  const plugins = new Map<string, Plugin>();
  const ctx: PluginContext = { ...baseCtx, plugins };
  rawPlugins.forEach((raw, i) => {
    const where = `${source}: plugins[${i}]`;
    if (!isMap(raw)) throw new ConfigError(`${where}: must be a mapping with "type"`);
    strictKeys(raw, ['name', 'type', 'parameters'], where);
    if (typeof raw.type !== 'string' || raw.type === '') throw new ConfigError(`${where}: "type" is required`);
    const name = raw.name === undefined ? raw.type : raw.name;
    if (typeof name !== 'string' || name === '') throw new ConfigError(`${where}: "name" must be a non-empty string`);
    if (plugins.has(name)) throw new ConfigError(`${where}: plugin name "${name}" is used twice`);
    plugins.set(name, registry.create(raw.type, name, raw.parameters, ctx));
  });

  // Profiles.
  const profiles = new Map<string, SchedulerProfile>();
  let rawProfiles = doc.schedulingProfiles;
  if (rawProfiles === undefined || rawProfiles === null || (Array.isArray(rawProfiles) && rawProfiles.length === 0)) {
    // GAIE: no profiles ⇒ one "default" profile with every filter, scorer and picker.
    rawProfiles = [
      {
        name: 'default',
        plugins: [...plugins.values()].filter((p) => isFilter(p) || isScorer(p) || isPicker(p)).map((p) => ({ pluginRef: p.name })),
      },
    ];
  }
  if (!Array.isArray(rawProfiles)) throw new ConfigError(`${source}: schedulingProfiles must be a list`);
  const addPlugin = (type: string): Plugin => {
    const existing = plugins.get(type);
    if (existing) return existing;
    const p = registry.create(type, type, undefined, ctx);
    plugins.set(type, p);
    return p;
  };
  rawProfiles.forEach((raw, i) => {
    const where0 = `${source}: schedulingProfiles[${i}]`;
    if (!isMap(raw)) throw new ConfigError(`${where0}: must be a mapping with "name" and "plugins"`);
    strictKeys(raw, ['name', 'plugins'], where0);
    if (typeof raw.name !== 'string' || raw.name === '') throw new ConfigError(`${where0}: "name" is required`);
    const where = `${source}: profile "${raw.name}"`;
    if (profiles.has(raw.name)) throw new ConfigError(`${where}: profile name used twice`);
    const refs = raw.plugins ?? [];
    if (!Array.isArray(refs)) throw new ConfigError(`${where}: "plugins" must be a list`);
    const filters: Filter[] = [];
    const scorers: WeightedScorer[] = [];
    let picker: Picker | undefined;
    refs.forEach((ref, j) => {
      const w = `${where}: plugins[${j}]`;
      const plugin = refTo(ref, w, plugins, ['weight']);
      if (ref.weight !== undefined && ref.weight !== null && (typeof ref.weight !== 'number' || !Number.isFinite(ref.weight) || ref.weight < 0)) {
        throw new ConfigError(`${w}: weight of "${ref.pluginRef}" must be a number ≥ 0, got ${JSON.stringify(ref.weight)}`);
      }
      let used = false;
      if (isFilter(plugin)) {
        filters.push(plugin);
        used = true;
      }
      if (isScorer(plugin)) {
        scorers.push({ scorer: plugin, weight: typeof ref.weight === 'number' ? ref.weight : 1 });
        used = true;
      } else if (ref.weight !== undefined && ref.weight !== null) {
        // GAIE ignores weights on non-scorers; so do we, but say so.
        baseCtx.log.warn({ source, profile: raw.name, plugin: ref.pluginRef }, 'weight ignored: only scorers take a weight');
      }
      if (isPicker(plugin)) {
        if (picker) throw new ConfigError(`${where}: more than one picker ("${picker.name}", "${plugin.name}")`);
        picker = plugin;
        used = true;
      }
      if (!used) throw new ConfigError(`${w}: "${ref.pluginRef}" (${plugin.type}) is not a filter, scorer or picker and cannot be part of a profile`);
    });
    // GAIE: a profile without a picker gets the first declared picker, else max-score-picker.
    if (!picker) {
      const declared = [...plugins.values()].find(isPicker);
      const p = declared ?? addPlugin('max-score-picker');
      if (!isPicker(p)) throw new ConfigError(`${where}: no picker, and the plugin named "max-score-picker" is not a picker`);
      picker = p;
    }
    profiles.set(raw.name, { name: raw.name, filters, scorers, picker });
  });

  const handlers = [...plugins.values()].filter(isProfileHandler);
  if (handlers.length > 1) throw new ConfigError(`${source}: more than one profile handler (${handlers.map((h) => h.name).join(', ')})`);
  let profileHandler = handlers[0];
  if (!profileHandler) {
    if (profiles.size !== 1) throw new ConfigError(`${source}: ${profiles.size} scheduling profiles need a profile handler plugin`);
    const p = addPlugin('single-profile-handler');
    if (!isProfileHandler(p)) throw new ConfigError(`${source}: the plugin named "single-profile-handler" is not a profile handler`);
    profileHandler = p;
  }
  if (profileHandler.type === 'single-profile-handler' && profiles.size !== 1) {
    throw new ConfigError(`${source}: single-profile-handler needs exactly one scheduling profile, found ${profiles.size}`);
  }
  // GAIE always ensures these exist, so a section may name them undeclared (addPlugin keeps a declared one).
  for (const [key, type] of [['saturationDetector', 'utilization-detector'], ['parser', 'openai-parser']] as const) {
    if ((doc[key] as { pluginRef?: unknown } | undefined)?.pluginRef === type) addPlugin(type);
  }
  // Saturation detector (GAIE always has one: utilization-detector by default).
  let saturationDetector = sectionRef(doc, 'saturationDetector', plugins, source, isSaturationDetector, 'a saturation detector (utilization-detector, concurrency-detector)') as SaturationDetector | undefined;
  if (!saturationDetector) {
    const p = addPlugin('utilization-detector');
    if (!isSaturationDetector(p)) throw new ConfigError(`${source}: the plugin named "utilization-detector" is not a saturation detector`);
    saturationDetector = p;
  }
  sectionRef(doc, 'parser', plugins, source, (p) => p.type === 'openai-parser', 'a request parser llm-epp has (openai-parser)');

  // Data layer: the section's source and extractor, else the declared ones.
  const section = dataLayerSection(doc, plugins, source);
  const declared = [...plugins.values()];
  const src = section.src ?? declared.find(isMetricsDataSource);
  const ext = section.ext ?? declared.find(isCoreMetricsExtractor);
  const dataLayer: DataLayerSettings = { scheme: src?.scheme, path: src?.path, insecureSkipVerify: src?.insecureSkipVerify, engines: ext?.engines };
  checkDataDependencies(plugins, source);
  for (const p of plugins.values()) p.checkConfig?.(plugins);
  return { plugins, profiles, profileHandler, featureGates, apiVersion, saturationDetector, dataLayer };
}

/** Every key a plugin consumes is produced by a configured data producer: else a config error naming both. */
function checkDataDependencies(plugins: ReadonlyMap<string, Plugin>, source: string): void {
  const produced = new Set<StateKey<unknown>>();
  for (const p of plugins.values()) if (isDataProducer(p)) for (const k of p.produces) produced.add(k);
  for (const p of plugins.values()) {
    for (const k of p.consumes ?? []) {
      if (!produced.has(k)) {
        throw new ConfigError(`${source}: plugin "${p.name}" (${p.type}) consumes "${k.name}", which no configured plugin produces: add ${k.producedBy}`);
      }
    }
  }
}
