// Per-engine metric mapping, after GAIE 1.5 / llm-d's core-metrics-extractor: a pod label
// names the engine, the engine names the Prometheus series that carry the scheduling
// signals (queue, running, KV usage, LoRA, cache geometry).
import type { LoraInfo, ModelServerMetrics } from '../pool/endpoint.ts';
import type { Sample } from './prom-text.ts';

export type { LoraInfo, ModelServerMetrics };

/** A series selector `name{label="value",…}`; label matchers are equality only. */
export interface MetricSpec {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** Where block size and block count come from: labels of an info gauge, or two gauges. */
export type CacheInfoSpec =
  | {
      readonly kind: 'labels';
      readonly metric: MetricSpec;
      readonly blockSizeLabel: string;
      readonly numBlocksLabel: string;
    }
  | { readonly kind: 'gauges'; readonly blockSize: MetricSpec; readonly numBlocks: MetricSpec };

export interface EngineMapping {
  readonly name: string;
  readonly waiting: MetricSpec;
  readonly running: MetricSpec;
  /** Tried in order, the first present wins (deprecated fallbacks last). Empty: the engine
   * has no KV gauge and kvCacheUsage is reported as 0. */
  readonly kvUsage: readonly MetricSpec[];
  readonly lora?: MetricSpec;
  readonly cacheInfo?: CacheInfoSpec;
  /** customMetrics: scalar series read into endpoint attributes (ModelServerMetrics.custom). */
  readonly custom?: readonly { readonly key: string; readonly spec: MetricSpec }[];
}

/** Thrown by extractMetrics when a required signal is missing from the page. */
export class MissingMetricError extends Error {
  /** The selector that was looked for, e.g. 'vllm:num_requests_waiting'. */
  readonly metric: string;
  readonly engine: string;

