// The outcomes a request can leave flow control with, and the answer each
// gets, as llm-d Router v0.10 maps them (requestcontrol/admission.go,
// translateFlowControlOutcome): 429 when the pool has endpoints but the
// request was shed (queue full, queue wait budget spent), 503 when the pool
// has none, when the client went away, or at shutdown. Each is a constant, so
// ending a request allocates nothing.
import { EppError, dropped } from '../errors.ts';
import type { FlowOutcome } from './types.ts';

function outcome(o: FlowOutcome): FlowOutcome {
  return Object.freeze(o);
}

export const DISPATCHED = outcome({ outcome: 'Dispatched', code: undefined, reason: undefined, message: 'dispatched' });
export const REJECTED_CAPACITY = outcome({
  outcome: 'RejectedCapacity',
  code: 'ResourceExhausted',
  reason: 'rejected-saturated',
  message: 'request rejected by flow control: queue at capacity',
});
export const REJECTED_NO_ENDPOINTS = outcome({
  outcome: 'RejectedNoEndpoints',
  code: 'ServiceUnavailable',
  reason: 'rejected-no-endpoints',
  message: 'no endpoints available: the flow control queue is at capacity and the pool has no endpoints',
});
export const REJECTED_SHUTTING_DOWN = outcome({
  outcome: 'RejectedOther',
  code: 'ServiceUnavailable',
  reason: 'rejected-shutting-down',
  message: 'flow controller shutting down',
});
export const REJECTED_CANCELLED = outcome({
  outcome: 'RejectedOther',
  code: 'ServiceUnavailable',
  reason: 'rejected-context-cancelled',
  message: 'client disconnected before the request entered flow control',
});
export const EVICTED_TTL = outcome({
  outcome: 'EvictedTTL',
  code: 'ResourceExhausted',
  reason: 'rejected-ttl-expired',
  message: 'request timed out in queue',
});
/** The queue-wait backstop ran out while the pool had no endpoints. */
export const EVICTED_TTL_NO_ENDPOINTS = outcome({
  outcome: 'EvictedTTL',
  code: 'ServiceUnavailable',
  reason: 'rejected-no-endpoints',
  message: 'request timed out in queue and no endpoints are available',
});
export const EVICTED_NO_ENDPOINTS = outcome({
  outcome: 'EvictedNoEndpoints',
  code: 'ServiceUnavailable',
  reason: 'rejected-no-endpoints',
  message: 'request timed out in queue and no endpoints are available (noEndpointRequestTTL)',
});
export const EVICTED_CANCELLED = outcome({
  outcome: 'EvictedContextCancelled',
  code: 'ServiceUnavailable',
  reason: 'rejected-context-cancelled',
  message: 'client disconnected while the request was queued',
});
export const EVICTED_SHUTTING_DOWN = outcome({
  outcome: 'EvictedOther',
  code: 'ServiceUnavailable',
  reason: 'rejected-shutting-down',
  message: 'flow controller shutting down',
});
/** llm-epp: a queued request pushed out to make room (overall maxRequests/maxBytes) for a higher-priority one. */
export const EVICTED_DISPLACED = outcome({
  outcome: 'EvictedOther',
  code: 'ResourceExhausted',
  reason: 'rejected-saturated',
  message: 'request displaced from the flow control queue by a higher-priority request',
});

/** The error to answer a request that was not dispatched with; undefined when it was. */
export function outcomeError(o: FlowOutcome): EppError | undefined {
  if (o.code === undefined) return undefined;
  const err = new EppError(o.code, o.message);
  return o.reason === undefined ? err : dropped(err, o.reason);
}
