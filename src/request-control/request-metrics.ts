// What one routed request reports: GAIE's inference_objective_* metrics when
// it is routed, as its response passes (time to first byte, usage read from
// the JSON body or the SSE stream) and when it ends, and the debug lines
// "request routed" / "request completed". Model names are label values
// through EppMetrics.modelLabel() and bounded() in logs: clients choose them.
import type { Logger } from '../log.ts';
import { bounded } from '../observability/bounded.ts';
import type { EppMetrics } from '../observability/metrics.ts';
import { SseUsageReader, usageFromJson, type Usage } from '../openai/usage.ts';
import type { ErrorCode } from '../errors.ts';

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
  readonly #labels: { model_name: string; target_model_name: string } | undefined;
  readonly #receivedAt: number;
  #status = '';
  #served: string | undefined;
  #sse: SseUsageReader | undefined;
  #chunks: Buffer[] | undefined = [];
  #bytes = 0;
  #firstByteAt = 0;
  #lastByteAt = 0;
  #done = false;

  constructor(o: RequestMetricsOptions, requestId: string, model: string, targetModel: string, receivedAt: number) {
    this.#o = o;
    this.#requestId = requestId;
    this.#model = model;
    // Headers-only requests (GET /v1/models) name no model and report no per-model series.
    this.#labels = model ? { model_name: o.metrics.modelLabel(model), target_model_name: o.metrics.modelLabel(targetModel) } : undefined;
    this.#receivedAt = receivedAt;
  }

  /** The request was routed with a body of `bodyBytes` at `priority` (rewritten by `rewriteName`, if any). */
  routed(bodyBytes: number, priority: number, rewriteName: string | undefined): void {
    const l = this.#labels;
    if (!l) return;
    const m = this.#o.metrics;
    m.requestTotal.inc({ ...l, priority: String(priority) });
    if (rewriteName) m.modelRewrites.inc({ model_rewrite_name: rewriteName, model_name: l.model_name, target_model: l.target_model_name });
    m.requestSizes.observe(l, bodyBytes);
    m.runningRequests.inc({ model_name: l.model_name });
  }

  /** The response's headers: its status and whether usage comes as SSE. */
  responseHeaders(status: string, served: string | undefined, eventStream: boolean): void {
    this.#status = status;
    this.#served = served;
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
   * Only the first call counts.
   */
  end(finished: boolean, primary: string): void {
    if (this.#done) return;
    this.#done = true;
    const l = this.#labels;
    if (!l) return;
    const m = this.#o.metrics;
    m.runningRequests.dec({ model_name: l.model_name });
    if (!finished) {
      this.#chunks = undefined;
      return;
    }
    const now = performance.now();
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
    if (this.#firstByteAt > 0) m.ttft.observe(l, (this.#firstByteAt - this.#receivedAt) / 1000);
    if (usage) {
      if (usage.promptTokens > 0) m.inputTokens.observe(l, usage.promptTokens);
      if (usage.completionTokens > 0) {
        m.outputTokens.observe(l, usage.completionTokens);
        m.ntpot.observe(l, (now - this.#receivedAt) / 1000 / usage.completionTokens);
        if (usage.completionTokens > 1 && this.#lastByteAt > this.#firstByteAt) {
          m.tpot.observe(l, (this.#lastByteAt - this.#firstByteAt) / 1000 / (usage.completionTokens - 1));
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
  }
}

/** A request that ends with an error llm-epp answers itself, counted against the model it named. */
export function countRejected(metrics: EppMetrics, model: string, targetModel: string, code: ErrorCode): void {
  metrics.requestErrorTotal.inc({ model_name: metrics.modelLabel(model), target_model_name: metrics.modelLabel(targetModel), error_code: code });
}