  constructor(engine: string, metric: string, detail: string) {
    super(`engine "${engine}": metric ${metric} ${detail}`);
    this.name = 'MissingMetricError';
    this.metric = metric;
    this.engine = engine;
  }
}

/**
 * Pod labels naming the engine, in precedence order: llm-d Router v0.10's key
 * first, GAIE's as the fallback it still reads (its PR #922).
 */
export const ENGINE_TYPE_LABELS: readonly string[] = Object.freeze([
  'llm-d.ai/engine-type',
  'inference.networking.k8s.io/engine-type',
]);

export const DEFAULT_ENGINE = 'vllm';

function spec(name: string, labels?: Record<string, string>): MetricSpec {
  return labels === undefined ? Object.freeze({ name }) : Object.freeze({ name, labels: Object.freeze(labels) });
}

function engine(m: EngineMapping): EngineMapping {
  const cacheInfo = m.cacheInfo === undefined ? undefined : Object.freeze({ ...m.cacheInfo });
  return Object.freeze({ ...m, kvUsage: Object.freeze([...m.kvUsage]), cacheInfo });
}

const VLLM = engine({
  name: 'vllm',
  waiting: spec('vllm:num_requests_waiting'),
  running: spec('vllm:num_requests_running'),
  // kv_cache_usage_perc since v0.9.2; older pods only have the deprecated gpu_* name.
  kvUsage: [spec('vllm:kv_cache_usage_perc'), spec('vllm:gpu_cache_usage_perc')],
  lora: spec('vllm:lora_requests_info'),
  cacheInfo: {
    kind: 'labels',
    metric: spec('vllm:cache_config_info'),
    blockSizeLabel: 'block_size',
    numBlocksLabel: 'num_gpu_blocks',
  },
});

const BUILTIN: ReadonlyMap<string, EngineMapping> = new Map<string, EngineMapping>([
  ['vllm', VLLM],
  [
    'sglang',
    engine({
      name: 'sglang',
      waiting: spec('sglang:num_queue_reqs'),
      running: spec('sglang:num_running_reqs'),
      kvUsage: [spec('sglang:token_usage')],
      // sglang:cache_config_info is what llm-d reads; older SGLang does not emit it.
      cacheInfo: {
        kind: 'labels',
        metric: spec('sglang:cache_config_info'),
        blockSizeLabel: 'page_size',
        numBlocksLabel: 'num_pages',
      },
    }),
  ],
  [
    'trtllm-serve',
    engine({
      name: 'trtllm-serve',
      waiting: spec('trtllm_num_requests_waiting'),
      running: spec('trtllm_num_requests_running'),
      kvUsage: [spec('trtllm_kv_cache_utilization')],
      // llm-d's gauges; GAIE PR #2713 names trtllm_cache_config_info instead (sources differ).
      cacheInfo: {
        kind: 'gauges',
        blockSize: spec('trtllm_kv_cache_tokens_per_block'),
        numBlocks: spec('trtllm_kv_cache_max_blocks'),
      },
    }),
  ],
  [
    'triton-tensorrt-llm',
    engine({
      name: 'triton-tensorrt-llm',
      waiting: spec('nv_trt_llm_request_metrics', { request_type: 'waiting' }),
      running: spec('nv_trt_llm_request_metrics', { request_type: 'scheduled' }),
      kvUsage: [spec('nv_trt_llm_kv_cache_block_metrics', { kv_cache_block_type: 'fraction' })],
      cacheInfo: {
        kind: 'gauges',
        blockSize: spec('nv_trt_llm_kv_cache_block_metrics', { kv_cache_block_type: 'tokens_per' }),
        numBlocks: spec('nv_trt_llm_kv_cache_block_metrics', { kv_cache_block_type: 'max' }),
      },
    }),
  ],
  [
    'tgi',
    engine({
      name: 'tgi',
      waiting: spec('tgi_queue_size'),
      running: spec('tgi_batch_current_size'),
      // TGI exposes no KV-utilisation gauge (tgi_batch_current_max_tokens is only a proxy
      // with no known capacity to divide by), so kvCacheUsage is always 0: KV-aware scorers
      // see every TGI pod as empty and fall back on queue/running signals.
      kvUsage: [],
    }),
  ],
]);

/** Built-in engines by name (vllm, sglang, trtllm-serve, triton-tensorrt-llm, tgi). */
export const ENGINES: ReadonlyMap<string, EngineMapping> = BUILTIN;

/** Built-in mapping for an engine name; undefined when the name is unknown. */
export function getEngine(name: string): EngineMapping | undefined {
  return BUILTIN.get(name);
}

/** The engine-type label value of a pod (first of ENGINE_TYPE_LABELS that is set and not
 * empty), or DEFAULT_ENGINE. Returned raw so callers can report unknown engines. */
export function engineNameForLabels(labels: Readonly<Record<string, string>>): string {
  for (const key of ENGINE_TYPE_LABELS) {
    const v = Object.hasOwn(labels, key) ? labels[key] : undefined;
    if (v !== undefined && v !== '') return v;
  }
  return DEFAULT_ENGINE;
}

/** Mapping for a pod. Unknown engine names fall back to vLLM (as GAIE does); use
 * engineNameForLabels + getEngine to detect that case. */
export function engineForLabels(labels: Readonly<Record<string, string>>): EngineMapping {
  return BUILTIN.get(engineNameForLabels(labels)) ?? VLLM;
}

const wantedCache = new WeakMap<EngineMapping, ReadonlySet<string>>();

/** Sample names to pass to parsePrometheusText for this engine (cached per mapping). */
export function wantedMetricNames(engine: EngineMapping): ReadonlySet<string> {
  let set = wantedCache.get(engine);
  if (set === undefined) {
    const names = new Set<string>([engine.waiting.name, engine.running.name]);
    for (const s of engine.kvUsage) names.add(s.name);
    if (engine.lora !== undefined) names.add(engine.lora.name);
    for (const c of engine.custom ?? []) names.add(c.spec.name);
    const ci = engine.cacheInfo;
    if (ci !== undefined) {
      if (ci.kind === 'labels') names.add(ci.metric.name);
      else {
        names.add(ci.blockSize.name);
        names.add(ci.numBlocks.name);
      }
    }
    set = names;
    wantedCache.set(engine, set);
  }
  return set;
}

/** `name{a="x",b="y"}` for messages. */
export function formatMetricSpec(s: MetricSpec): string {
  if (s.labels === undefined) return s.name;
  const parts = Object.entries(s.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return parts.length === 0 ? s.name : `${s.name}{${parts.join(',')}}`;
}

/**
 * Parse a GAIE-style selector: `family`, `family{label=value}` or `family{label="value",…}`.
 * Equality matchers only. Returns undefined for '' (GAIE: the empty spec disables a metric);
 * throws on anything else it cannot read.
 */
export function parseMetricSpec(text: string): MetricSpec | undefined {
  const s = text.trim();
  if (s === '') return undefined;
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?$/s.exec(s);
  if (m === null) throw new Error(`invalid metric spec ${JSON.stringify(text)}: expected name{label=value,...}`);
  const body = m[2]?.trim();
  if (body === undefined || body === '') return spec(m[1]);
  const labels: Record<string, string> = {};
  // An unquoted value may not start with "~" (a =~ regex matcher) or "=" (==).
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,"\s~=][^,"\s]*|))\s*(,|$)/gy;
  let consumed = 0;
  for (let mm = re.exec(body); mm !== null && consumed < body.length; mm = re.exec(body)) {
    const raw = mm[2] !== undefined ? mm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)) : mm[3];
    if (Object.hasOwn(labels, mm[1])) throw new Error(`invalid metric spec ${JSON.stringify(text)}: label ${mm[1]} twice`);
    labels[mm[1]] = raw;
    consumed = re.lastIndex;
    if (mm[4] === '') break;
  }
  if (consumed !== body.length) {
    throw new Error(`invalid metric spec ${JSON.stringify(text)}: only equality matchers label=value are supported`);
  }
  return spec(m[1], labels);
}

