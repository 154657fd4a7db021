// The shapes flow control works with: what the host enqueues, what a policy
// sees of the queues, the three policy kinds (ordering within a flow, fairness
// between the flows of a band, usage limits per band) and the outcomes a
// request can end with. llm-d Router v0.10's names throughout
// (pkg/epp/framework/interface/flowcontrol, pkg/epp/flowcontrol/types).
import type { Plugin } from '../scheduling/framework.ts';

/**
 * A request's terminal outcome in flow control, as llm-d names it (the
 * `outcome` label of the flow-control metrics).
 */
export type QueueOutcome =
  | 'Dispatched'
  | 'RejectedCapacity'
  | 'RejectedNoEndpoints'
  | 'RejectedOther'
  | 'EvictedTTL'
  | 'EvictedNoEndpoints'
  | 'EvictedContextCancelled'
  | 'EvictedOther';

/** x-llm-d-request-dropped-reason: why a request was not dispatched. */
export type DroppedReason = 'rejected-saturated' | 'rejected-no-endpoints' | 'rejected-ttl-expired' | 'rejected-context-cancelled' | 'rejected-shutting-down';

/** How a request left flow control, and how the host answers it. */
export interface FlowOutcome {
  readonly outcome: QueueOutcome;
  /** llm-epp's error code for a request not dispatched (its HTTP status: 429 or 503); undefined: dispatched. */
  readonly code: 'ResourceExhausted' | 'ServiceUnavailable' | 'Internal' | undefined;
  /** The x-llm-d-request-dropped-reason header value, for a request not dispatched. */
  readonly reason: DroppedReason | undefined;
  readonly message: string;
}

/** What the host hands to the controller for one request. */
export interface FlowRequest {
  /** The request id (already bounded by the host), for logs only. */
  readonly id: string;
  /** The flow: x-llm-d-inference-fairness-id (GAIE's header as fallback), "default-flow" without one. */
  readonly fairnessId: string;
  /** The InferenceObjective's priority (0 without one); negative is sheddable. */
  readonly priority: number;
  /** Request body bytes, charged against maxBytes. */
  readonly byteSize: number;
  /** When the request arrived, on the controller's clock (ms); slo-deadline counts from it. */
  readonly receivedAt: number;
  /** Request headers, keys lower-cased (slo-deadline reads x-llm-d-slo-ttft-ms). */
  readonly headers?: ReadonlyMap<string, string>;
  /** Model and target model, for the metric labels. */
  readonly model?: string;
  readonly targetModel?: string;
  /** Aborted when the client goes away: a queued request is removed at once. */
  readonly signal?: AbortSignal;
}

/** A queued request as policies see it. */
export interface QueuedRequest {
  readonly request: FlowRequest;
  /** When it entered flow control (controller clock, ms). */
  readonly enqueuedAt: number;
  /** Its queue-wait budget while the pool has endpoints (defaultRequestTTL), ms; 0: none. */
  readonly ttl: number;
  /** Arrival order, a tie-breaker that makes every ordering total. */
  readonly seq: number;
}

/** One flow's queue inside a band. */
export interface FlowQueueView {
  readonly fairnessId: string;
  readonly priority: number;
  readonly length: number;
  readonly byteSize: number;
  /** The request its ordering policy dispatches next. */
  peek(): QueuedRequest | undefined;
}

/** A priority band as a fairness policy sees it. */
export interface BandView {
  readonly priority: number;
  readonly ordering: OrderingPolicy;
  /** Flows with queued requests, sorted by fairness id (UTF-16 code-unit order). */
  readonly activeFlows: readonly FlowQueueView[];
  /** This band's state for its fairness policy (the policy's newState()). */
  readonly fairnessState: unknown;
}

/** Which request of a flow goes first (llm-d's OrderingPolicy). */
export interface OrderingPolicy extends Plugin {
  readonly flowControl: 'ordering';
  /** True when `a` must be dispatched before `b`. A strict weak order. */
  less(a: QueuedRequest, b: QueuedRequest): boolean;
}

/** Which flow of a band gets the next dispatch (llm-d's FairnessPolicy). */
export interface FairnessPolicy extends Plugin {
  readonly flowControl: 'fairness';
  /** Per-band state (a cursor, …); the plugin instance itself holds configuration only. */
  newState(): unknown;
  /** The flow to dispatch from, or undefined when none should. */
  pick(band: BandView, now: number): FlowQueueView | undefined;
  /** Told of each request dispatched from a band it governs, after `waitMs` in flow control. */
  dispatched?(request: FlowRequest, waitMs: number, now: number): void;
  /** Told when a request it was told of as dispatched is over, with the tokens it used (0 when unknown). */
  completed?(fairnessId: string, promptTokens: number, completionTokens: number, now: number): void;
}

/**
 * Per-band dispatch ceilings from the pool's saturation (llm-d's
 * UsageLimitPolicy). A band dispatches only while saturation < its ceiling.
 */
export interface UsageLimitPolicy extends Plugin {
  readonly flowControl: 'usage-limit';
  /**
   * Write one ceiling per priority into `ceilings` (pre-filled with 1.0, no
   * gating). `priorities` is ordered highest first.
   */
  computeLimit(saturation: number, priorities: readonly number[], ceilings: number[]): void;
}

export function isOrderingPolicy(p: Plugin): p is OrderingPolicy {
  return (p as Partial<OrderingPolicy>).flowControl === 'ordering' && typeof (p as OrderingPolicy).less === 'function';
}
export function isFairnessPolicy(p: Plugin): p is FairnessPolicy {
  return (p as Partial<FairnessPolicy>).flowControl === 'fairness' && typeof (p as FairnessPolicy).pick === 'function';
}
export function isUsageLimitPolicy(p: Plugin): p is UsageLimitPolicy {
  return (p as Partial<UsageLimitPolicy>).flowControl === 'usage-limit' && typeof (p as UsageLimitPolicy).computeLimit === 'function';
}

/**
 * What the controller asks the host before dispatching: llm-d's dispatch
 * gate is the saturation detector over the whole pool (endpoints with stale
 * or missing metrics count as saturated). Both are read at each dispatch
 * decision; neither may block.
 */
export interface DispatchGate {
  /** Pool saturation now: ≥ 1 is saturated; an empty pool reads 1. */
  saturation(): number;
  /** The pool has no endpoints (the queue is a scale-from-zero waiting room). */
  poolEmpty(): boolean;
}
