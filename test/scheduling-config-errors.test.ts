// EndpointPickerConfig validation errors not covered by scheduling-config.test.ts:
// each must be a ConfigError whose message names the place (plugin or
// profile and entry) and the offending field.
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { thrown } from './helpers/thrown.ts';

const ctx = () => ({ pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random });
const load = (yaml: string) => loadConfig(parseConfigText(yaml, 'test.yaml'), createRegistry(), ctx(), 'test.yaml');
const head = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';
/** One profile "d" over a queue-scorer, with the given plugin reference line(s). */
const profileWith = (ref: string) => head + `plugins:\n- type: queue-scorer\n- type: random-picker\nschedulingProfiles:\n- name: d\n  plugins:\n  - ${ref}\n`;

function errorOf(yaml: string): ConfigError {
  return thrown(() => load(yaml), ConfigError, yaml);
}

/** The message must contain every fragment (literal strings). */
function expectMessage(yaml: string, ...fragments: string[]): void {
  const msg = errorOf(yaml).message;
  for (const f of fragments) expect(msg, `message: ${msg}`).toContain(f);
}

/** Errors about the document's structure also name the config source. */
function expectSourcedMessage(yaml: string, ...fragments: string[]): void {
  expect(errorOf(yaml).message.startsWith('test.yaml: ')).toBe(true);
  expectMessage(yaml, ...fragments);
}

describe('profile plugin references', () => {
  it('an unknown key (a misspelt weight) names the profile, the entry and the field, and lists the allowed ones', () => {
    expectSourcedMessage(profileWith('{pluginRef: queue-scorer, wieght: 2}'), 'profile "d": plugins[0]: unknown field "wieght"', '(allowed: pluginRef, weight)');
  });

  it('the entry index points at the bad reference, not the first one', () => {
    const yaml = head + 'plugins:\n- type: queue-scorer\n- type: kv-cache-utilization-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - {pluginRef: queue-scorer, weight: 2}\n  - {pluginRef: kv-cache-utilization-scorer, Weight: 2}\n';
    expectSourcedMessage(yaml, 'profile "d": plugins[1]: unknown field "Weight"');
  });

  it.each([
    ['a word', 'heavy', '"heavy"'],
    ['a quoted number', '"2"', '"2"'],
    ['a boolean', 'true', 'true'],
    ['a list', '[1]', '[1]'],
    ['a mapping', '{value: 1}', '{"value":1}'],
    ['NaN', '.nan', 'null'],
    ['infinity', '.inf', 'null'],
  ])('a non-numeric weight (%s) names the profile, the entry and the plugin', (_what, weight, shown) => {
    expectSourcedMessage(profileWith(`{pluginRef: queue-scorer, weight: ${weight}}`), 'profile "d": plugins[0]: weight of "queue-scorer" must be a number ≥ 0, got ' + shown);
  });

  it('an empty (null) weight means the default 1; a weight of 0 is allowed', () => {
    expect(load(profileWith('{pluginRef: queue-scorer, weight: ~}')).profiles.get('d')!.scorers[0].weight).toBe(1);
    expect(load(profileWith('{pluginRef: queue-scorer, weight: 0}')).profiles.get('d')!.scorers[0].weight).toBe(0);
  });

  it('a reference that is not a mapping, or has no string pluginRef', () => {
    expectSourcedMessage(profileWith('queue-scorer'), 'profile "d": plugins[0]: must be a mapping with "pluginRef"');
    expectSourcedMessage(profileWith('{weight: 2}'), 'profile "d": plugins[0]: "pluginRef" is required');
    expectSourcedMessage(profileWith('{pluginRef: 5}'), 'profile "d": plugins[0]: "pluginRef" is required');
  });

  it('a data producer cannot be part of a profile', () => {
    const yaml = head + 'plugins:\n- type: approx-prefix-cache-producer\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: approx-prefix-cache-producer\n';
    expectSourcedMessage(yaml, 'profile "d": plugins[0]: "approx-prefix-cache-producer" (approx-prefix-cache-producer) is not a filter, scorer or picker');
  });
});

