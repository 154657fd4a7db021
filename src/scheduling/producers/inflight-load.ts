// inflight-load-producer (llm-d Router): how much load a routed request puts
// on its endpoint until it finishes. llm-epp's director always counts
// requests and prompt tokens in flight per endpoint (active-request-scorer,
// token-load-scorer, utilization-filter read them); declaring this producer
// tunes the token charge as llm-d does: the prompt tokens the endpoint already
// holds in its prefix cache are not charged, and an estimate of the output
// tokens can be added. It also reports that load as llm-d does:
// llm_d_epp_inflight_requests / _tokens per endpoint, fairness id and
// priority, a series removed when its count returns to 0 (so their number is
// bounded by the requests in flight).
import type { Gauge } from 'prom-client';
import type { EppMetrics, InflightLabel } from '../../observability/metrics.ts';
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Plugin, PluginContext, ResponseComplete, ResponseReceived } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';
import { prefixMatchKey, prefixResult, isPrefixMatchProducer, type PrefixResult } from './approx-prefix.ts';
import type { StateKey } from '../framework.ts';

interface InflightOptions {
  readonly addEstimatedOutputTokens: boolean;
  readonly outputRatio: number;
  readonly maxEstimatedOutputTokens: number | undefined;
  readonly prefixMatchInfoProducerName: string | undefined;
}

type Labels = Record<InflightLabel, string>;

/** One request's charge, as reported: where, how many tokens, under which labels. */
interface Charge {
  endpoint: Endpoint;
  readonly tokens: number;
  readonly fairness: string;
  readonly priority: string;
}

/** The in-flight gauges' series: counted here so a series is removed when its last request ends. */
class InflightSeries {
  readonly #requests: Gauge<InflightLabel>;
  readonly #tokens: Gauge<InflightLabel>;
  readonly #producer: string;
  /** Live series by endpoint, fairness id and priority, with their labelled children (no label hashing per request). */
  readonly #live = new Map<string, { labels: Labels; requests: number; tokens: number; requestsChild: { set(v: number): void }; tokensChild: { set(v: number): void } }>();

  constructor(m: EppMetrics, producer: string) {
    this.#requests = m.inflightRequests;
    this.#tokens = m.inflightTokens;
    this.#producer = producer;
  }

