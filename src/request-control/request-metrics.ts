// What one routed request reports: the llm_d_epp_request_* metrics (and their
// deprecated inference_objective_* twins) when it is routed, as its response passes (time to first byte, usage read from
// the JSON body or the SSE stream) and when it ends, and the debug lines
// "request routed" / "request completed". Model names and fairness ids are
// label values through EppMetrics.modelLabel() / fairnessLabel() and
// bounded() in logs: clients choose them.
import type { Logger } from '../log.ts';
import { bounded } from '../observability/bounded.ts';
import type { EppMetrics, RequestLabels } from '../observability/metrics.ts';
import { SseUsageReader, usageFromJson, type Usage } from '../openai/usage.ts';
import type { ErrorCode } from '../errors.ts';
import type { SchedulingRequest } from '../scheduling/types.ts';

export interface RequestMetricsOptions {
  metrics: EppMetrics;
  log: Logger;
  /** Bytes of a non-streaming JSON response kept to read its usage. */
  maxResponseUsageBytes: number;
}

export class RequestMetrics {
  readonly #o: RequestMetricsOptions;
  readonly #requestId: string;
  readonly #model: string;
  readonly #labels: RequestLabels | undefined;
  readonly #receivedAt: number;
  #status = '';
  #served: string | undefined;
  #sse: SseUsageReader | undefined;
  #chunks: Buffer[] | undefined = [];
  #bytes = 0;
  #firstByteAt = 0;
  #lastByteAt = 0;
  #headersAt = 0;
  /** Time spent in llm-epp's response handlers (llm_d_epp_response_processing_duration_seconds), ms. */
  #handledMs = 0;
  #itl: { observe(v: number): void } | undefined;
  #done = false;

  constructor(o: RequestMetricsOptions, request: Pick<SchedulingRequest, 'requestId' | 'model' | 'targetModel' | 'fairnessId' | 'priority'>, receivedAt: number) {
    this.#o = o;
    this.#requestId = request.requestId;
    this.#model = request.model;
    const m = o.metrics;
    // Headers-only requests (GET /v1/models) name no model and report no per-model series.
    this.#labels = request.model
      ? { model_name: m.modelLabel(request.model), target_model_name: m.modelLabel(request.targetModel), fairness_id: m.fairnessLabel(request.fairnessId), priority: String(request.priority) }
      : undefined;
    this.#receivedAt = receivedAt;
  }

