// The flowControl section as llm-d Router v0.10 reads it: defaults, the
// value syntaxes, band templates, policy references and their errors, the
// policy plugins' parameters, and llm-d's own sample configs unchanged.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../src/builtin-plugins.ts';
import { createLogger } from '../src/log.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { flowControlSettingsSet, loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import type { Plugin } from '../src/scheduling/framework.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import type { PluginRegistry } from '../src/scheduling/registry.ts';
import { BAND_GC_MS, DEFAULT_BAND_MAX_BYTES, DEFAULT_BAND_MAX_REQUESTS, DEFAULT_REQUEST_TTL_MS, FLOW_GC_MS, parseFlowControl } from '../src/flowcontrol/config.ts';
import { FLOW_CONTROL_PLUGINS } from '../src/flowcontrol/plugins.ts';
import { parseQuantity, parseGoDuration } from '../src/flowcontrol/quantity.ts';
import { EdfOrderingPolicy } from '../src/flowcontrol/policies/edf.ts';
import { FcfsOrderingPolicy } from '../src/flowcontrol/policies/fcfs.ts';
import { GlobalStrictFairnessPolicy } from '../src/flowcontrol/policies/global-strict.ts';
import { PriorityHoldbackPolicy } from '../src/flowcontrol/policies/priority-holdback.ts';
import { ProgramAwareFairness } from '../src/flowcontrol/policies/program-aware.ts';
import { ProbabilisticAdmitter } from '../src/flowcontrol/policies/probabilistic-admitter.ts';
import { RoundRobinFairnessPolicy } from '../src/flowcontrol/policies/round-robin.ts';
import { SoftReflectiveCeilingPolicy } from '../src/flowcontrol/policies/soft-reflective-ceiling.ts';
import { StaticUsageLimitPolicy } from '../src/flowcontrol/policies/static-usage-limit.ts';

const log = createLogger('silent');
const FIXTURES = new URL('./fixtures/llm-d-router-v0.10/flowcontrol/', import.meta.url);

function registry(): PluginRegistry {
  const r = createRegistry();
  // src/builtin-plugins.ts registers every flow-control plugin type.
  for (const def of FLOW_CONTROL_PLUGINS) expect(r.get(def.type)).toBe(def);
  return r;
}

const ctx = () => ({ pool: new Datastore(), log, metrics: undefined, random: () => 0.5, plugins: new Map<string, Plugin>(), allowExperimental: true });

/** Plugins from a `plugins:` list, made by the registry (with the flow-control types). */
function plugins(list: { type: string; name?: string; parameters?: unknown }[]): Map<string, Plugin> {
  const reg = registry();
  const c = ctx();
  for (const p of list) c.plugins.set(p.name ?? p.type, reg.create(p.type, p.name ?? p.type, p.parameters, c));
  return c.plugins;
}

