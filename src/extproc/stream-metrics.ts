// llm_d_epp_extproc_* (--enable-grpc-stream-metrics): streams open now, how
// long each was held, and how each ended, by gRPC status code named as Go's
// codes.Code prints it (OK, Canceled, DeadlineExceeded, ...), the values
// llm-d Router's dashboards filter on.
import { status as Status } from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import type { StreamMetrics } from '../observability/metrics.ts';

const CODE_NAMES: Readonly<Record<number, string>> = {
  [Status.OK]: 'OK',
  [Status.CANCELLED]: 'Canceled',
  [Status.UNKNOWN]: 'Unknown',
  [Status.INVALID_ARGUMENT]: 'InvalidArgument',
  [Status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [Status.NOT_FOUND]: 'NotFound',
  [Status.ALREADY_EXISTS]: 'AlreadyExists',
  [Status.PERMISSION_DENIED]: 'PermissionDenied',
  [Status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [Status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [Status.ABORTED]: 'Aborted',
  [Status.OUT_OF_RANGE]: 'OutOfRange',
  [Status.UNIMPLEMENTED]: 'Unimplemented',
  [Status.INTERNAL]: 'Internal',
  [Status.UNAVAILABLE]: 'Unavailable',
  [Status.DATA_LOSS]: 'DataLoss',
  [Status.UNAUTHENTICATED]: 'Unauthenticated',
};

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? 'Unknown';
}

/**
 * Count one server stream from now until it ends: its status is the code of
 * the error it was ended with (OK when it ended normally), Canceled when the
 * peer cancelled or reset it. Counted once, whichever of finish / cancelled /
 * close comes first.
 */
export function observeStream(call: EventEmitter, m: StreamMetrics): void {
  const started = performance.now();
  let code: number = Status.OK;
  let done = false;
  m.inflight.inc();
  const end = (final: number) => {
    if (done) return;
    done = true;
    m.inflight.dec();
    m.duration.observe((performance.now() - started) / 1000);
    m.total.inc({ code: codeName(final) });
  };
  call.on('error', (e: { code?: unknown }) => {
    code = typeof e?.code === 'number' ? e.code : Status.UNKNOWN;
  });
  call.once('finish', () => end(code));
  call.once('cancelled', () => end(Status.CANCELLED));
  call.once('close', () => end(code));
}
