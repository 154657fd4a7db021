// The interface between request control and scheduling. The pluggable
// pipeline (profiles of filters, weighted scorers and a picker, configured by
// EndpointPickerConfig) implements Scheduler; request control only ever sees
// this interface.
import type { Endpoint } from '../pool/endpoint.ts';
import type { ParsedRequest } from '../openai/request.ts';
import type { CycleState, DestinationRewrite, ProfileResult } from './framework.ts';
import type { RequestTrace } from '../observability/spans.ts';

export interface SchedulingRequest {
  readonly requestId: string;
  /** Model named by the client. */
  readonly model: string;
  /** Model the request is sent to (after rewrites). */
  readonly targetModel: string;
  /** Parsed body; undefined for headers-only requests (e.g. GET /v1/models). */
  readonly parsed: ParsedRequest | undefined;
  /** Request headers, keys lower-cased. */
  readonly headers: ReadonlyMap<string, string>;
  /** From the InferenceObjective named by x-gateway-inference-objective; 0 when none. Negative = sheddable. */
  readonly priority: number;
  /** x-gateway-inference-fairness-id, default "default-flow". */
  readonly fairnessId: string;
  /** Set while the request is traced (--tracing, sampled): the scheduler's spans hang from it. */
  readonly trace?: RequestTrace;
}

export interface SchedulingResult {
  /** Chosen endpoints, best first and distinct: the primary, then fallbacks. */
  readonly endpoints: readonly Endpoint[];
  /** Every profile's result, by profile name (PreRequest hooks see them all). */
  readonly profiles: ReadonlyMap<string, ProfileResult>;
  /** Total score per endpoint (primary profile), built only when asked for. */
  readonly scores?: () => ReadonlyMap<Endpoint, number>;
  /** Per-plugin scores of the chosen and runner-up endpoints, computed only when logged. */
  readonly explain?: () => Record<string, unknown>;
  /** Set when the profile handler sends the picks elsewhere than their keys (data-parallel-profile-handler). */
  readonly rewrite?: DestinationRewrite;
}

/**
 * Scheduling, and nothing else: rank `candidates` (non-empty, all ready) for
 * the request whose CycleState request control filled, over the configured
 * profiles. Must not throw for ordinary input; an empty result means no
 * endpoint fits.
 */
export interface Scheduler {
  readonly name: string;
  schedule(state: CycleState, candidates: readonly Endpoint[], maxEndpoints: number): SchedulingResult;
}
