// The request path's side of tracing: a traced request carries a
// RequestTrace (tracer + parent context) from the stream through request
// control into the scheduler, which hang their spans from it. Only the
// OpenTelemetry API is imported here; the SDK (tracing.ts) is loaded by the
// app when --tracing is on. An untraced request carries undefined.
import { SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';

export interface RequestTrace {
  readonly tracer: Tracer;
  /** The context new child spans hang from. */
  readonly context: Context;
}

/** A child span of `parent`, and the RequestTrace below it. */
export function childSpan(parent: RequestTrace, name: string, kind: SpanKind = SpanKind.INTERNAL): { span: Span; trace: RequestTrace } {
  const span = parent.tracer.startSpan(name, { kind }, parent.context);
  return { span, trace: { tracer: parent.tracer, context: trace.setSpan(parent.context, span) } };
}

/** End a span, marking it failed with `err` when given. */
export function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}