describe('plugin parameters', () => {
  it.each([
    ['a list', '[1, 2]'],
    ['a number', '5'],
    ['a string', 'threshold'],
    ['an empty string', '""'],
  ])('"parameters" given %s names the plugin (by name and type)', (_what, value) => {
    expectMessage(head + `plugins:\n- name: lat\n  type: load-aware-scorer\n  parameters: ${value}\n`, 'plugin "lat" (load-aware-scorer): "parameters" must be a mapping');
  });

  it('an empty "parameters" means the defaults', () => {
    expect(() => load(head + 'plugins:\n- type: load-aware-scorer\n  parameters:\n')).not.toThrow();
  });

  it.each([
    ['numbers', '[1, 2]'],
    ['a mixed list', '[a, 1]'],
    ['booleans', '[true]'],
    ['a nested mapping', '[a, {b: c}]'],
    ['a scalar string instead of a list', 'a'],
    ['a mapping', '{a: b}'],
  ])('a string[] parameter given %s names the plugin and the parameter', (_what, value) => {
    expectMessage(head + `plugins:\n- type: by-label\n  parameters: {label: tier, validValues: ${value}}\n`, 'plugin "by-label" (by-label): parameter "validValues" must be a list of strings');
  });

  it('label-selector values must be strings too', () => {
    const yaml = head + 'plugins:\n- name: sel\n  type: label-selector-filter\n  parameters: {matchExpressions: [{key: tier, operator: In, values: [1, 2]}]}\n';
    expectMessage(yaml, 'plugin "sel" (label-selector-filter): matchExpressions[0]: "values" must be a list of strings');
  });

  it.each([
    ['matchLabels given a list', '{matchLabels: [a]}', 'parameter "matchLabels" must be a mapping'],
    ['matchExpressions given a mapping', '{matchExpressions: {key: a}}', 'parameter "matchExpressions" must be a list'],
    ['a matchExpressions entry that is not a mapping', '{matchExpressions: [tier]}', 'matchExpressions[0]: must be a mapping'],
    ['an unknown field in a match expression', '{matchExpressions: [{key: a, operator: Exists, value: x}]}', 'matchExpressions[0]: unknown field "value"'],
    ['In without values', '{matchExpressions: [{key: a, operator: In}]}', 'matchExpressions[0]: In needs values'],
    ['Exists with values', '{matchExpressions: [{key: a, operator: Exists, values: [x]}]}', 'matchExpressions[0]: Exists takes no values'],
    ['an empty selector', '{}', 'give matchLabels or matchExpressions'],
  ])('label-selector-filter: %s', (_what, params, fragment) => {
    expectMessage(head + `plugins:\n- type: label-selector-filter\n  parameters: ${params}\n`, 'plugin "label-selector-filter" (label-selector-filter): ' + fragment);
  });

  it.each([
    ['a string parameter given a number', 'by-label', '{label: 5, validValues: [a]}', 'parameter "label" must be a string, got 5'],
    ['a string parameter given a list', 'no-hit-lru-scorer', '{prefixPluginName: [x]}', 'parameter "prefixPluginName" must be a string, got ["x"]'],
    ['a number above its maximum', 'prefix-cache-affinity-filter', '{affinityThreshold: 1.01}', 'parameter "affinityThreshold" must be ≤ 1, got 1.01'],
    ['a number given a mapping', 'load-aware-scorer', '{threshold: {a: 1}}', 'parameter "threshold" must be a number, got {"a":1}'],
    ['by-label with neither values nor allowsNoLabel', 'by-label', '{label: tier}', 'give validValues or allowsNoLabel: true'],
  ])('%s', (_what, type, params, fragment) => {
    expectMessage(head + `plugins:\n- type: ${type}\n  parameters: ${params}\n`, `plugin "${type}" (${type}): ${fragment}`);
  });

  it('numeric strings are accepted for number parameters (YAML users quote numbers)', () => {
    expect(() => load(head + 'plugins:\n- type: load-aware-scorer\n  parameters: {threshold: "64"}\n')).not.toThrow();
    expectMessage(head + 'plugins:\n- type: load-aware-scorer\n  parameters: {threshold: ""}\n', 'plugin "load-aware-scorer" (load-aware-scorer): parameter "threshold" must be a number, got ""');
  });
});

describe('profile handlers', () => {
  it('more than one profile handler names them all', () => {
    const yaml = head + 'plugins:\n- type: queue-scorer\n- type: single-profile-handler\n- name: second-handler\n  type: single-profile-handler\n';
    expectSourcedMessage(yaml, 'more than one profile handler (single-profile-handler, second-handler)');
  });
});

