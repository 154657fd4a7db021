// Flow control's Prometheus series under llm-d Router v0.10's names and
// labels (pkg/epp/metrics, docs/metrics.md "Flow control"), each deprecated
// inference_extension_* twin derived at scrape time as llm-epp does for its
// other metrics. The controller talks to a FlowControlObserver, so tests (and
// a host without /metrics) can pass their own or none.
//
// fairness_id comes from a client header: its values are capped (1000, then
// "other", shared with the request metrics when the host passes its label
// function), and a flow's series are removed when the flow is forgotten.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LabelValues } from '../observability/bounded.ts';
import { registerAlias, sameLabels } from '../observability/twin.ts';
import type { FlowRequest, QueueOutcome } from './types.ts';

/** What the controller reports. Every method is cheap and never throws. */
export interface FlowControlObserver {
  /** A request entered a queue (queue_size + 1, queue_bytes + its bytes). */
  queued(req: FlowRequest): void;
  /** A request left its queue, for whatever reason. */
  unqueued(req: FlowRequest): void;
  /** A request's terminal outcome, after `seconds` in flow control (queue duration, requests_total). */
  finished(req: FlowRequest, outcome: QueueOutcome, seconds: number): void;
  /** Time spent deciding a request's entry (enqueue duration); outcome "NotYetFinalized" when it was queued. */
  enqueued(req: FlowRequest, outcome: QueueOutcome | 'NotYetFinalized', seconds: number): void;
  dispatchCycle(seconds: number): void;
  poolSaturation(saturation: number): void;
  /** A flow was forgotten: its series go. */
  flowCollected(fairnessId: string, priority: number): void;
  /** In-flight eviction (enableEviction). */
  revocationsIssued(priority: number, n: number): void;
  revocationEnded(outcome: 'confirmed' | 'timed_out', seconds: number | undefined): void;
  reclaimTarget(target: number): void;
  pendingReclaim(pending: number): void;
}

const QUEUE_DURATION_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const CYCLE_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
const CONFIRMATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const ALPHA = '[ALPHA] ';
const OTHER = 'other';

export interface FlowControlMetricsOptions {
  /** inference_pool label. */
  poolName: string;
  /** fairness_id label for a client's id (llm-epp's shared cap); default: a cap of its own. */
  fairnessLabel?: (id: string) => string;
  /** model_name / target_model_name label; default: a cap of its own. */
  modelLabel?: (model: string) => string;
}

type FlowLabels = 'fairness_id' | 'priority' | 'inference_pool' | 'model_name' | 'target_model_name';

/** The label combinations a flow has written, so its series can be removed when it goes. */
interface FlowSeries {
  readonly models: Set<string>;
  readonly outcomes: Set<string>;
}

export class FlowControlMetrics implements FlowControlObserver {
  readonly queueDuration: Histogram<FlowLabels | 'outcome'>;
  readonly enqueueDuration: Histogram<'fairness_id' | 'priority' | 'outcome'>;
  readonly dispatchCycleDuration: Histogram<string>;
  readonly queueSize: Gauge<FlowLabels>;
  readonly queueBytes: Gauge<FlowLabels>;
  readonly poolSaturationGauge: Gauge<'inference_pool'>;
  readonly staleEndpoints: Gauge<'detector'>;
  readonly requestsTotal: Counter<'outcome' | 'priority' | 'inference_pool'>;
  readonly revocationsIssuedTotal: Counter<'priority' | 'inference_pool'>;
  readonly revocationsTotal: Counter<'outcome' | 'inference_pool'>;
  readonly reclaimTargetGauge: Gauge<'inference_pool'>;
  readonly pendingReclaimGauge: Gauge<'inference_pool'>;
  readonly revocationConfirmation: Histogram<'inference_pool'>;
  readonly #pool: string;
  readonly #fairness: (id: string) => string;
  readonly #model: (m: string) => string;
  /** By fairness label and priority. Bounded: one entry per live flow label (fairness ids are capped). */
  readonly #series = new Map<string, FlowSeries>();
  /** The gauges' last values, set again only when they change. */
  readonly #stale = new Map<string, number>();
  #saturation = Number.NaN;