function errorOf(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('flowControl section: defaults', () => {
  it('an absent section gives llm-d\'s defaults: band 0, 5000 requests / 1 GB per band, 60 s TTLs, fcfs + global-strict + static 1.0', () => {
    const c = parseFlowControl(undefined, new Map());
    expect(c.maxRequests).toBe(0);
    expect(c.maxBytes).toBe(0);
    expect(c.defaultRequestTtlMs).toBe(DEFAULT_REQUEST_TTL_MS);
    expect(c.noEndpointRequestTtlMs).toBe(60_000);
    expect([...c.bands.keys()]).toEqual([0]);
    const b0 = c.bands.get(0)!;
    expect(b0.maxRequests).toBe(DEFAULT_BAND_MAX_REQUESTS);
    expect(b0.maxBytes).toBe(DEFAULT_BAND_MAX_BYTES);
    expect(DEFAULT_BAND_MAX_REQUESTS).toBe(5000);
    expect(DEFAULT_BAND_MAX_BYTES).toBe(1_000_000_000);
    expect(b0.ordering).toBeInstanceOf(FcfsOrderingPolicy);
    expect(b0.fairness).toBeInstanceOf(GlobalStrictFairnessPolicy);
    expect(c.usageLimit).toBeInstanceOf(StaticUsageLimitPolicy);
    expect((c.usageLimit as StaticUsageLimitPolicy).threshold).toBe(1);
    expect(c.defaultNegativeBand).toBeUndefined();
    expect(c.enableEviction).toBe(false);
    expect(c.flowGcMs).toBe(FLOW_GC_MS);
    expect(c.bandGcMs).toBe(BAND_GC_MS);
    expect(BAND_GC_MS).toBe(2 * FLOW_GC_MS);
  });

  it('noEndpointRequestTTL follows defaultRequestTTL when unset ("0s" disables both), and is its own when set', () => {
    const only = parseFlowControl({ defaultRequestTTL: '0s' }, new Map());
    expect(only.defaultRequestTtlMs).toBe(0);
    expect(only.noEndpointRequestTtlMs).toBe(0);
    const follow = parseFlowControl({ defaultRequestTTL: '30s' }, new Map());
    expect(follow.noEndpointRequestTtlMs).toBe(30_000);
    const split = parseFlowControl({ defaultRequestTTL: '1m', noEndpointRequestTTL: '5m' }, new Map());
    expect(split.defaultRequestTtlMs).toBe(60_000);
    expect(split.noEndpointRequestTtlMs).toBe(300_000);
    const noEpOnly = parseFlowControl({ noEndpointRequestTTL: '0s' }, new Map());
    expect(noEpOnly.defaultRequestTtlMs).toBe(60_000);
    expect(noEpOnly.noEndpointRequestTtlMs).toBe(0);
  });

  it('bands: per-band limits ("0" is the system default, not zero), templates for unknown and negative priorities, band 0 always present', () => {
    const ps = plugins([{ type: 'edf-ordering-policy' }, { type: 'round-robin-fairness-policy', name: 'rr' }]);
    const c = parseFlowControl(
      {
        maxRequests: '1k',
        maxBytes: '1Gi',
        priorityBands: [
          { priority: 10, maxRequests: 50, maxBytes: '10Mi', orderingPolicyRef: 'edf-ordering-policy', fairnessPolicyRef: 'rr' },
          { priority: -5, maxRequests: '0' },
        ],
        defaultPriorityBand: { maxRequests: 200 },
        defaultNegativePriorityBand: { maxRequests: 3, fairnessPolicyRef: 'rr' },
      },
      ps,
    );
    expect(c.maxRequests).toBe(1000);
    expect(c.maxBytes).toBe(2 ** 30);
    expect([...c.bands.keys()].sort((a, b) => a - b)).toEqual([-5, 0, 10]);
    const b10 = c.bands.get(10)!;
    expect(b10.maxRequests).toBe(50);
    expect(b10.maxBytes).toBe(10 * 2 ** 20);
    expect(b10.ordering).toBeInstanceOf(EdfOrderingPolicy);
    expect(b10.fairness).toBe(ps.get('rr'));
    expect(c.bands.get(-5)!.maxRequests).toBe(5000);
    // Band 0 comes from the default template.
    expect(c.bands.get(0)!.maxRequests).toBe(200);
    expect(c.defaultBand.maxRequests).toBe(200);
    expect(c.defaultNegativeBand!.maxRequests).toBe(3);
    expect(c.defaultNegativeBand!.fairness).toBeInstanceOf(RoundRobinFairnessPolicy);
  });

  it('policies declared under their default names replace the injected ones', () => {
    const ps = plugins([{ type: 'static-usage-limit-policy', parameters: { threshold: 0.8 } }, { type: 'round-robin-fairness-policy', name: 'global-strict-fairness-policy' }]);
    const c = parseFlowControl({}, ps);
    expect((c.usageLimit as StaticUsageLimitPolicy).threshold).toBe(0.8);
    expect(c.bands.get(0)!.fairness).toBeInstanceOf(RoundRobinFairnessPolicy);
  });

  it('lists what llm-d warns it ignores with the gate off (not saturationDetector or enableEviction)', () => {
    expect(flowControlSettingsSet({ saturationDetector: { pluginRef: 'x' }, maxBytes: '1024', enableEviction: true })).toEqual(['maxBytes']);
    expect(flowControlSettingsSet(undefined)).toEqual([]);
  });
});

describe('flowControl section: value syntaxes', () => {
  it('reads Kubernetes quantities, rounding up', () => {
    expect(parseQuantity('100')).toBe(100);
    expect(parseQuantity(100)).toBe(100);
    expect(parseQuantity('1k')).toBe(1000);
    expect(parseQuantity('500M')).toBe(500_000_000);
    expect(parseQuantity('1Gi')).toBe(2 ** 30);
    expect(parseQuantity('1.5Ki')).toBe(1536);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity('100m')).toBe(1);
    expect(parseQuantity('-5')).toBe(-5);
    expect(() => parseQuantity('1 GB')).toThrow(/invalid quantity "1 GB"/);
    expect(() => parseQuantity(true)).toThrow(/must be a quantity/);
  });

  it('reads Go durations', () => {
    expect(parseGoDuration('60s')).toBe(60_000);
    expect(parseGoDuration('1m30s')).toBe(90_000);
    expect(parseGoDuration('0s')).toBe(0);
    expect(parseGoDuration('0')).toBe(0);
    expect(parseGoDuration('-1s')).toBe(-1000);
    expect(() => parseGoDuration('60')).toThrow(/invalid duration "60"/);
    expect(() => parseGoDuration(60)).toThrow(/must be a duration/);
  });
});

