// The flowControl section of an EndpointPickerConfig, read as llm-d Router
// v0.10 reads it (apix/config/v1alpha1 FlowControlConfig, the loader's
// flowcontrol.go, registry/config.go, controller/config.go): fields,
// defaults and checks, and the policy plugins each reference names. Every
// error names the field.
import type { Plugin } from '../scheduling/framework.ts';
import { FLOW_CONTROL_FIELDS, type LoadedConfig } from '../scheduling/config.ts';
import { ConfigError, isMap, strictKeys } from '../scheduling/params.ts';
import { FcfsOrderingPolicy, FCFS_ORDERING_POLICY } from './policies/fcfs.ts';
import { GlobalStrictFairnessPolicy, GLOBAL_STRICT_FAIRNESS_POLICY } from './policies/global-strict.ts';
import { StaticUsageLimitPolicy, STATIC_USAGE_LIMIT_POLICY } from './policies/static-usage-limit.ts';
import { parseGoDuration, parseQuantity } from './quantity.ts';
import { isFairnessPolicy, isOrderingPolicy, isUsageLimitPolicy, type FairnessPolicy, type OrderingPolicy, type UsageLimitPolicy } from './types.ts';

/** The feature gate that turns flow control on. */
export const FLOW_CONTROL_GATE = 'flowControl';
/** A priority band's fields. */
export const BAND_FIELDS = ['priority', 'maxBytes', 'maxRequests', 'fairnessPolicyRef', 'orderingPolicyRef'] as const;

/** Per-band limits when a band gives none (or "0"): llm-d's system defaults. */
export const DEFAULT_BAND_MAX_REQUESTS = 5000;
export const DEFAULT_BAND_MAX_BYTES = 1_000_000_000;
export const DEFAULT_REQUEST_TTL_MS = 60_000;
/** A flow with nothing queued is forgotten after this long; a band that is neither configured nor an objective's, after twice that. */
export const FLOW_GC_MS = 5 * 60_000;
export const BAND_GC_MS = 2 * FLOW_GC_MS;

export interface BandPolicy {
  readonly maxRequests: number;
  readonly maxBytes: number;
  readonly ordering: OrderingPolicy;
  readonly fairness: FairnessPolicy;
}

export interface BandConfig extends BandPolicy {
  readonly priority: number;
}

export interface FlowControlConfig {
  /** Across all bands; 0: no limit. */
  readonly maxRequests: number;
  readonly maxBytes: number;
  /** Queue-wait budget while the pool has endpoints, ms; 0: none. */
  readonly defaultRequestTtlMs: number;
  /** Queue-wait budget while the pool has no endpoints, ms; 0: none. */
  readonly noEndpointRequestTtlMs: number;
  /** Template for a priority no band is configured for. */
  readonly defaultBand: BandPolicy;
  /** Template for negative priorities; undefined: defaultBand. */
  readonly defaultNegativeBand: BandPolicy | undefined;
  /** The configured bands, priority 0 always among them. */
  readonly bands: ReadonlyMap<number, BandConfig>;
  readonly usageLimit: UsageLimitPolicy;
  /** Evict in-flight sheddable requests when higher-priority work is blocked by saturation. */
  readonly enableEviction: boolean;
  readonly flowGcMs: number;
  readonly bandGcMs: number;
}

function quantity(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  let n: number;
  try {
    n = parseQuantity(v);
  } catch (e) {
    throw new ConfigError(`${where}: ${(e as Error).message}`);
  }
  if (n < 0) throw new ConfigError(`${where} must be non-negative, got ${n}`);
  return n;
}

function duration(v: unknown, where: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  let ms: number;
  try {
    ms = parseGoDuration(v);
  } catch (e) {
    throw new ConfigError(`${where}: ${(e as Error).message}`);
  }
  if (ms < 0) throw new ConfigError(`${where} cannot be negative, got ${String(v).trim()}`);
  return ms;
}