  constructor(registry: Registry, opts: FlowControlMetricsOptions) {
    this.#pool = opts.poolName;
    const fairness = new LabelValues();
    const models = new LabelValues();
    this.#fairness = opts.fairnessLabel ?? ((id) => fairness.value(id));
    this.#model = opts.modelLabel ?? ((m) => models.value(m));
    const registers = [registry];
    const FLOW: FlowLabels[] = ['fairness_id', 'priority', 'inference_pool', 'model_name', 'target_model_name'];
    const twin = <M,>(metric: M, help: string): M => {
      const source = metric as unknown as { name: string; labelNames?: readonly string[]; get(): Promise<never> };
      const old = source.name.replace(/^llm_d_epp_/, 'inference_extension_');
      registerAlias(registry, source, old, `${ALPHA}[Deprecated: Use ${source.name}] ${help}`, sameLabels);
      return metric;
    };
    const queueHelp = 'Distribution of total time requests spend in the Flow Control layer (from enqueue to final outcome).';
    this.queueDuration = twin(
      new Histogram({ name: 'llm_d_epp_flow_control_request_queue_duration_seconds', help: ALPHA + queueHelp, labelNames: ['fairness_id', 'priority', 'outcome', 'inference_pool', 'model_name', 'target_model_name'], buckets: QUEUE_DURATION_BUCKETS, registers }),
      queueHelp,
    );
    const cycleHelp = 'Distribution of time taken for each internal dispatch cycle in the Flow Control layer.';
    this.dispatchCycleDuration = twin(new Histogram({ name: 'llm_d_epp_flow_control_dispatch_cycle_duration_seconds', help: ALPHA + cycleHelp, labelNames: [], buckets: CYCLE_BUCKETS, registers }), cycleHelp);
    const enqueueHelp = 'Distribution of time taken to enqueue requests into the Flow Control layer.';
    this.enqueueDuration = twin(
      new Histogram({ name: 'llm_d_epp_flow_control_request_enqueue_duration_seconds', help: ALPHA + enqueueHelp, labelNames: ['fairness_id', 'priority', 'outcome'], buckets: CYCLE_BUCKETS, registers }),
      enqueueHelp,
    );
    const sizeHelp = 'Current number of requests actively held in the Flow Control queue.';
    this.queueSize = twin(new Gauge({ name: 'llm_d_epp_flow_control_queue_size', help: ALPHA + sizeHelp, labelNames: FLOW, registers, aggregator: 'sum' }), sizeHelp);
    const bytesHelp = 'Current total size in bytes of requests actively held in the Flow Control queue.';
    this.queueBytes = twin(new Gauge({ name: 'llm_d_epp_flow_control_queue_bytes', help: ALPHA + bytesHelp, labelNames: FLOW, registers, aggregator: 'sum' }), bytesHelp);
    const satHelp = 'Pool saturation signal gating Flow Control dispatch. 1.0 is the gating set point; values above 1.0 indicate the magnitude of oversubscription past it. An empty pool reads as 1.0. With the default utilization detector, endpoints with missing or stale metrics score as fully saturated (fail-closed; see flow_control_stale_endpoints).';
    this.poolSaturationGauge = twin(new Gauge({ name: 'llm_d_epp_flow_control_pool_saturation', help: ALPHA + satHelp, labelNames: ['inference_pool'], registers, aggregator: 'max' }), satHelp);
    this.staleEndpoints = new Gauge({
      name: 'llm_d_epp_flow_control_stale_endpoints',
      help: ALPHA + 'Number of candidate endpoints whose metrics are missing or older than the staleness threshold, as of the most recent saturation evaluation; they count as fully saturated.',
      labelNames: ['detector'],
      registers,
      aggregator: 'max',
    });
    this.requestsTotal = new Counter({ name: 'llm_d_epp_flow_control_requests_total', help: ALPHA + 'Total number of requests processed by the Flow Control layer.', labelNames: ['outcome', 'priority', 'inference_pool'], registers });
    this.revocationsIssuedTotal = new Counter({
      name: 'llm_d_epp_flow_control_revocations_issued_total',
      help: ALPHA + "Total number of in-flight eviction revocations issued, labeled by the demand band's priority.",
      labelNames: ['priority', 'inference_pool'],
      registers,
    });
    this.revocationsTotal = new Counter({
      name: 'llm_d_epp_flow_control_revocations_total',
      help: ALPHA + 'Total number of in-flight eviction revocations by terminal outcome (confirmed, timed_out).',
      labelNames: ['outcome', 'inference_pool'],
      registers,
    });
    this.reclaimTargetGauge = new Gauge({ name: 'llm_d_epp_flow_control_reclaim_target', help: ALPHA + 'Last computed reclamation deficit, in saturation-gauge units.', labelNames: ['inference_pool'], registers, aggregator: 'max' });
    this.pendingReclaimGauge = new Gauge({ name: 'llm_d_epp_flow_control_pending_reclaim', help: ALPHA + 'Sum of outstanding and cooling pending-reclaim debits, in saturation-gauge units.', labelNames: ['inference_pool'], registers, aggregator: 'sum' });
    this.revocationConfirmation = new Histogram({
      name: 'llm_d_epp_flow_control_revocation_confirmation_seconds',
      help: ALPHA + 'Time from revocation issue to confirmed stream termination.',
      labelNames: ['inference_pool'],
      buckets: CONFIRMATION_BUCKETS,
      registers,
    });
  }