  /** The request was routed with a body of `bodyBytes` (rewritten by `rewriteName`, if any). */
  routed(bodyBytes: number, rewriteName: string | undefined): void {
    const m = this.#o.metrics;
    m.requestProcessing.observe((performance.now() - this.#receivedAt) / 1000);
    const l = this.#labels;
    if (!l) return;
    m.requestTotal.inc(l);
    if (rewriteName) m.modelRewrites.inc({ model_rewrite_name: rewriteName, model_name: l.model_name, target_model: l.target_model_name });
    m.requestSizes.observe(l, bodyBytes);
    m.runningRequests.inc(l);
  }

  /** One response message took `ms` of llm-epp's time. */
  handled(ms: number): void {
    this.#handledMs += ms;
  }

  /** The response's headers: its status and whether usage comes as SSE. */
  responseHeaders(status: string, served: string | undefined, eventStream: boolean): void {
    this.#status = status;
    this.#served = served;
    this.#headersAt = performance.now();
    if (eventStream) {
      this.#sse = new SseUsageReader();
      this.#chunks = undefined;
    }
    if (status && !status.startsWith('2') && this.#labels) {
      this.#o.metrics.requestErrorTotal.inc({ ...this.#labels, error_code: 'ModelServerError' });
    }
  }

  /** Response body bytes as they pass: timing first, then usage (which never delays the bytes). */
  responseBody(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const now = performance.now();
    if (this.#firstByteAt === 0) this.#firstByteAt = now;
    else if (this.#sse && this.#labels) {
      // One labelled child per request: a streamed response observes once per chunk.
      this.#itl ??= this.#o.metrics.itl.labels(this.#labels);
      this.#itl.observe((now - this.#lastByteAt) / 1000);
    }
    this.#lastByteAt = now;
    this.#bytes += chunk.length;
    try {
      if (this.#sse) this.#sse.push(chunk);
      else if (this.#chunks) {
        if (this.#bytes <= this.#o.maxResponseUsageBytes) this.#chunks.push(chunk);
        else this.#chunks = undefined;
      }
    } catch (err) {
      this.#o.log.warn({ err, requestId: this.#requestId }, 'response usage parsing failed');
    }
  }

  /**
   * The request is over. `finished`: its response passed whole, so latency
   * and usage are recorded; otherwise (cancelled, reset) it only stops running.
   * Only the first call counts. Returns the usage the response reported, if it was read.
   */
  end(finished: boolean, primary: string): Usage | undefined {
    if (this.#done) return undefined;
    this.#done = true;
    const l = this.#labels;
    if (!l) return undefined;
    const m = this.#o.metrics;
    m.runningRequests.dec(l);
    if (!finished) {
      this.#chunks = undefined;
      return undefined;
    }
    const now = performance.now();
    if (this.#headersAt > 0) m.responseProcessing.observe((this.#sse ? this.#handledMs : now - this.#headersAt) / 1000);
    m.requestDuration.observe(l, (now - this.#receivedAt) / 1000);
    m.responseSizes.observe(l, this.#bytes);
    let usage: Usage | undefined;
    if (this.#sse) {
      this.#sse.end();
      usage = this.#sse.usage;
    } else if (this.#chunks && this.#chunks.length > 0) {
      usage = usageFromJson(Buffer.concat(this.#chunks));
    }
    this.#chunks = undefined;
    if (this.#firstByteAt > 0) {
      const ttft = (this.#firstByteAt - this.#receivedAt) / 1000;
      m.ttft.observe({ ...l, streaming: this.#sse ? 'true' : 'false' }, ttft);
      m.ttftGaie.observe({ model_name: l.model_name, target_model_name: l.target_model_name }, ttft);
    }
    if (usage) {
      if (usage.promptTokens > 0) m.inputTokens.observe(l, usage.promptTokens);
      if (usage.completionTokens > 0) {
        m.outputTokens.observe(l, usage.completionTokens);
        m.ntpot.observe(l, (now - this.#receivedAt) / 1000 / usage.completionTokens);
        if (usage.completionTokens > 1 && this.#lastByteAt > this.#firstByteAt) {
          const tpot = (this.#lastByteAt - this.#firstByteAt) / 1000 / (usage.completionTokens - 1);
          // llm-d's series is for streamed responses only; the GAIE-era one took every response.
          if (this.#sse) m.tpot.observe(l, tpot);
          m.tpotGaie.observe({ model_name: l.model_name, target_model_name: l.target_model_name }, tpot);
        }
      }
      if (usage.cachedTokens !== undefined) m.promptCachedTokens.observe(l, usage.cachedTokens);
    }
    const log = this.#o.log;
    if (log.isLevelEnabled('debug')) {
      log.debug(
        {
          requestId: this.#requestId,
          model: bounded(this.#model),
          endpoint: primary,
          served: this.#served,
          status: this.#status,
          ttftMs: this.#firstByteAt > 0 ? +(this.#firstByteAt - this.#receivedAt).toFixed(3) : undefined,
          durationMs: +(now - this.#receivedAt).toFixed(3),
          promptTokens: usage?.promptTokens,
          completionTokens: usage?.completionTokens,
        },
        'request completed',
      );
    }
    return usage;
  }
}

/** A request that ends with an error llm-epp answers itself, counted against the model it named. */
export function countRejected(metrics: EppMetrics, model: string, targetModel: string, fairnessId: string, priority: number, code: ErrorCode): void {
  metrics.requestErrorTotal.inc({
    model_name: metrics.modelLabel(model),
    target_model_name: metrics.modelLabel(targetModel),
    fairness_id: metrics.fairnessLabel(fairnessId),
    priority: String(priority),
    error_code: code,
  });
}
