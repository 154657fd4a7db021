// OpenTelemetry tracing (--tracing), configured as llm-d Router configures
// it, by the standard environment: OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT
// (default http://localhost:4317), OTEL_EXPORTER_OTLP_PROTOCOL (grpc, the
// default as in llm-d, or http/json), OTEL_TRACES_EXPORTER (otlp; console
// writes spans to the log at debug; none), OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (default parentbased_traceidratio at 0.1). A W3C
// traceparent (and baggage) on the request continues the caller's trace.
//
// Spans, named as llm-d Router names them: gateway.request (one ext_proc
// request), gateway.request_orchestration (request control's decision),
// llm_d.epp.scoring (each scheduling profile's scoring) and
// llm_d.epp.scorer.<type> (each scorer; spans.ts). The app imports this
// module only with --tracing: off, no SDK is loaded and the request path
// only checks one undefined field.
import { SpanKind, context as otelContext, trace, type Span, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter as OTLPGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OTLPHttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { Logger } from '../log.ts';
import { bounded } from './bounded.ts';
import type { RequestTrace } from './spans.ts';

export interface TracingOptions {
  log: Logger;
  version: string;
  /** Tests: export here instead of what the environment says, span by span. */
  exporter?: SpanExporter;
  env?: NodeJS.ProcessEnv;
}

const propagator = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] });
const headerGetter = {
  get: (carrier: ReadonlyMap<string, string>, key: string) => carrier.get(key),
  keys: (carrier: ReadonlyMap<string, string>) => [...carrier.keys()],
};

export class Tracing {
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;

  constructor(o: TracingOptions) {
    const env = o.env ?? process.env;
    const exporter = o.exporter ?? createExporter(env, o.log);
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || 'llm-epp', 'service.version': o.version }),
      sampler: createSampler(env, o.log),
      spanProcessors: exporter ? [o.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter)] : [],
    });
    this.#tracer = this.#provider.getTracer('llm-epp', o.version);
  }

  /**
   * gateway.request for one ext_proc request, continuing the trace its
   * headers carry. Undefined when the sampler drops it: nothing below it is
   * traced then.
   */
  startRequest(headers: ReadonlyMap<string, string>, requestId: string): { span: Span; trace: RequestTrace } | undefined {
    const parent = propagator.extract(otelContext.active(), headers, headerGetter);
    const span = this.#tracer.startSpan('gateway.request', { kind: SpanKind.SERVER, attributes: { 'gen_ai.request.id': bounded(requestId) } }, parent);
    if (!span.isRecording()) {
      span.end();
      return undefined;
    }
    return { span, trace: { tracer: this.#tracer, context: trace.setSpan(parent, span) } };
  }

  /** Export what is buffered and stop. */
  async shutdown(): Promise<void> {
    await this.#provider.shutdown();
  }
}

function createSampler(env: NodeJS.ProcessEnv, log: Logger): Sampler {
  const type = env.OTEL_TRACES_SAMPLER || 'parentbased_traceidratio';
  const argText = env.OTEL_TRACES_SAMPLER_ARG;
  let ratio = 0.1;
  if (argText !== undefined && argText !== '') {
    const n = Number(argText);
    if (Number.isFinite(n) && n >= 0 && n <= 1) ratio = n;
    else log.warn({ OTEL_TRACES_SAMPLER_ARG: argText }, 'OTEL_TRACES_SAMPLER_ARG is not a ratio in [0, 1]; using 0.1');
  }
  switch (type) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      // As llm-d Router: an unknown sampler falls back to parent-based 10 %.
      log.warn({ OTEL_TRACES_SAMPLER: type }, 'unsupported OTEL_TRACES_SAMPLER; using parentbased_traceidratio at 0.1');
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.1) });
  }
}

/** The exporter the environment asks for; undefined for OTEL_TRACES_EXPORTER=none. Throws on values llm-epp does not support. */
export function createExporter(env: NodeJS.ProcessEnv, log: Logger): SpanExporter | undefined {
  const kind = (env.OTEL_TRACES_EXPORTER || 'otlp').split(',')[0].trim();
  if (kind === 'none') return undefined;
  if (kind === 'console') return new LogSpanExporter(log);
  if (kind !== 'otlp') throw new Error(`OTEL_TRACES_EXPORTER=${kind}: llm-epp exports traces with otlp (default), console (debug log lines) or none`);
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'grpc';
  // The signal-specific endpoint is used as given; the general one is a base (HTTP appends /v1/traces).
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (protocol === 'grpc') return new OTLPGrpcExporter({ url: traces || base || 'http://localhost:4317' });
  if (protocol === 'http/json') return new OTLPHttpJsonExporter({ url: traces || (base ? `${base.replace(/\/+$/, '')}/v1/traces` : 'http://localhost:4318/v1/traces') });
  throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol}: llm-epp exports OTLP over grpc (default, as llm-d Router) or http/json`);
}

/** Spans as debug log lines (OTEL_TRACES_EXPORTER=console): JSON like every other line, no prompt text. */
class LogSpanExporter implements SpanExporter {
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  export(spans: ReadableSpan[], done: (r: { code: number }) => void): void {
    for (const s of spans) {
      const ctx = s.spanContext();
      this.#log.debug(
        { span: s.name, traceId: ctx.traceId, spanId: ctx.spanId, parentSpanId: s.parentSpanContext?.spanId, durationMs: s.duration[0] * 1e3 + s.duration[1] / 1e6, attributes: s.attributes },
        'trace span',
      );
    }
    done({ code: 0 });
  }

  async shutdown(): Promise<void> {}
}