function matches(sample: Sample, s: MetricSpec): boolean {
  const want = s.labels;
  if (want === undefined) return true;
  for (const k in want) {
    if (sample.labels[k] !== want[k] || !Object.hasOwn(sample.labels, k)) return false;
  }
  return true;
}

/**
 * Combine the series matching `s`: the max within one `engine` label value (several series
 * of one engine, e.g. SGLang tp_rank, describe the same queue and must not be added), then
 * the sum (queue, running) or max (KV) across engine values (vLLM data parallelism: one
 * engine core per value). NaN samples are ignored. undefined when nothing usable matched.
 */
function aggregate(samples: Map<string, Sample[]>, s: MetricSpec, across: 'sum' | 'max'): number | undefined {
  const list = samples.get(s.name);
  if (list === undefined) return undefined;
  // Few engines per pod: parallel arrays beat a Map here.
  const keys: string[] = [];
  const maxes: number[] = [];
  for (const smp of list) {
    const v = smp.value;
    if (v !== v || !matches(smp, s)) continue;
    const key = Object.hasOwn(smp.labels, 'engine') ? smp.labels.engine : '';
    const idx = keys.indexOf(key);
    if (idx < 0) {
      keys.push(key);
      maxes.push(v);
    } else if (v > maxes[idx]) {
      maxes[idx] = v;
    }
  }
  if (keys.length === 0) return undefined;
  let total = maxes[0];
  for (let i = 1; i < maxes.length; i++) total = across === 'sum' ? total + maxes[i] : Math.max(total, maxes[i]);
  return total;
}

function missing(engine: EngineMapping, samples: Map<string, Sample[]>, all: readonly MetricSpec[]): MissingMetricError {
  const primary = formatMetricSpec(all[0]);
  const alts = all.slice(1).map(formatMetricSpec);
  const present = all.some((x) => (samples.get(x.name)?.length ?? 0) > 0);
  const detail =
    (alts.length > 0 ? `(nor its fallback ${alts.join(', ')}) ` : '') +
    (present ? 'has no series with matching labels and a numeric value' : 'is not on the metrics page');
  return new MissingMetricError(engine.name, primary, detail);
}

