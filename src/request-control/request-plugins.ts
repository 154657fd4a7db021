// The request-control extension points of the configured plugins, in the
// order a request meets them: the saturation detector (admission), data
// producers (before scheduling), admission plugins, PreRequest
// (after the pick, before the request is forwarded), ResponseReceived (the
// response's headers) and ResponseComplete (the request is over). Each call
// is guarded — a throwing plugin is logged and skipped, never failing the
// request — and timed into inference_extension_plugin_duration_seconds.
import type { Endpoint } from '../pool/endpoint.ts';
import {
  isAdmitter,
  isAsyncDataProducer,
  isPreRequest,
  isResponseComplete,
  isResponseReceived,
  type Admitter,
  type AsyncDataProducer,
  type CycleState,
  type DataProducer,
  type Plugin,
  type PreRequest,
  type ProfileResult,
  type ResponseComplete,
  type ResponseReceived,
  type SaturationDetector,
} from '../scheduling/framework.ts';
import type { PluginTimer } from '../scheduling/plugin-timer.ts';
import { producerOrder } from '../scheduling/producer-order.ts';
import { isInflightLoadProducer, type InflightLoadProducer } from '../scheduling/producers/inflight-load.ts';

export class RequestPlugins {
  readonly #producers: DataProducer[];
  readonly #async: AsyncDataProducer[];
  readonly #preRequest: PreRequest[];
  readonly #received: ResponseReceived[];
  readonly #complete: ResponseComplete[];
  readonly #timer: PluginTimer;
  readonly #saturation: SaturationDetector | undefined;
  readonly #inflight: InflightLoadProducer | undefined;
  readonly #admitters: Admitter[];

  constructor(plugins: Iterable<Plugin>, timer: PluginTimer, saturation?: SaturationDetector) {
    this.#saturation = saturation;
    const all = [...plugins];
    this.#producers = producerOrder(all);
    this.#async = this.#producers.filter(isAsyncDataProducer);
    this.#preRequest = all.filter(isPreRequest);
    this.#received = all.filter(isResponseReceived);
    this.#complete = all.filter(isResponseComplete);
    this.#inflight = all.find(isInflightLoadProducer);
    this.#admitters = all.filter(isAdmitter);
    this.#timer = timer;
  }

  /** Pool saturation (≥ 1 saturated) over the candidates; 0 without a detector. Not guarded: admission must not guess. */
  saturation(candidates: readonly Endpoint[]): number {
    const d = this.#saturation;
    return d ? this.#timer.timed('SaturationDetector', d, () => d.saturation(candidates)) : 0;
  }

  /** Whether some producer may make a request wait (prepare()). */
  get hasAsync(): boolean {
    return this.#async.length > 0;
  }

  /**
   * The async producers' prepare(), one after the other in dependency order
   * (a burst window waits for the tokens). undefined when none had anything
   * to wait for; never rejects (a failing producer is logged and skipped).
   */
  prepare(state: CycleState, candidates: readonly Endpoint[], signal: AbortSignal): Promise<void> | undefined {
    const list = this.#async;
    const from = (i: number): Promise<void> | undefined => {
      for (; i < list.length; i++) {
        if (signal.aborted) return undefined;
        const p = list[i];
        const wait = this.#timer.guardedAsync('PrepareData', p, () => p.prepare(state, candidates, signal));
        if (wait) {
          const next = i + 1;
          return wait.then(() => from(next));
        }
      }
      return undefined;
    };
    return list.length === 0 ? undefined : from(0);
  }

  /** Data producers write the request's CycleState before the profiles read it. */
  produce(state: CycleState, candidates: readonly Endpoint[]): void {
    for (const p of this.#producers) this.#timer.guarded('PrepareData', p, () => p.produce(state, candidates), undefined);
  }

  /**
   * Admission plugins (probabilistic-admitter), after the producers: the
   * first reason one gives to refuse the request, or undefined. A throwing
   * admitter is logged and admits.
   */
  admit(priority: number, candidates: readonly Endpoint[]): string | undefined {
    for (const a of this.#admitters) {
      const reason = this.#timer.guarded('AdmitRequest', a, () => a.admit(priority, candidates), undefined);
      if (reason !== undefined) return reason;
    }
    return undefined;
  }

  /** Tokens a request charges to its endpoint while in flight: the prompt's, unless an inflight-load-producer tunes it. */
  chargedTokens(state: CycleState, primary: Endpoint, promptTokens: number): number {
    const p = this.#inflight;
    return p ? this.#timer.guarded('PreRequest', p, () => p.chargedTokens(state, primary, promptTokens), promptTokens) : promptTokens;
  }

  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void {
    for (const p of this.#preRequest) this.#timer.guarded('PreRequest', p, () => p.preRequest(state, primary, results), undefined);
  }

  /** Headers the plugins want added to the response for the client. */
  responseReceived(state: CycleState, served: Endpoint): [string, string][] {
    if (this.#received.length === 0) return [];
    const out: [string, string][] = [];
    for (const p of this.#received) out.push(...this.#timer.guarded('ResponseReceived', p, () => p.responseReceived(state, served), []));
    return out;
  }

  responseComplete(state: CycleState, served: Endpoint): void {
    for (const p of this.#complete) this.#timer.guarded('ResponseComplete', p, () => p.responseComplete(state, served), undefined);
  }
}
