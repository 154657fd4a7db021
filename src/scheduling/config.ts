// EndpointPickerConfig loading, validation and defaulting, following the GAIE /
// llm-d loader so that their configs run unchanged. Everything is checked at
// start-up; any error names the plugin or profile and the field, and nothing
// half-configured is ever returned.
import { parse as parseYaml } from 'yaml';
import type { EngineResolver } from '../metrics/engines.ts';
import { isCoreMetricsExtractor, type CoreMetricsExtractor } from './data-layer/core-metrics-extractor.ts';
import { isEndpointExtractor, isEndpointNotificationSource, type EndpointExtractor } from './data-layer/endpoint-notification-source.ts';
import { isFileDiscovery, type FileDiscovery } from './data-layer/file-discovery.ts';
import { isDcgmDataSource } from './data-layer/dcgm-data-source.ts';
import { isDcgmExtractor } from './data-layer/dcgm-extractor.ts';
import { isMetricsDataSource, type MetricsDataSource } from './data-layer/metrics-data-source.ts';
import { ParserTable, isRequestParser, type RequestParser } from './parsers/request-parser.ts';
import { isDataProducer, isFilter, isPicker, isProfileHandler, isSaturationDetector, isScorer, type StateKey, type Plugin, type PluginContext, type SaturationDetector, type SchedulerProfile, type WeightedScorer, type Filter, type Picker } from './framework.ts';
import { ConfigError, isMap, strictKeys } from './params.ts';
import { producerOrder } from './producer-order.ts';
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

// EndpointPickerConfig fields (llm-d Router v0.10's types, plus GAIE v1.5's `data`).
const TOP_LEVEL = ['apiVersion', 'kind', 'featureGates', 'plugins', 'schedulingProfiles', 'dataLayer', 'data', 'flowControl', 'requestHandler', 'saturationDetector', 'parser'];
const DATA_LAYER_FIELDS = ['injectDefaults', 'sources', 'discovery', 'peerDiscovery', 'crossReplicaSyncerPluginRef', 'crossReplicaSyncInterval'];
/** flowControl fields (llm-d Router v0.10); src/flowcontrol/config.ts reads them when the gate is on. */
export const FLOW_CONTROL_FIELDS = ['maxBytes', 'maxRequests', 'defaultRequestTTL', 'noEndpointRequestTTL', 'defaultPriorityBand', 'defaultNegativePriorityBand', 'priorityBands', 'usageLimitPolicyPluginRef', 'saturationDetector', 'enableEviction'];
const ACTIVE_ACTIVE = 'llm-d Router\'s peer discovery and cross-replica syncer are not implemented in llm-epp; active-active replicas share prefix, in-flight load and session state with --state-sync=redis://… instead (or run active-passive with --ha-enable-leader-election)';

/**
 * Feature gates llm-d Router v0.10 registers (flowControl off, haPopulateNonLeaderDatastore
 * on by default), and GAIE v1.5's, which v0.10 removed: accepted with a warning.
 */
interface Gate {
  readonly default: boolean;
  /** A value llm-epp cannot honour, and why. */
  readonly refuse?: { readonly value: boolean; readonly why: string };
  readonly removed?: string;
}
export const FEATURE_GATES: Readonly<Record<string, Gate>> = {
  flowControl: { default: false },
  haPopulateNonLeaderDatastore: { default: true, refuse: { value: false, why: 'llm-epp replicas always keep their datastore populated (a standby that gets a request routes it); leader-only population is not offered' } },
  dataLayer: { default: true, removed: 'removed in llm-d Router v0.10: the data layer is always on' },
  enableLegacyMetrics: { default: false, removed: 'removed in llm-d Router v0.9: metrics always come from the data layer' },
};

/**
 * The flowControl fields set besides saturationDetector and enableEviction:
 * what llm-d warns it ignores when the flowControl gate is off (the legacy
 * admission path honours the detector; an empty priorityBands list sets nothing).
 */
export function flowControlSettingsSet(section: unknown): string[] {
  if (!isMap(section)) return [];
  return Object.keys(section).filter((k) => {
    const v = section[k];
    if (k === 'saturationDetector' || k === 'enableEviction' || v === undefined || v === null || v === '') return false;
    return !(Array.isArray(v) && v.length === 0);
  });
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
  /** The metrics source's own scrape interval (a multiple of --refresh-metrics-interval). */
  readonly intervalMs?: number;
  /** Scrape this port instead of the endpoint's. */
  readonly port?: number;
  /** TLS material for https scrapes (metrics-data-source caCertPath, clientCertPath, clientKeyPath). */
  readonly tls?: { readonly caCertPath?: string; readonly clientCertPath?: string; readonly clientKeyPath?: string };
  /** Every configured source with its extractors, in order (DCGM and other sources beyond the core metrics). */
  readonly sources: readonly { readonly source: Plugin; readonly extractors: readonly Plugin[] }[];
  /** dataLayer.discovery: endpoints from a file instead of flags or Kubernetes. */
  readonly discovery?: FileDiscovery;
}