/** The plugin `ref` names, which must be of the kind `is` accepts. */
function policyRef<T extends Plugin>(ref: unknown, where: string, plugins: ReadonlyMap<string, Plugin>, is: (p: Plugin) => p is T, kind: string): T {
  if (typeof ref !== 'string' || ref === '') throw new ConfigError(`${where} must name a plugin (a string), got ${JSON.stringify(ref)}`);
  const p = plugins.get(ref);
  if (!p) {
    const known = [...plugins.values()].filter(is).map((x) => x.name);
    throw new ConfigError(`${where}: plugin "${ref}" not found (declare it under plugins; ${kind.replace(/^an? /, '')} plugins declared: ${known.join(', ') || 'none'})`);
  }
  if (!is(p)) throw new ConfigError(`${where}: plugin "${ref}" (${p.type}) is not ${kind}`);
  return p;
}

/** The defaults llm-d injects by name when the config does not declare them. */
function defaultPolicy<T extends Plugin>(plugins: ReadonlyMap<string, Plugin>, name: string, is: (p: Plugin) => p is T, kind: string, make: () => T, where: string): T {
  const p = plugins.get(name);
  if (!p) return make();
  if (!is(p)) throw new ConfigError(`${where}: the plugin named "${name}" (${p.type}) is used as the default ${kind} but is not one`);
  return p;
}

interface Defaults {
  readonly ordering: OrderingPolicy;
  readonly fairness: FairnessPolicy;
}

function band(raw: unknown, where: string, plugins: ReadonlyMap<string, Plugin>, defaults: Defaults): BandPolicy & { priority: number | undefined } {
  if (!isMap(raw)) throw new ConfigError(`${where}: must be a mapping (priority, maxRequests, maxBytes, orderingPolicyRef, fairnessPolicyRef)`);
  strictKeys(raw, BAND_FIELDS, where);
  let priority: number | undefined;
  if (raw.priority !== undefined && raw.priority !== null) {
    if (typeof raw.priority !== 'number' || !Number.isSafeInteger(raw.priority)) throw new ConfigError(`${where}: "priority" must be an integer, got ${JSON.stringify(raw.priority)}`);
    priority = raw.priority;
  }
  const maxRequests = quantity(raw.maxRequests, `${where}: maxRequests`);
  const maxBytes = quantity(raw.maxBytes, `${where}: maxBytes`);
  const ordering = raw.orderingPolicyRef === undefined || raw.orderingPolicyRef === null || raw.orderingPolicyRef === '' ? defaults.ordering : policyRef(raw.orderingPolicyRef, `${where}: orderingPolicyRef`, plugins, isOrderingPolicy, 'an ordering policy');
  const fairness = raw.fairnessPolicyRef === undefined || raw.fairnessPolicyRef === null || raw.fairnessPolicyRef === '' ? defaults.fairness : policyRef(raw.fairnessPolicyRef, `${where}: fairnessPolicyRef`, plugins, isFairnessPolicy, 'a fairness policy');
  // "0" (or nothing) is the system default, not zero capacity: per-band limits are always bounded.
  return { priority, maxRequests: maxRequests || DEFAULT_BAND_MAX_REQUESTS, maxBytes: maxBytes || DEFAULT_BAND_MAX_BYTES, ordering, fairness };
}

/**
 * Read the `flowControl` section (undefined or null: every default) against
 * the configured plugins, by name. Policies the config does not declare
 * under their default names (fcfs-ordering-policy,
 * global-strict-fairness-policy, static-usage-limit-policy) are made here, as
 * llm-d injects them. `saturationDetector` is the config loader's to resolve
 * and is not read here. Throws ConfigError naming `source` and the field.
 */