  add(c: Charge, sign: 1 | -1): void {
    const key = `${c.endpoint.key}\0${c.fairness}\0${c.priority}`;
    let s = this.#live.get(key);
    if (!s) {
      if (sign < 0) return;
      const labels: Labels = { endpoint_name: c.endpoint.name, namespace: c.endpoint.namespace, producer_name: this.#producer, fairness_id: c.fairness, priority: c.priority };
      s = { labels, requests: 0, tokens: 0, requestsChild: this.#requests.labels(labels), tokensChild: this.#tokens.labels(labels) };
      this.#live.set(key, s);
    }
    s.requests += sign;
    s.tokens += sign * c.tokens;
    if (s.requests <= 0) {
      this.#live.delete(key);
      this.#requests.remove(s.labels);
      this.#tokens.remove(s.labels);
      return;
    }
    s.requestsChild.set(s.requests);
    s.tokensChild.set(Math.max(0, s.tokens));
  }
}

export class InflightLoadProducer implements Plugin, ResponseReceived, ResponseComplete {
  readonly type = 'inflight-load-producer';
  readonly name: string;
  readonly #o: InflightOptions;
  #prefixKey: StateKey<PrefixResult> | undefined;
  readonly #metrics: EppMetrics | undefined;
  readonly #series: InflightSeries | undefined;
  /** Each routed request's charge until it completes (per-request state, gone with the request). */
  readonly #charges = new WeakMap<CycleState, Charge>();

  constructor(name: string, o: InflightOptions, ctx?: Pick<PluginContext, 'metrics'>) {
    this.name = name;
    this.#o = o;
    this.#metrics = ctx?.metrics;
    this.#series = ctx?.metrics ? new InflightSeries(ctx.metrics, name) : undefined;
  }

  link(plugins: ReadonlyMap<string, Plugin>): void {
    const wanted = this.#o.prefixMatchInfoProducerName;
    if (wanted === undefined) return;
    const p = plugins.get(wanted);
    if (p && !isPrefixMatchProducer(p)) throw new ConfigError(`plugin "${this.name}" (inflight-load-producer): prefixMatchInfoProducerName "${wanted}" names a ${p.type}, not a prefix producer`);
    this.#prefixKey = prefixMatchKey(wanted);
  }

  /** Tokens charged to `primary` for this request: uncached prompt tokens (+ estimated output). */
  chargedTokens(state: CycleState, primary: Endpoint, promptTokens: number): number {
    let tokens = promptTokens;
    const r = prefixResult(state, this.#prefixKey);
    if (r && r.total > 0) tokens -= Math.min(promptTokens, (r.matched.get(primary.key) ?? 0) * r.blockTokens);
    if (this.#o.addEstimatedOutputTokens) {
      let out = Math.round(promptTokens * this.#o.outputRatio);
      const body = state.request.parsed?.body;
      const cap = body && (body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens);
      if (typeof cap === 'number' && cap >= 0) out = Math.min(out, cap);
      if (this.#o.maxEstimatedOutputTokens !== undefined) out = Math.min(out, this.#o.maxEstimatedOutputTokens);
      tokens += out;
    }
    tokens = Math.max(0, tokens);
    const m = this.#metrics;
    if (m && this.#series) {
      const c: Charge = { endpoint: primary, tokens, fairness: m.fairnessLabel(state.request.fairnessId), priority: String(state.request.priority) };
      this.#charges.set(state, c);
      this.#series.add(c, 1);
    }
    return tokens;
  }

  /** The gateway says another endpoint served (a fallback): the load moves there, as the director's counts do. */
  responseReceived(state: CycleState, served: Endpoint): [string, string][] {
    const c = this.#charges.get(state);
    if (c && c.endpoint !== served) {
      this.#series!.add(c, -1);
      c.endpoint = served;
      this.#series!.add(c, 1);
    }
    return [];
  }

  responseComplete(state: CycleState): void {
    const c = this.#charges.get(state);
    if (!c) return;
    this.#charges.delete(state);
    this.#series!.add(c, -1);
  }
}

export function isInflightLoadProducer(p: Plugin): p is InflightLoadProducer {
  return p instanceof InflightLoadProducer;
}

export const inflightLoadProducer = definePlugin({
  type: 'inflight-load-producer',
  description: 'Tunes the in-flight token charge llm-epp keeps per endpoint: cached prefix tokens are not charged, and estimated output tokens can be added (active-request-scorer, token-load-scorer and utilization-filter read the counts); reports them as llm_d_epp_inflight_requests / _tokens per endpoint, fairness id and priority.',
  params: {
    addEstimatedOutputTokens: { type: 'boolean', default: false, doc: 'Also charge round(prompt tokens × outputRatio) output tokens, capped by the request\'s max_tokens / max_completion_tokens / max_output_tokens.' },
    outputRatio: { type: 'number', exclusiveMin: 0, default: 1.5, doc: 'Estimated output-to-input token ratio.' },
    maxEstimatedOutputTokens: { type: 'number', integer: true, min: 0, doc: 'Cap on the estimated output tokens per request.' },
    prefixMatchInfoProducerName: { type: 'string', doc: 'Prefix producer whose match discounts cached prompt tokens (default: the config\'s prefix producer).' },
    syncCrossReplicaState: { type: 'boolean', default: false, doc: 'llm-d: share in-flight counts between active-active replicas through its peer syncer, which llm-epp does not implement; llm-epp shares them with --state-sync (and between --workers always), so only false is accepted.' },
  },
  create: (name, p, ctx) => {
    if (p.syncCrossReplicaState) throw new ConfigError(`plugin "${name}" (inflight-load-producer): syncCrossReplicaState: llm-d\'s peer syncer is not implemented in llm-epp; in-flight load is shared between replicas by --state-sync=redis://… (and between --workers always): remove syncCrossReplicaState`);
    return new InflightLoadProducer(name, p, ctx);
  },
});