describe('flowControl section: errors name the field', () => {
  const cases: [string, unknown, string][] = [
    ['not a mapping', ['x'], 'test.yaml: flowControl must be a mapping'],
    ['unknown field', { maxRequest: 5 }, 'test.yaml: flowControl: unknown field "maxRequest" (allowed: maxBytes, maxRequests, defaultRequestTTL, noEndpointRequestTTL, defaultPriorityBand, defaultNegativePriorityBand, priorityBands, usageLimitPolicyPluginRef, saturationDetector, enableEviction)'],
    ['negative quantity', { maxBytes: '-1' }, 'test.yaml: flowControl: maxBytes must be non-negative, got -1'],
    ['bad quantity', { maxRequests: 'lots' }, 'test.yaml: flowControl: maxRequests: invalid quantity "lots" (e.g. 100, 1k, 500M, 1Gi)'],
    ['negative TTL', { defaultRequestTTL: '-5s' }, 'test.yaml: flowControl: defaultRequestTTL cannot be negative, got -5s'],
    ['TTL without unit', { noEndpointRequestTTL: '30' }, 'test.yaml: flowControl: noEndpointRequestTTL: invalid duration "30" (use a unit, e.g. 50ms, 2s, 1m)'],
    ['bands not a list', { priorityBands: { priority: 1 } }, 'test.yaml: flowControl: priorityBands must be a list'],
    ['band without priority', { priorityBands: [{ maxRequests: 5 }] }, 'test.yaml: flowControl: priorityBands[0]: "priority" is required'],
    ['fractional priority', { priorityBands: [{ priority: 1.5 }] }, 'test.yaml: flowControl: priorityBands[0]: "priority" must be an integer, got 1.5'],
    ['duplicate priority', { priorityBands: [{ priority: 7 }, { priority: 7 }] }, 'test.yaml: flowControl: priorityBands[1]: duplicate priority level 7'],
    ['unknown band field', { priorityBands: [{ priority: 1, maxRequest: 3 }] }, 'test.yaml: flowControl: priorityBands[0]: unknown field "maxRequest" (allowed: priority, maxBytes, maxRequests, fairnessPolicyRef, orderingPolicyRef)'],
    ['band limit negative', { defaultPriorityBand: { maxRequests: -3 } }, 'test.yaml: flowControl: defaultPriorityBand: maxRequests must be non-negative, got -3'],
    ['missing policy', { priorityBands: [{ priority: 100, orderingPolicyRef: 'non-existent-policy' }] }, 'test.yaml: flowControl: priorityBands[0]: orderingPolicyRef: plugin "non-existent-policy" not found (declare it under plugins; ordering policy plugins declared: edf)'],
    ['wrong policy kind', { priorityBands: [{ priority: 100, orderingPolicyRef: 'rr' }] }, 'test.yaml: flowControl: priorityBands[0]: orderingPolicyRef: plugin "rr" (round-robin-fairness-policy) is not an ordering policy'],
    ['fairness ref to an ordering policy', { defaultPriorityBand: { fairnessPolicyRef: 'edf' } }, 'test.yaml: flowControl: defaultPriorityBand: fairnessPolicyRef: plugin "edf" (edf-ordering-policy) is not a fairness policy'],
    ['usage limit ref to a scorer', { usageLimitPolicyPluginRef: 'queue-scorer' }, 'test.yaml: flowControl: usageLimitPolicyPluginRef: plugin "queue-scorer" (queue-scorer) is not a usage limit policy'],
    ['eviction not a boolean', { enableEviction: 'yes' }, 'test.yaml: flowControl: enableEviction must be true or false, got "yes"'],
  ];
  const ps = plugins([{ type: 'edf-ordering-policy', name: 'edf' }, { type: 'round-robin-fairness-policy', name: 'rr' }, { type: 'queue-scorer' }]);
  for (const [what, section, message] of cases) {
    it(what, () => {
      expect(errorOf(() => parseFlowControl(section, ps, 'test.yaml')).message).toBe(message);
    });
  }

  it('a plugin named like a default policy but of another kind is refused', () => {
    const ps2 = plugins([{ type: 'queue-scorer', name: 'fcfs-ordering-policy' }]);
    expect(errorOf(() => parseFlowControl({}, ps2, 'c')).message).toBe('c: flowControl: the plugin named "fcfs-ordering-policy" (queue-scorer) is used as the default ordering policy but is not one');
  });
});