  /** Record the stale-endpoint count a saturation detector saw. */
  recordStaleEndpoints(detector: string, count: number): void {
    // Read at every dispatch decision; the series changes far less often.
    if (this.#stale.get(detector) === count) return;
    this.#stale.set(detector, count);
    this.staleEndpoints.set({ detector }, count);
  }

  #flowLabels(req: FlowRequest): Record<FlowLabels, string> {
    return {
      fairness_id: this.#fairness(req.fairnessId),
      priority: String(req.priority),
      inference_pool: this.#pool,
      model_name: this.#model(req.model ?? ''),
      target_model_name: this.#model(req.targetModel ?? req.model ?? ''),
    };
  }

  /** Note the series a flow wrote (models: queue and duration series; outcome: duration series). */
  #remember(fairness_id: string, priority: string, models: string | undefined, outcome?: string): void {
    if (fairness_id === OTHER) return;
    const key = `${fairness_id}\0${priority}`;
    let s = this.#series.get(key);
    if (!s) {
      s = { models: new Set(), outcomes: new Set() };
      this.#series.set(key, s);
    }
    if (models !== undefined) s.models.add(models);
    if (outcome !== undefined) s.outcomes.add(outcome);
  }

  queued(req: FlowRequest): void {
    const l = this.#flowLabels(req);
    this.#remember(l.fairness_id, l.priority, `${l.model_name}\0${l.target_model_name}`);
    this.queueSize.inc(l);
    this.queueBytes.inc(l, req.byteSize);
  }

  unqueued(req: FlowRequest): void {
    const l = this.#flowLabels(req);
    this.queueSize.dec(l);
    this.queueBytes.dec(l, req.byteSize);
  }

  finished(req: FlowRequest, outcome: QueueOutcome, seconds: number): void {
    const l = this.#flowLabels(req);
    this.#remember(l.fairness_id, l.priority, `${l.model_name}\0${l.target_model_name}`, outcome);
    this.queueDuration.observe({ fairness_id: l.fairness_id, priority: l.priority, outcome, inference_pool: l.inference_pool, model_name: l.model_name, target_model_name: l.target_model_name }, seconds);
    this.requestsTotal.inc({ outcome, priority: l.priority, inference_pool: this.#pool });
  }

  enqueued(req: FlowRequest, outcome: QueueOutcome | 'NotYetFinalized', seconds: number): void {
    const fairness_id = this.#fairness(req.fairnessId);
    const priority = String(req.priority);
    this.#remember(fairness_id, priority, undefined, outcome);
    this.enqueueDuration.observe({ fairness_id, priority, outcome }, seconds);
  }

  dispatchCycle(seconds: number): void {
    this.dispatchCycleDuration.observe(seconds);
  }

  poolSaturation(saturation: number): void {
    if (saturation === this.#saturation) return;
    this.#saturation = saturation;
    this.poolSaturationGauge.set({ inference_pool: this.#pool }, saturation);
  }

  flowCollected(fairnessId: string, priority: number): void {
    const fairness_id = this.#fairness(fairnessId);
    // "other" aggregates every capped-out id: a flow that maps to it must not remove the shared series.
    if (fairness_id === OTHER) return;
    const p = String(priority);
    const key = `${fairness_id}\0${p}`;
    const s = this.#series.get(key);
    if (!s) return;
    this.#series.delete(key);
    const inference_pool = this.#pool;
    for (const pair of s.models) {
      const [model_name, target_model_name] = pair.split('\0');
      const l = { fairness_id, priority: p, inference_pool, model_name, target_model_name };
      this.queueSize.remove(l);
      this.queueBytes.remove(l);
      for (const outcome of s.outcomes) this.queueDuration.remove({ fairness_id, priority: p, outcome, inference_pool, model_name, target_model_name });
    }
    for (const outcome of s.outcomes) this.enqueueDuration.remove({ fairness_id, priority: p, outcome });
  }

  revocationsIssued(priority: number, n: number): void {
    if (n > 0) this.revocationsIssuedTotal.inc({ priority: String(priority), inference_pool: this.#pool }, n);
  }

  revocationEnded(outcome: 'confirmed' | 'timed_out', seconds: number | undefined): void {
    this.revocationsTotal.inc({ outcome, inference_pool: this.#pool });
    if (seconds !== undefined) this.revocationConfirmation.observe({ inference_pool: this.#pool }, seconds);
  }

  reclaimTarget(target: number): void {
    this.reclaimTargetGauge.set({ inference_pool: this.#pool }, target);
  }

  pendingReclaim(pending: number): void {
    this.pendingReclaimGauge.set({ inference_pool: this.#pool }, pending);
  }
}