/** Integer ≥ 0 from a label string; undefined for '', 'None' and anything not an integer. */
function intFromLabel(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (t === '' || t === 'None') return undefined;
  const n = Number(t);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

function firstMatch(samples: Map<string, Sample[]>, s: MetricSpec): Sample | undefined {
  const list = samples.get(s.name);
  if (list === undefined) return undefined;
  for (const smp of list) if (matches(smp, s)) return smp;
  return undefined;
}

function splitAdapters(v: string | undefined): string[] {
  if (v === undefined || v === '') return [];
  const out: string[] = [];
  for (const part of v.split(',')) {
    const t = part.trim();
    if (t !== '') out.push(t);
  }
  return out;
}

/**
 * Read the scheduling signals of one pod from a parsed page. Throws MissingMetricError
 * naming the metric when the queue, running or KV metric is absent; LoRA and cache geometry
 * are optional and left undefined when absent.
 */
export function extractMetrics(engine: EngineMapping, samples: Map<string, Sample[]>): ModelServerMetrics {
  const waiting = aggregate(samples, engine.waiting, 'sum');
  if (waiting === undefined) throw missing(engine, samples, [engine.waiting]);
  const running = aggregate(samples, engine.running, 'sum');
  if (running === undefined) throw missing(engine, samples, [engine.running]);

  let kv: number | undefined = 0;
  if (engine.kvUsage.length > 0) {
    kv = undefined;
    for (const s of engine.kvUsage) {
      kv = aggregate(samples, s, 'max');
      if (kv !== undefined) break;
    }
    if (kv === undefined) throw missing(engine, samples, engine.kvUsage);
  }

  const out: ModelServerMetrics = { waitingQueueSize: waiting, runningRequests: running, kvCacheUsage: kv };

  if (engine.lora !== undefined) {
    // The value is the time of the last update and stale label combinations are never
    // removed, so the series with the largest value is the current one.
    const list = samples.get(engine.lora.name);
    let best: Sample | undefined;
    if (list !== undefined) {
      for (const smp of list) {
        if (!matches(smp, engine.lora) || smp.value !== smp.value) continue;
        if (best === undefined || smp.value > best.value) best = smp;
      }
    }
    if (best !== undefined) {
      out.lora = {
        // Missing or unparsable max_lora: 0 (no known capacity) rather than failing the scrape.
        maxActiveModels: intFromLabel(best.labels.max_lora) ?? 0,
        activeModels: splitAdapters(best.labels.running_lora_adapters),
        waitingModels: splitAdapters(best.labels.waiting_lora_adapters),
      };
    }
  }

  const ci = engine.cacheInfo;
  if (ci !== undefined) {
    let blockSize: number | undefined;
    let numBlocks: number | undefined;
    if (ci.kind === 'labels') {
      // One series per engine under DP; their configs are identical, take the first.
      const smp = firstMatch(samples, ci.metric);
      if (smp !== undefined) {
        blockSize = intFromLabel(Object.hasOwn(smp.labels, ci.blockSizeLabel) ? smp.labels[ci.blockSizeLabel] : undefined);
        numBlocks = intFromLabel(Object.hasOwn(smp.labels, ci.numBlocksLabel) ? smp.labels[ci.numBlocksLabel] : undefined);
      }
    } else {
      const b = firstMatch(samples, ci.blockSize)?.value;
      const n = firstMatch(samples, ci.numBlocks)?.value;
      if (b !== undefined && Number.isFinite(b) && b >= 0) blockSize = b;
      if (n !== undefined && Number.isFinite(n) && n >= 0) numBlocks = n;
    }
    if (blockSize !== undefined) out.cacheBlockSize = blockSize;
    if (numBlocks !== undefined) out.cacheNumGpuBlocks = numBlocks;
  }
  if (engine.custom !== undefined && engine.custom.length > 0) {
    // Optional: a series absent from the page leaves its attribute unknown.
    const custom: Record<string, number> = {};
    for (const c of engine.custom) {
      const v = firstMatch(samples, c.spec)?.value;
      if (v !== undefined && Number.isFinite(v)) custom[c.key] = v;
    }
    out.custom = custom;
  }
  return out;
}

/** One `core-metrics-extractor` engineConfigs entry (GAIE / llm-d field names). */
export interface EngineConfigEntry {
  name: string;
  queuedRequestsSpec?: string;
  runningRequestsSpec?: string;
  kvUsageSpec?: string;
  loraSpec?: string;
  cacheInfoSpec?: string;
  customMetrics?: { attributeKey: string; metricSpec: string }[];
}

/**
 * An engine mapping from a config entry. Fields left out keep the built-in engine of the
 * same name (when there is one); "" disables an optional signal (KV use, LoRA, cache info).
 * Queue and running specs are required for a new engine name.
 */
export function engineFromConfig(c: EngineConfigEntry): EngineMapping {
  const base = BUILTIN.get(c.name);
  const where = `engineConfigs "${c.name}"`;
  const required = (text: string | undefined, fallback: MetricSpec | undefined, field: string): MetricSpec => {
    const s = text === undefined ? fallback : parseMetricSpec(text);
    if (s === undefined) throw new Error(`${where}: ${field} is required${text === '' ? ' (it cannot be disabled)' : ''}`);
    return s;
  };
  const cacheInfo = (): CacheInfoSpec | undefined => {
    if (c.cacheInfoSpec === undefined) return base?.cacheInfo;
    const s = parseMetricSpec(c.cacheInfoSpec);
    // GAIE reads block_size / num_gpu_blocks labels of the info gauge.
    return s === undefined ? undefined : { kind: 'labels', metric: s, blockSizeLabel: 'block_size', numBlocksLabel: 'num_gpu_blocks' };
  };
  let kvUsage: readonly MetricSpec[] = base?.kvUsage ?? [];
  if (c.kvUsageSpec !== undefined) {
    const s = parseMetricSpec(c.kvUsageSpec);
    kvUsage = s === undefined ? [] : [s];
  }
  const m: EngineMapping = {
    name: c.name,
    waiting: required(c.queuedRequestsSpec, base?.waiting, 'queuedRequestsSpec'),
    running: required(c.runningRequestsSpec, base?.running, 'runningRequestsSpec'),
    kvUsage,
    lora: c.loraSpec === undefined ? base?.lora : parseMetricSpec(c.loraSpec),
    cacheInfo: cacheInfo(),
    custom: (c.customMetrics ?? []).map((cm, i) => {
      const s = parseMetricSpec(cm.metricSpec);
      if (s === undefined) throw new Error(`${where}: customMetrics[${i}]: metricSpec is empty`);
      return { key: cm.attributeKey, spec: s };
    }),
  };
  return engine(m);
}

/** Which engine mapping a pod uses: its engine-type label, a default, custom engines. */
export class EngineResolver {
  readonly labelKeys: readonly string[];
  readonly defaultEngine: string;
  readonly #engines: ReadonlyMap<string, EngineMapping>;

  constructor(o: { labelKeys?: readonly string[]; defaultEngine?: string; engines?: readonly EngineMapping[] } = {}) {
    this.labelKeys = o.labelKeys ?? ENGINE_TYPE_LABELS;
    const engines = new Map(BUILTIN);
    for (const e of o.engines ?? []) engines.set(e.name, e);
    this.#engines = engines;
    this.defaultEngine = o.defaultEngine ?? DEFAULT_ENGINE;
    if (!engines.has(this.defaultEngine)) throw new Error(`defaultEngine "${this.defaultEngine}" is not a known engine (${[...engines.keys()].join(', ')})`);
  }

  /** The mapping for a pod; `unknown` is set when its label names no engine (the default is used, as GAIE does). */
  forLabels(labels: Readonly<Record<string, string>>): { engine: EngineMapping; unknown?: string } {
    for (const key of this.labelKeys) {
      const v = Object.hasOwn(labels, key) ? labels[key] : undefined;
      if (v === undefined || v === '') continue;
      const e = this.#engines.get(v);
      return e ? { engine: e } : { engine: this.#engines.get(this.defaultEngine)!, unknown: v };
    }
    return { engine: this.#engines.get(this.defaultEngine)! };
  }
}