describe('flow-control plugin parameters', () => {
  const make = (type: string, parameters?: unknown) => registry().create(type, type, parameters, ctx());

  it('priority-holdback-policy: minCeiling required, ranges checked, shape and domain enumerated', () => {
    expect(errorOf(() => make('priority-holdback-policy', {})).message).toBe('plugin "priority-holdback-policy" (priority-holdback-policy): parameter "minCeiling" is required (the ceiling of the lowest-priority band, in [0, 1))');
    expect(errorOf(() => make('priority-holdback-policy', { minCeiling: 1 })).message).toBe(
      'plugin "priority-holdback-policy" (priority-holdback-policy): "minCeiling" must be in [0, 1), got 1; "minCeiling" (1) must be less than "maxCeiling" (1)',
    );
    expect(errorOf(() => make('priority-holdback-policy', { minCeiling: 0.5, maxCeiling: 0.4 })).message).toBe('plugin "priority-holdback-policy" (priority-holdback-policy): "minCeiling" (0.5) must be less than "maxCeiling" (0.4)');
    expect(errorOf(() => make('priority-holdback-policy', { minCeiling: 0.2, shape: 'sigmoid' })).message).toBe('plugin "priority-holdback-policy" (priority-holdback-policy): parameter "shape" must be one of linear, got "sigmoid"');
    const p = make('priority-holdback-policy', { minCeiling: 0.4, maxCeiling: 0.9, domain: 'value' }) as PriorityHoldbackPolicy;
    expect([p.minCeiling, p.maxCeiling, p.domain]).toEqual([0.4, 0.9, 'value']);
  });

  it('soft-reflective-ceiling-policy takes no parameters', () => {
    expect(make('soft-reflective-ceiling-policy', {})).toBeInstanceOf(SoftReflectiveCeilingPolicy);
    expect(errorOf(() => make('soft-reflective-ceiling-policy', { period: 3 })).message).toBe('plugin "soft-reflective-ceiling-policy" (soft-reflective-ceiling-policy): unknown parameter "period" (it takes no parameters)');
  });

  it('program-aware-fairness: only the las strategy; lasDecayFactor is gone in v0.10', () => {
    const p = make('program-aware-fairness') as ProgramAwareFairness;
    expect(p.params).toEqual({ strategy: 'las', lasWeightService: 0.8, lasWeightHeadWait: 0.2, lasHalfLifeSeconds: 60, evictionTtlSeconds: 3600, evictionSweepSeconds: 300 });
    expect(errorOf(() => make('program-aware-fairness', { strategy: 'wfq' })).message).toBe('plugin "program-aware-fairness" (program-aware-fairness): parameter "strategy": unknown scoring strategy "wfq": only "las" is supported');
    expect(errorOf(() => make('program-aware-fairness', { evictionSweepSeconds: 0 })).message).toBe('plugin "program-aware-fairness" (program-aware-fairness): parameter "evictionSweepSeconds" must be > 0, got 0');
    expect(errorOf(() => make('program-aware-fairness', { lasDecayFactor: 0.9 })).message).toMatch(/unknown parameter "lasDecayFactor"/);
  });

  it('probabilistic-admitter: defaults 5 / 0.8 / 5 / 300, every parameter > 0, queueDepthThreshold an integer', () => {
    const a = make('probabilistic-admitter') as ProbabilisticAdmitter;
    expect(a.params).toEqual({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, power: 5, k: 300 });
    expect(errorOf(() => make('probabilistic-admitter', { k: 0 })).message).toBe('plugin "probabilistic-admitter" (probabilistic-admitter): parameter "k" must be > 0, got 0');
    expect(errorOf(() => make('probabilistic-admitter', { queueDepthThreshold: 2.5 })).message).toBe('plugin "probabilistic-admitter" (probabilistic-admitter): parameter "queueDepthThreshold" must be an integer, got 2.5');
  });

  it('ordering and fairness policies take no parameters', () => {
    for (const t of ['fcfs-ordering-policy', 'edf-ordering-policy', 'slo-deadline-ordering-policy', 'round-robin-fairness-policy', 'global-strict-fairness-policy']) {
      expect(errorOf(() => make(t, { x: 1 })).message).toBe(`plugin "${t}" (${t}): unknown parameter "x" (it takes no parameters)`);
    }
  });

  it('alpha policies need --allow-experimental-plugins under llm-d\'s API group, as in llm-d', () => {
    const c = { ...ctx(), allowExperimental: false };
    expect(errorOf(() => registry().create('soft-reflective-ceiling-policy', 's', undefined, c)).message).toMatch(/an alpha \(experimental\) plugin/);
    expect(errorOf(() => registry().create('priority-holdback-policy', 'p', { minCeiling: 0.1 }, c)).message).toMatch(/an alpha \(experimental\) plugin/);
    expect(registry().create('round-robin-fairness-policy', 'r', undefined, c)).toBeInstanceOf(RoundRobinFairnessPolicy);
  });
});

