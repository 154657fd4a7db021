// precise-prefix-cache-scorer (llm-d Router, deprecated there): the older
// one-plugin form of precise-prefix-cache-producer + prefix-cache-scorer.
// With a precise-prefix-cache-producer declared, it scores that producer's
// match and ignores its own parameters (with a warning); otherwise it runs a
// producer of its own built from its parameters. Either way the score is the
// share of the prompt's blocks, from the start, that the endpoint's engine
// reports holding (weighted by tier).
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, DataProducer, Plugin, PluginContext, PreRequest, ProfileResult, Scorer, StateKey } from '../src/scheduling/framework.ts';
import type { Params } from '../src/scheduling/params.ts';
import { prefixResult } from '../src/scheduling/producers/approx-prefix.ts';
import { PRECISE_PARAMS, PrecisePrefixProducer, preciseSettings } from '../src/scheduling/producers/precise-prefix.ts';
import { definePlugin } from '../src/scheduling/registry.ts';
import { prefixScores } from './prefix-cache-scorer.ts';

export class PrecisePrefixCacheScorer implements Scorer, DataProducer, PreRequest {
  readonly type = 'precise-prefix-cache-scorer';
  readonly category = 'affinity';
  readonly name: string;
  produces: readonly StateKey<unknown>[] = [];
  consumes: readonly StateKey<unknown>[] = [];
  producer!: PrecisePrefixProducer;
  #own: PrecisePrefixProducer | undefined;
  readonly #params: Params<typeof PRECISE_PARAMS>;
  readonly #given: boolean;
  readonly #ctx: PluginContext;

  constructor(name: string, params: Params<typeof PRECISE_PARAMS>, ctx: PluginContext, given: boolean) {
    this.name = name;
    this.#params = params;
    this.#ctx = ctx;
    this.#given = given;
  }

  link(plugins: ReadonlyMap<string, Plugin>): void {
    const declared = [...plugins.values()].find((p): p is PrecisePrefixProducer => p instanceof PrecisePrefixProducer && p.type === 'precise-prefix-cache-producer');
    if (declared) {
      if (this.#given) this.#ctx.log.warn({ plugin: this.name, producer: declared.name }, 'precise-prefix-cache-scorer: a precise-prefix-cache-producer is declared, so this scorer reads it and its own parameters are ignored');
      this.producer = declared;
    } else {
      this.#own = new PrecisePrefixProducer(this.type, this.name, preciseSettings(this.#params, `plugin "${this.name}" (precise-prefix-cache-scorer)`, this.#ctx.log), this.#ctx);
      this.producer = this.#own;
      this.produces = this.#own.produces;
    }
    this.consumes = [...(this.#own?.consumes ?? []), this.producer.matchKey];
  }

  checkConfig(plugins: ReadonlyMap<string, Plugin>): void {
    this.#own?.checkConfig(plugins);
  }

  async start(): Promise<void> {
    await this.#own?.start();
  }

  async stop(): Promise<void> {
    await this.#own?.stop();
  }

  produce(state: CycleState, candidates: readonly Endpoint[]): void {
    this.#own?.produce(state, candidates);
  }

  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void {
    this.#own?.preRequest(state, primary, results);
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    return prefixScores(prefixResult(state, this.producer.matchKey), endpoints);
  }
}

export const precisePrefixCacheScorer = definePlugin({
  type: 'precise-prefix-cache-scorer',
  description: 'Deprecated in llm-d: precise-prefix-cache-producer and prefix-cache-scorer in one plugin (reads a declared producer, else runs its own from these parameters).',
  deprecated: 'declare precise-prefix-cache-producer and prefix-cache-scorer with prefixMatchInfoProducerName: precise-prefix-cache-producer',
  params: PRECISE_PARAMS,
  create: (name, p, ctx, raw) => new PrecisePrefixCacheScorer(name, p, ctx, raw !== undefined && raw !== null && Object.keys(raw as object).length > 0),
});
