// The interface between the request path and scheduling. The pluggable
// pipeline (profiles of filters, weighted scorers and a picker, configured by
// EndpointPickerConfig) implements Scheduler; the ext_proc server only ever
// sees this interface.
import type { Endpoint } from '../pool/endpoint.ts';
import type { ParsedRequest } from '../openai/request.ts';

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
}

export interface SchedulingResult {
  /** Chosen endpoints, best first and distinct: the primary, then fallbacks. */
  readonly endpoints: readonly Endpoint[];
  /** Total score per endpoint (primary profile), built only when asked for. */
  readonly scores?: () => ReadonlyMap<Endpoint, number>;
  /** Per-plugin scores of the chosen and runner-up endpoints, computed only when logged. */
  readonly explain?: () => Record<string, unknown>;
  /** Scheduler state handed back on requestDone / responseHeaders. */
  readonly cycle?: unknown;
}

export interface Scheduler {
  readonly name: string;
  /**
   * Rank `candidates` (non-empty, all ready) and return up to `maxEndpoints`.
   * Must not throw for ordinary input; an empty result means no endpoint fits.
   */
  schedule(request: SchedulingRequest, candidates: readonly Endpoint[], maxEndpoints: number): SchedulingResult;
  /** Pool saturation (≥ 1 saturated) for admission of sheddable requests; absent = never saturated. */
  saturation?(candidates: readonly Endpoint[]): number;
  /** The routed request finished (response done, cancelled or failed). */
  requestDone?(request: SchedulingRequest, result: SchedulingResult, primary: Endpoint): void;
  /** Headers to add to the response for the client (e.g. a session token). */
  responseHeaders?(request: SchedulingRequest, result: SchedulingResult, served: Endpoint): [string, string][];
}