describe("llm-d's sample flow-control configs load unchanged", () => {
  const read = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');
  const HEAD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

  /** The whole config through llm-epp's loader (gate taken out: the loader still refuses it) and the flowControl section through parseFlowControl. */
  function load(name: string, text = read(name)) {
    const doc = parseConfigText(text, name);
    const gates = Array.isArray(doc.featureGates) ? doc.featureGates.filter((g) => g !== 'flowControl') : undefined;
    const loaded = loadConfig({ ...doc, featureGates: gates }, registry(), { pool: new Datastore(), log, metrics: undefined, random: () => 0.5, allowExperimental: true }, name);
    return { doc, loaded, fc: parseFlowControl(doc.flowControl, loaded.plugins, name) };
  }

  it('sim-program-aware-config.yaml: program-aware fairness in the default band', () => {
    const { doc, fc } = load('sim-program-aware-config.yaml');
    expect(doc.featureGates).toEqual(['flowControl']);
    expect(fc.defaultBand.fairness).toBeInstanceOf(ProgramAwareFairness);
    expect(fc.bands.get(0)!.fairness).toBe(fc.defaultBand.fairness);
    expect(fc.bands.get(0)!.ordering).toBeInstanceOf(FcfsOrderingPolicy);
  });

  it('soft-reflective-ceiling-epp-config.yaml: the usage limit policy by reference', () => {
    const { fc } = load('soft-reflective-ceiling-epp-config.yaml');
    expect(fc.usageLimit).toBeInstanceOf(SoftReflectiveCeilingPolicy);
  });

  it('probabilistic-admitter-epp-config.yaml: the admitter is a plugin; flowControl holds only the saturation detector', () => {
    const { loaded, fc } = load('probabilistic-admitter-epp-config.yaml');
    expect(loaded.plugins.get('probabilistic-admitter')).toBeInstanceOf(ProbabilisticAdmitter);
    expect(loaded.saturationDetector.type).toBe('utilization-detector');
    expect(fc.usageLimit).toBeInstanceOf(StaticUsageLimitPolicy);
  });

  it("the loader's flow-control configs: TTLs, byte limit, custom band policies", () => {
    const a = load('loader-flow-control.yaml').fc;
    expect([a.maxBytes, a.defaultRequestTtlMs, a.noEndpointRequestTtlMs]).toEqual([1024, 60_000, 300_000]);
    const inherited = load('loader-flow-control-inherited-ttl.yaml').fc;
    expect([inherited.defaultRequestTtlMs, inherited.noEndpointRequestTtlMs]).toEqual([0, 0]);
    const { loaded, fc } = load('loader-complex-flow-control.yaml');
    expect(fc.bands.get(100)!.ordering).toBe(loaded.plugins.get('customFCFS'));
    expect(fc.bands.get(100)!.fairness).toBe(loaded.plugins.get('customFairness'));
    const disabled = load('loader-flow-control-disabled.yaml');
    expect(disabled.fc.maxBytes).toBe(1024);
    expect(flowControlSettingsSet(disabled.doc.flowControl)).toEqual(['maxBytes']);
  });

  it("the loader's missing-policy config is refused, naming the policy", () => {
    expect(errorOf(() => load('loader-error-missing-policy.yaml')).message).toBe(
      'loader-error-missing-policy.yaml: flowControl: priorityBands[0]: orderingPolicyRef: plugin "non-existent-policy" not found (declare it under plugins; ordering policy plugins declared: none)',
    );
  });

  it('the README snippets (static threshold 0.8, priority holdback, program-aware with every parameter)', () => {
    const s = load('readme-static-usage-limit.yaml', HEAD + read('readme-static-usage-limit.yaml')).fc;
    expect((s.usageLimit as StaticUsageLimitPolicy).threshold).toBe(0.8);
    const h = load('readme-priority-holdback.yaml', HEAD + read('readme-priority-holdback.yaml')).fc.usageLimit as PriorityHoldbackPolicy;
    expect(h).toBeInstanceOf(PriorityHoldbackPolicy);
    expect([h.minCeiling, h.maxCeiling, h.domain]).toEqual([0.4, 0.9, 'rank']);
    const p = load('readme-program-aware.yaml', HEAD + read('readme-program-aware.yaml')).fc.defaultBand.fairness as ProgramAwareFairness;
    expect(p.params.lasHalfLifeSeconds).toBe(60);
  });
});