export function parseFlowControl(section: unknown, plugins: ReadonlyMap<string, Plugin>, source = 'config'): FlowControlConfig {
  const where = `${source}: flowControl`;
  const fc: Record<string, unknown> = section === undefined || section === null ? {} : isMap(section) ? section : {};
  if (section !== undefined && section !== null && !isMap(section)) throw new ConfigError(`${where} must be a mapping`);
  strictKeys(fc, FLOW_CONTROL_FIELDS, where);

  const defaults: Defaults = {
    ordering: defaultPolicy(plugins, FCFS_ORDERING_POLICY, isOrderingPolicy, 'ordering policy', () => new FcfsOrderingPolicy(), where),
    fairness: defaultPolicy(plugins, GLOBAL_STRICT_FAIRNESS_POLICY, isFairnessPolicy, 'fairness policy', () => new GlobalStrictFairnessPolicy(), where),
  };

  const maxBytes = quantity(fc.maxBytes, `${where}: maxBytes`);
  const maxRequests = quantity(fc.maxRequests, `${where}: maxRequests`);
  const ttl = duration(fc.defaultRequestTTL, `${where}: defaultRequestTTL`);
  const noEndpointTtl = duration(fc.noEndpointRequestTTL, `${where}: noEndpointRequestTTL`);

  const template = (key: 'defaultPriorityBand' | 'defaultNegativePriorityBand'): BandPolicy | undefined => {
    const raw = fc[key];
    if (raw === undefined || raw === null) return undefined;
    const { maxRequests: r, maxBytes: b, ordering, fairness } = band(raw, `${where}: ${key}`, plugins, defaults);
    return { maxRequests: r, maxBytes: b, ordering, fairness };
  };
  const defaultBand: BandPolicy = template('defaultPriorityBand') ?? { maxRequests: DEFAULT_BAND_MAX_REQUESTS, maxBytes: DEFAULT_BAND_MAX_BYTES, ...defaults };
  const defaultNegativeBand = template('defaultNegativePriorityBand');

  const bands = new Map<number, BandConfig>();
  const rawBands = fc.priorityBands;
  if (rawBands !== undefined && rawBands !== null) {
    if (!Array.isArray(rawBands)) throw new ConfigError(`${where}: priorityBands must be a list`);
    rawBands.forEach((raw, i) => {
      const w = `${where}: priorityBands[${i}]`;
      const b = band(raw, w, plugins, defaults);
      if (b.priority === undefined) throw new ConfigError(`${w}: "priority" is required`);
      if (bands.has(b.priority)) throw new ConfigError(`${w}: duplicate priority level ${b.priority}`);
      bands.set(b.priority, { priority: b.priority, maxRequests: b.maxRequests, maxBytes: b.maxBytes, ordering: b.ordering, fairness: b.fairness });
    });
  }
  // Band 0 always exists, from the default template when not configured.
  if (!bands.has(0)) bands.set(0, { priority: 0, ...defaultBand });

  const usageLimit =
    fc.usageLimitPolicyPluginRef === undefined || fc.usageLimitPolicyPluginRef === null || fc.usageLimitPolicyPluginRef === ''
      ? defaultPolicy(plugins, STATIC_USAGE_LIMIT_POLICY, isUsageLimitPolicy, 'usage limit policy', () => new StaticUsageLimitPolicy(), where)
      : policyRef(fc.usageLimitPolicyPluginRef, `${where}: usageLimitPolicyPluginRef`, plugins, isUsageLimitPolicy, 'a usage limit policy');

  if (fc.enableEviction !== undefined && fc.enableEviction !== null && typeof fc.enableEviction !== 'boolean') {
    throw new ConfigError(`${where}: enableEviction must be true or false, got ${JSON.stringify(fc.enableEviction)}`);
  }

  const defaultRequestTtlMs = ttl ?? DEFAULT_REQUEST_TTL_MS;
  return {
    maxRequests,
    maxBytes,
    defaultRequestTtlMs,
    // Unset, the no-endpoint budget follows defaultRequestTTL (so "0s" disables both), else 60 s.
    noEndpointRequestTtlMs: noEndpointTtl ?? defaultRequestTtlMs,
    defaultBand,
    defaultNegativeBand,
    bands,
    usageLimit,
    enableEviction: fc.enableEviction === true,
    flowGcMs: FLOW_GC_MS,
    bandGcMs: BAND_GC_MS,
  };
}

/**
 * The flow control a loaded config asks for: its flowControl section read
 * against its plugins when the flowControl feature gate is on, else
 * undefined (legacy admission). Throws ConfigError naming `source`.
 */
export function flowControlOf(config: Pick<LoadedConfig, 'featureGates' | 'flowControl' | 'plugins'>, source = 'config'): FlowControlConfig | undefined {
  if (!config.featureGates[FLOW_CONTROL_GATE]) return undefined;
  return parseFlowControl(config.flowControl, config.plugins, source);
}