export interface LoadedConfig extends PipelineConfig {
  /** Every known gate's value (defaults applied). */
  readonly featureGates: Readonly<Record<string, boolean>>;
  readonly apiVersion: string;
  /** The configured saturationDetector, else a default utilization-detector (GAIE). */
  readonly saturationDetector: SaturationDetector;
  readonly dataLayer: DataLayerSettings;
  /** requestHandler.parsers in order (default: openai, anthropic, vllmhttp). */
  readonly parsers: ParserTable;
  /**
   * The flowControl section as written (undefined when absent), for
   * src/flowcontrol/config.ts to read when the flowControl gate is on.
   */
  readonly flowControl: unknown;
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

/** Data sources llm-epp runs, and the extractors each accepts. */
const SOURCE_KINDS: readonly { readonly is: (p: Plugin) => boolean; readonly extractor: (p: Plugin) => boolean; readonly want: string }[] = [
  { is: isMetricsDataSource, extractor: isCoreMetricsExtractor, want: 'a core-metrics-extractor' },
  { is: isEndpointNotificationSource, extractor: isEndpointExtractor, want: 'an endpoint extractor (approx-prefix-cache-producer)' },
  { is: isDcgmDataSource, extractor: isDcgmExtractor, want: 'a dcgm-extractor' },
];

interface DataLayerSection {
  readonly sources: { source: Plugin; extractors: Plugin[] }[];
  readonly injectDefaults: boolean;
  readonly discovery?: FileDiscovery;
}

/** `dataLayer` (llm-d) or `data` (GAIE v1.5): {injectDefaults, sources: [{pluginRef, extractors: [{pluginRef}]}], discovery}. */
function dataLayerSection(doc: Record<string, unknown>, plugins: ReadonlyMap<string, Plugin>, source: string): DataLayerSection {
  if (doc.data !== undefined && doc.dataLayer !== undefined) throw new ConfigError(`${source}: give "data" or "dataLayer", not both`);
  const key = doc.data !== undefined ? 'data' : 'dataLayer';
  const v = doc[key];
  if (v === undefined || v === null) return { sources: [], injectDefaults: true };
  const where = `${source}: ${key}`;
  if (!isMap(v)) throw new ConfigError(`${where}: must be a mapping with "sources"`);
  strictKeys(v, DATA_LAYER_FIELDS, where);
  for (const k of ['peerDiscovery', 'crossReplicaSyncerPluginRef', 'crossReplicaSyncInterval']) {
    if (v[k] !== undefined && v[k] !== null) throw new ConfigError(`${where}: "${k}": ${ACTIVE_ACTIVE}`);
  }
  if (v.injectDefaults !== undefined && typeof v.injectDefaults !== 'boolean') throw new ConfigError(`${where}: "injectDefaults" must be true or false`);
  const rawSources = v.sources ?? [];
  if (!Array.isArray(rawSources)) throw new ConfigError(`${where}: "sources" must be a list`);
  const sources: { source: Plugin; extractors: Plugin[] }[] = [];
  rawSources.forEach((raw, i) => {
    const w = `${where}: sources[${i}]`;
    const src = refTo(raw, w, plugins, ['extractors']);
    const kind = SOURCE_KINDS.find((k) => k.is(src));
    if (!kind) throw new ConfigError(`${w}: "${src.name}" (${src.type}) is not a data source llm-epp runs (metrics-data-source, dcgm-data-source, endpoint-notification-source)`);
    if (sources.some((s) => s.source === src)) throw new ConfigError(`${w}: "${src.name}" is listed twice`);
    if (isMetricsDataSource(src) && sources.some((s) => isMetricsDataSource(s.source))) {
      throw new ConfigError(`${w}: llm-epp scrapes each endpoint's metrics once; give one metrics-data-source`);
    }
    const rawExtractors = (raw as Record<string, unknown>).extractors ?? [];
    if (!Array.isArray(rawExtractors)) throw new ConfigError(`${w}: "extractors" must be a list`);
    const extractors = rawExtractors.map((e, j) => refTo(e, `${w}: extractors[${j}]`, plugins, [], kind.extractor, kind.want));
    if (isMetricsDataSource(src) && extractors.length > 1) throw new ConfigError(`${w}: one core-metrics-extractor maps every engine; give one`);
    sources.push({ source: src, extractors });
  });
  let discovery: FileDiscovery | undefined;
  if (v.discovery !== undefined && v.discovery !== null) {
    discovery = refTo(v.discovery, `${where}: discovery`, plugins, [], isFileDiscovery, 'a discovery plugin llm-epp has (file-discovery)') as FileDiscovery;
  }
  return { sources, injectDefaults: v.injectDefaults !== false, discovery };
}

function parseGates(doc: Record<string, unknown>, source: string, log: PluginContext['log']): Record<string, boolean> {
  const gates: Record<string, boolean> = {};
  for (const [name, g] of Object.entries(FEATURE_GATES)) if (!g.removed) gates[name] = g.default;
  const raw = doc.featureGates;
  if (raw === undefined || raw === null) return gates;
  if (!Array.isArray(raw)) throw new ConfigError(`${source}: featureGates must be a list of gate names`);
  for (const entry of raw) {
    if (typeof entry !== 'string') throw new ConfigError(`${source}: featureGates entries must be strings`);
    // llm-d: "gate" turns a gate on, "gate=false" off.
    const eq = entry.indexOf('=');
    const name = (eq < 0 ? entry : entry.slice(0, eq)).trim();
    let value = true;
    if (eq >= 0) {
      const text = entry.slice(eq + 1).trim().toLowerCase();
      if (['true', '1', 't'].includes(text)) value = true;
      else if (['false', '0', 'f'].includes(text)) value = false;
      else throw new ConfigError(`${source}: featureGates: "${entry}": the value after "=" must be true or false`);
    }
    const gate = FEATURE_GATES[name];
    if (!gate) throw new ConfigError(`${source}: featureGates: unknown gate "${name}" (known: ${Object.keys(FEATURE_GATES).join(', ')})`);
    if (gate.removed) {
      log.warn({ source, gate: name }, `DEPRECATION: feature gate "${name}" is ${gate.removed}; ignored`);
      continue;
    }
    if (gate.refuse && gate.refuse.value === value) throw new ConfigError(`${source}: featureGates: ${name}${value ? '' : '=false'}: ${gate.refuse.why}`);
    gates[name] = value;
  }
  return gates;
}

export function loadConfig(doc: Record<string, unknown>, registry: PluginRegistry, baseCtx: Omit<PluginContext, 'plugins'>, source = 'config'): LoadedConfig {
  for (const k of Object.keys(doc)) {
    if (!TOP_LEVEL.includes(k)) throw new ConfigError(`${source}: unknown field "${k}" (allowed: ${TOP_LEVEL.join(', ')})`);
  }
  const apiVersion = doc.apiVersion;
  if (typeof apiVersion !== 'string' || !(API_VERSIONS as readonly string[]).includes(apiVersion)) {
    throw new ConfigError(`${source}: apiVersion must be one of ${API_VERSIONS.join(', ')}, got ${JSON.stringify(apiVersion)}`);
  }
  if (doc.kind !== 'EndpointPickerConfig') throw new ConfigError(`${source}: kind must be EndpointPickerConfig, got ${JSON.stringify(doc.kind)}`);
  const log = baseCtx.log;
  const featureGates = parseGates(doc, source, log);

  // flowControl: with the gate off llm-d honours only its saturationDetector and warns about the rest.
  const fc = doc.flowControl;
  if (fc !== undefined && fc !== null) {
    if (!isMap(fc)) throw new ConfigError(`${source}: flowControl must be a mapping`);
    strictKeys(fc, FLOW_CONTROL_FIELDS, `${source}: flowControl`);
    const ignored = flowControlSettingsSet(fc);
    if (ignored.length && !featureGates.flowControl) {
      log.warn({ source, ignored }, 'the flowControl section is set but the flowControl feature gate is off; its settings other than saturationDetector are ignored');
    }
  }
  if (doc.saturationDetector !== undefined && doc.saturationDetector !== null) {
    log.warn({ source }, 'DEPRECATION: top-level saturationDetector is deprecated; use flowControl.saturationDetector (if both are set, the new field is used)');
  }
  if (doc.parser !== undefined && doc.parser !== null) {
    log.warn({ source }, 'DEPRECATION: top-level parser is deprecated; use requestHandler.parsers (if both are set, the new field is used)');
  }

  // Plugins, created in declaration order; link() then resolves references in any order.
  const rawPlugins = doc.plugins ?? [];
  if (!Array.isArray(rawPlugins)) throw new ConfigError(`${source}: plugins must be a list`);
  const plugins = new Map<string, Plugin>();
  // Alpha plugins need --allow-experimental-plugins under llm-d's API group, as in llm-d Router;
  // GAIE v1.5 configs (which predate stability levels) keep loading as they did.
  const ctx: PluginContext = { ...baseCtx, plugins, allowExperimental: baseCtx.allowExperimental === true || apiVersion !== 'llm-d.ai/v1alpha1' };
  rawPlugins.forEach((raw, i) => {
    const where = `${source}: plugins[${i}]`;
    if (!isMap(raw)) throw new ConfigError(`${where}: must be a mapping with "type"`);
    strictKeys(raw, ['name', 'type', 'parameters'], where);
    if (typeof raw.type !== 'string' || raw.type === '') throw new ConfigError(`${where}: "type" is required`);
    const name = raw.name === undefined || raw.name === '' ? raw.type : raw.name;
    if (typeof name !== 'string') throw new ConfigError(`${where}: "name" must be a string`);
    if (plugins.has(name)) throw new ConfigError(`${where}: plugin name "${name}" is used twice`);
    plugins.set(name, registry.create(raw.type, name, raw.parameters, ctx));
  });
  const addPlugin = (type: string): Plugin => {
    const existing = plugins.get(type);
    if (existing) return existing;
    const p = registry.create(type, type, undefined, ctx);
    plugins.set(type, p);
    p.link?.(plugins, addPlugin);
    return p;
  };
  for (const p of [...plugins.values()]) p.link?.(plugins, addPlugin);

  // Profiles.
  const profiles = new Map<string, SchedulerProfile>();
  let rawProfiles = doc.schedulingProfiles;
  if (rawProfiles === undefined || rawProfiles === null || (Array.isArray(rawProfiles) && rawProfiles.length === 0)) {
    // GAIE / llm-d: no profiles ⇒ one "default" profile with every filter, scorer and picker.
    rawProfiles = [
      {
        name: 'default',
        plugins: [...plugins.values()].filter((p) => isFilter(p) || isScorer(p) || isPicker(p)).map((p) => ({ pluginRef: p.name })),
      },
    ];
  }
  if (!Array.isArray(rawProfiles)) throw new ConfigError(`${source}: schedulingProfiles must be a list`);
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
        log.warn({ source, profile: raw.name, plugin: ref.pluginRef }, 'weight ignored: only scorers take a weight');
      }
      if (isPicker(plugin)) {
        if (picker) throw new ConfigError(`${where}: more than one picker ("${picker.name}", "${plugin.name}")`);
        picker = plugin;
        used = true;
      }
      if (!used) throw new ConfigError(`${w}: "${ref.pluginRef}" (${plugin.type}) is not a filter, scorer or picker and cannot be part of a profile`);
    });
    // GAIE / llm-d: a profile without a picker gets the first declared picker, else max-score-picker.
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
  try {
    profileHandler.checkProfiles?.(profiles);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${source}: ${e.message}`);
    throw e;
  }

  // Saturation detector: flowControl.saturationDetector, else the deprecated top-level field, else utilization-detector.
  const satRef = (isMap(fc) && fc.saturationDetector != null ? fc.saturationDetector : doc.saturationDetector) as unknown;
  const satWhere = isMap(fc) && fc.saturationDetector != null ? `${source}: flowControl.saturationDetector` : `${source}: saturationDetector`;
  if (isMap(satRef) && satRef.pluginRef === 'utilization-detector') addPlugin('utilization-detector');
  let saturationDetector: SaturationDetector;
  if (satRef !== undefined && satRef !== null) {
    saturationDetector = refTo(satRef, satWhere, plugins, [], isSaturationDetector, 'a saturation detector (utilization-detector, concurrency-detector)') as SaturationDetector;
  } else {
    const p = addPlugin('utilization-detector');
    if (!isSaturationDetector(p)) throw new ConfigError(`${source}: the plugin named "utilization-detector" is not a saturation detector`);
    saturationDetector = p;
  }

  const parsers = parserSection(doc, plugins, addPlugin, source);

  // Data layer: the section's sources, plus llm-d's default metrics source and extractor unless opted out.
  const section = dataLayerSection(doc, plugins, source);
  let metricsEntry = section.sources.find((s) => isMetricsDataSource(s.source));
  if (!metricsEntry) {
    if (!section.injectDefaults) {
      throw new ConfigError(`${source}: dataLayer: injectDefaults is false and no metrics-data-source is listed; llm-epp needs model-server metrics for admission and its load scorers, so list a metrics-data-source`);
    }
    // A declared source/extractor (GAIE v1.5 configs declare them without a section) is the one injected.
    const src = [...plugins.values()].find(isMetricsDataSource) ?? addPlugin('metrics-data-source');
    const ext = [...plugins.values()].find(isCoreMetricsExtractor);
    metricsEntry = { source: src, extractors: ext ? [ext] : [] };
    section.sources.unshift(metricsEntry);
  }
  for (const s of section.sources) {
    if (isEndpointNotificationSource(s.source)) for (const x of s.extractors) s.source.attach(x as EndpointExtractor);
    if (isDcgmDataSource(s.source) && s.extractors.length === 0) {
      throw new ConfigError(`${source}: dataLayer: source "${s.source.name}" (dcgm-data-source) has no extractors; list a dcgm-extractor under it`);
    }
  }
  for (const p of plugins.values()) {
    if (isDcgmExtractor(p) && !section.sources.some((s) => isDcgmDataSource(s.source) && s.extractors.includes(p))) {
      throw new ConfigError(`${source}: plugin "${p.name}" (dcgm-extractor) is not listed under a dcgm-data-source in dataLayer.sources, so it would never see a page`);
    }
  }
  const src = metricsEntry.source as MetricsDataSource;
  const ext = metricsEntry.extractors[0] as CoreMetricsExtractor | undefined;
  const dataLayer: DataLayerSettings = {
    scheme: src.scheme,
    path: src.path,
    insecureSkipVerify: src.insecureSkipVerify,
    engines: ext?.engines,
    intervalMs: src.intervalMs,
    port: src.port,
    tls: src.tls,
    sources: section.sources,
    discovery: section.discovery,
  };
  addDefaultProducers(plugins, registry, addPlugin);
  checkDataDependencies(plugins, source);
  for (const p of plugins.values()) p.checkConfig?.(plugins);
  return { plugins, profiles, profileHandler, featureGates, apiVersion, saturationDetector, dataLayer, parsers, flowControl: fc ?? undefined };
}

/** requestHandler.parsers (or the deprecated top-level parser); default openai, anthropic and vllmhttp, as llm-d Router. */
function parserSection(doc: Record<string, unknown>, plugins: ReadonlyMap<string, Plugin>, addPlugin: (type: string) => Plugin, source: string): ParserTable {
  let refs: unknown[] = [];
  let where = `${source}: requestHandler`;
  const rh = doc.requestHandler;
  if (rh !== undefined && rh !== null) {
    if (!isMap(rh)) throw new ConfigError(`${where}: must be a mapping with "parsers"`);
    strictKeys(rh, ['parsers'], where);
    if (rh.parsers !== undefined && rh.parsers !== null && !Array.isArray(rh.parsers)) throw new ConfigError(`${where}: "parsers" must be a list`);
    refs = (rh.parsers as unknown[] | undefined) ?? [];
    where = `${where}: parsers`;
  }
  if (refs.length === 0 && doc.parser !== undefined && doc.parser !== null) {
    refs = [doc.parser];
    where = `${source}: parser`;
  }
  if (refs.length === 0) return new ParserTable(['openai-parser', 'anthropic-parser', 'vllmhttp-parser'].map((t) => addPlugin(t) as RequestParser));
  // llm-d creates a parser a config names without declaring it.
  for (const r of refs) if (isMap(r) && typeof r.pluginRef === 'string' && !plugins.has(r.pluginRef) && /-parser$/.test(r.pluginRef)) addPlugin(r.pluginRef);
  const parsers = refs.map((r, i) => refTo(r, refs.length > 1 || where.endsWith('parsers') ? `${where}[${i}]` : where, plugins, [], isRequestParser, 'a request parser (openai-parser, anthropic-parser, vllmhttp-parser, passthrough-parser)') as RequestParser);
  return new ParserTable(parsers);
}

/** llm-d Router creates a consumed key's default producer when none is configured (e.g. inflight-load-producer). */
function addDefaultProducers(plugins: ReadonlyMap<string, Plugin>, registry: PluginRegistry, addPlugin: (type: string) => Plugin): void {
  for (const p of [...plugins.values()]) {
    for (const k of p.consumes ?? []) {
      if (k.defaultProducer === undefined || registry.get(k.defaultProducer) === undefined) continue;
      const produced = [...plugins.values()].some((q) => isDataProducer(q) && q.produces.includes(k));
      if (!produced) addPlugin(k.defaultProducer);
    }
  }
}

/** Every key a plugin consumes is produced by a configured data producer: else a config error naming both. */
function checkDataDependencies(plugins: ReadonlyMap<string, Plugin>, source: string): void {
  try {
    producerOrder(plugins.values());
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${source}: ${e.message}`);
    throw e;
  }
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