describe('list-shaped sections', () => {
  it.each([
    ['plugins as a mapping', 'plugins: {type: queue-scorer}\n', 'test.yaml: plugins must be a list'],
    ['plugins as a string', 'plugins: queue-scorer\n', 'test.yaml: plugins must be a list'],
    ['schedulingProfiles as a mapping', 'plugins:\n- type: queue-scorer\nschedulingProfiles: {name: d, plugins: [{pluginRef: queue-scorer}]}\n', 'test.yaml: schedulingProfiles must be a list'],
    ['schedulingProfiles as a string', 'schedulingProfiles: default\n', 'test.yaml: schedulingProfiles must be a list'],
    ['a profile\'s plugins as a string', 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins: queue-scorer\n', 'test.yaml: profile "d": "plugins" must be a list'],
    ['a profile\'s plugins as a mapping', 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins: {pluginRef: queue-scorer}\n', 'test.yaml: profile "d": "plugins" must be a list'],
    ['featureGates as a string', 'featureGates: dataLayer\n', 'test.yaml: featureGates must be a list of gate names'],
    ['a featureGates entry that is not a string', 'featureGates: [1]\n', 'test.yaml: featureGates entries must be strings'],
  ])('rejects %s', (_what, body, message) => {
    expectSourcedMessage(head + body, message);
  });

  it.each([
    ['a plugin entry that is a string', 'plugins:\n- queue-scorer\n', 'plugins[0]: must be a mapping with "type"'],
    ['a plugin type that is not a string', 'plugins:\n- type: 5\n', 'plugins[0]: "type" is required'],
    ['a plugin name that is not a string', 'plugins:\n- name: [a]\n  type: queue-scorer\n', 'plugins[0]: "name" must be a string'],
    ['a profile entry that is a string', 'schedulingProfiles:\n- default\n', 'schedulingProfiles[0]: must be a mapping with "name" and "plugins"'],
    ['a profile without a name', 'plugins:\n- type: queue-scorer\nschedulingProfiles:\n- plugins: [{pluginRef: queue-scorer}]\n', 'schedulingProfiles[0]: "name" is required'],
  ])('rejects %s, naming the entry', (_what, body, message) => {
    expectSourcedMessage(head + body, message);
  });
});

describe('document-level errors', () => {
  it.each([
    ['a YAML list instead of a mapping', '- type: queue-scorer\n', 'the config must be a YAML mapping'],
    ['a duplicate key', head + 'plugins: []\nplugins: []\n', 'invalid YAML'],
    ['a missing apiVersion', 'kind: EndpointPickerConfig\n', 'apiVersion must be one of inference.networking.x-k8s.io/v1alpha1, llm-d.ai/v1alpha1, got undefined'],
  ])('rejects %s', (_what, yaml, fragment) => {
    expectSourcedMessage(yaml, fragment);
  });
});

describe('data dependencies between plugins', () => {
  it('a consumer without its producer gets the default producer of that data, as llm-d v0.10 does', () => {
    const alone = load(head + 'plugins:\n- type: prefix-cache-affinity-filter\n- type: queue-scorer\n');
    expect(alone.plugins.get('approx-prefix-cache-producer')?.type).toBe('approx-prefix-cache-producer');
    // A declared producer (or the one prefix-cache-scorer runs) is used instead: no second one appears.
    const declared = load(head + 'plugins:\n- name: px\n  type: approx-prefix-cache-producer\n- type: prefix-cache-affinity-filter\n');
    expect([...declared.plugins.values()].filter((p) => p.type === 'approx-prefix-cache-producer').map((p) => p.name)).toEqual(['px']);
    expect(load(head + 'plugins:\n- type: no-hit-lru-scorer\n- type: queue-scorer\n').plugins.has('approx-prefix-cache-producer')).toBe(true);
  });

  it('an empty plugin name means the type, as in llm-d v0.10', () => {
    const c = load(head + 'plugins:\n- type: queue-scorer\n- name: ""\n  type: kv-cache-utilization-scorer\n');
    expect(c.plugins.get('kv-cache-utilization-scorer')?.type).toBe('kv-cache-utilization-scorer');
  });

  it('no-hit-lru-scorer: prefixPluginType must be the type of the plugin named prefixPluginName', () => {
    const yaml = (type: string) =>
      head + `plugins:\n- name: px\n  type: prefix-cache-scorer\n- type: no-hit-lru-scorer\n  parameters:\n    prefixPluginName: px\n    prefixPluginType: ${type}\n`;
    expect(() => load(yaml('prefix-cache-scorer'))).not.toThrow();
    expectMessage(yaml('precise-prefix-cache-scorer'), 'prefixPluginName "px" is a prefix-cache-scorer, but prefixPluginType says precise-prefix-cache-scorer');
  });
});
