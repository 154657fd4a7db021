// inflight-load-producer (llm-d Router): how much load a routed request puts
// on its endpoint until it finishes. llm-epp's director always counts
// requests and prompt tokens in flight per endpoint (active-request-scorer,
// token-load-scorer, utilization-filter read them); declaring this producer
// tunes the token charge as llm-d does: the prompt tokens the endpoint already
// holds in its prefix cache are not charged, and an estimate of the output
// tokens can be added.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Plugin } from '../framework.ts';
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

export class InflightLoadProducer implements Plugin {
  readonly type = 'inflight-load-producer';
  readonly name: string;
  readonly #o: InflightOptions;
  #prefixKey: StateKey<PrefixResult> | undefined;

  constructor(name: string, o: InflightOptions) {
    this.name = name;
    this.#o = o;
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
    return Math.max(0, tokens);
  }
}

export function isInflightLoadProducer(p: Plugin): p is InflightLoadProducer {
  return p instanceof InflightLoadProducer;
}

export const inflightLoadProducer = definePlugin({
  type: 'inflight-load-producer',
  description: 'Tunes the in-flight token charge llm-epp keeps per endpoint: cached prefix tokens are not charged, and estimated output tokens can be added (active-request-scorer, token-load-scorer and utilization-filter read the counts).',
  params: {
    addEstimatedOutputTokens: { type: 'boolean', default: false, doc: 'Also charge round(prompt tokens × outputRatio) output tokens, capped by the request\'s max_tokens / max_completion_tokens / max_output_tokens.' },
    outputRatio: { type: 'number', exclusiveMin: 0, default: 1.5, doc: 'Estimated output-to-input token ratio.' },
    maxEstimatedOutputTokens: { type: 'number', integer: true, min: 0, doc: 'Cap on the estimated output tokens per request.' },
    prefixMatchInfoProducerName: { type: 'string', doc: 'Prefix producer whose match discounts cached prompt tokens (default: the config\'s prefix producer).' },
    syncCrossReplicaState: { type: 'boolean', default: false, doc: 'llm-d: share in-flight counts between active-active replicas; not implemented in llm-epp yet, so only false is accepted.' },
  },
  create: (name, p) => {
    if (p.syncCrossReplicaState) throw new ConfigError(`plugin "${name}" (inflight-load-producer): syncCrossReplicaState: sharing state between active-active replicas is not implemented in llm-epp yet`);
    return new InflightLoadProducer(name, p);
  },
});
