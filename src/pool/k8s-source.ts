// The pool from Kubernetes: the InferencePool (--pool-name) or a label
// selector (--endpoint-selector) decides which Pods are endpoints; every
// Ready pod with an IP, not terminating, gives one endpoint per target port.
// Both are list+watched with @kubernetes/client-node informers; a watch that
// breaks is re-listed and resumed with backoff while the last known pool keeps
// serving.
import { CoreV1Api, CustomObjectsApi, KubeConfig, ListWatch, Watch, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import type { Datastore } from './datastore.ts';
import type { EndpointSpec } from './endpoint.ts';
import { supervise, type Supervision } from './k8s-informer.ts';

export interface KubeSourceOptions {
  /** InferencePool to follow; or, without it, `selector` + `targetPorts`. */
  poolName?: string;
  namespace: string;
  poolGroup: string;
  selector?: string;
  targetPorts?: number[];
}

interface InferencePool extends KubernetesObject {
  // v1: selector.matchLabels and targetPorts[].number; v1alpha2: a flat selector map and targetPortNumber.
  spec?: { selector?: { matchLabels?: Record<string, string> } & Record<string, unknown>; targetPorts?: { number?: number }[]; targetPortNumber?: number };
}

/** Selector labels and target ports of an InferencePool, v1 or v1alpha2. */
export function poolShape(pool: InferencePool): { labels: Record<string, string>; ports: number[] } {
  const sel = pool.spec?.selector ?? {};
  let labels: Record<string, string> = {};
  if (sel.matchLabels && typeof sel.matchLabels === 'object') labels = sel.matchLabels;
  else for (const [k, v] of Object.entries(sel)) if (typeof v === 'string') labels[k] = v;
  const raw = pool.spec?.targetPorts ? pool.spec.targetPorts.map((p) => p.number) : [pool.spec?.targetPortNumber];
  const ports = raw.filter((n): n is number => Number.isInteger(n) && n! > 0 && n! < 65536);
  return { labels, ports };
}

interface Shape {
  selector: string;
  ports: number[];
}

/** label map → "a=b,c=d" (sorted, so equal maps compare equal). */
export function selectorString(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

export function isPodReady(pod: V1Pod): boolean {
  if (!pod.status?.podIP || pod.metadata?.deletionTimestamp) return false;
  if (pod.status.phase !== undefined && pod.status.phase !== 'Running') return false;
  return (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Pod annotation listing the target ports that serve now (llm-d Router), and GAIE's key it still reads. */
export const ACTIVE_PORTS_ANNOTATIONS = ['llm-d.ai/active-ports', 'inference.networking.k8s.io/active-ports'] as const;

/**
 * The pool's target ports a pod serves on: all of them, or those its
 * active-ports annotation lists ("8000,8001"); entries that are not target
 * ports, or not numbers, are ignored, as llm-d Router does.
 */
export function activePorts(pod: V1Pod, ports: readonly number[]): ReadonlySet<number> {
  const ann = pod.metadata?.annotations ?? {};
  const key = ACTIVE_PORTS_ANNOTATIONS.find((k) => Object.hasOwn(ann, k));
  if (key === undefined) return new Set(ports);
  const listed = new Set<number>();
  // A target port list is short; the annotation is cut to what could matter.
  for (const part of ann[key].split(',', 64)) {
    const n = Number.parseInt(part.trim(), 10);
    if (n > 0 && ports.includes(n)) listed.add(n);
  }
  return listed;
}

/** Endpoints of the ready pods, one per active target port; names as GAIE's: pod, or pod-rank-N with several ports. */
export function podEndpoints(pods: readonly V1Pod[], ports: readonly number[]): EndpointSpec[] {
  const out: EndpointSpec[] = [];
  for (const pod of pods) {
    if (!isPodReady(pod)) continue;
    const name = pod.metadata?.name ?? pod.status!.podIP!;
    const active = activePorts(pod, ports);
    ports.forEach((port, rank) => {
      if (!active.has(port)) return;
      out.push({
        address: pod.status!.podIP!,
        port,
        name: ports.length > 1 ? `${name}-rank-${rank}` : name,
        namespace: pod.metadata?.namespace ?? 'default',
        labels: { ...(pod.metadata?.labels ?? {}) },
        nodeAddress: pod.status!.hostIP || undefined,
      });
    });
  }
  return out;
}

export class KubeSource {
  readonly #opts: KubeSourceOptions;
  readonly #store: Datastore;
  readonly #log: Logger;
  readonly #kc: KubeConfig;
  readonly #watch: Watch;
  #pool: ListWatch<InferencePool> | undefined;
  #pods: ListWatch<V1Pod> | undefined;
  #shape: Shape | undefined;
  #stopped = false;
  #poolSup: Supervision | undefined;
  #podsSup: Supervision | undefined;
  /** Bumped on every reshape: work of an older one is abandoned. */
  #generation = 0;
  /** The pods informer has completed its first list (its cache is the pod set). */
  #podsListed = false;
  #publishQueued = false;
  /** False while a watch is broken and being re-established. */
  synced = false;
  onSyncChange: ((synced: boolean) => void) | undefined;

  constructor(opts: KubeSourceOptions, store: Datastore, log: Logger, kc?: KubeConfig) {
    this.#opts = opts;
    this.#store = store;
    this.#log = log.child({ source: 'kubernetes' });
    if (kc) this.#kc = kc;
    else {
      this.#kc = new KubeConfig();
      this.#kc.loadFromDefault(); // in-cluster service account, else KUBECONFIG / ~/.kube/config
    }
    this.#watch = new Watch(this.#kc);
  }

  /** Resolves once the pool (if any) and its pods have been listed. */
  async start(): Promise<void> {
    const o = this.#opts;
    if (o.poolName) {
      const version = o.poolGroup === 'inference.networking.x-k8s.io' ? 'v1alpha2' : 'v1';
      const api = this.#kc.makeApiClient(CustomObjectsApi);
      const path = `/apis/${o.poolGroup}/${version}/namespaces/${o.namespace}/inferencepools`;
      const fieldSelector = `metadata.name=${o.poolName}`;
      const list = () =>
        api.listNamespacedCustomObject({ group: o.poolGroup, version, namespace: o.namespace, plural: 'inferencepools', fieldSelector }) as Promise<{
          items: InferencePool[];
          metadata?: { resourceVersion?: string };
        }>;
      const informer = new ListWatch<InferencePool>(path, this.#watch, list as never, false, undefined, fieldSelector);
      const onPool = (pool: InferencePool) => this.#applyPool(pool);
      informer.on('add', onPool);
      informer.on('update', onPool);
      informer.on('delete', () => {
        this.#log.error({ pool: o.poolName, namespace: o.namespace }, 'InferencePool deleted: no endpoints until it is back');
        this.#clear();
      });
      this.#poolSup = this.#supervise(informer, 'InferencePool');
      this.#pool = informer;
      // A failed first list is retried in the background (supervise); the
      // datastore stays unsynced, so readiness stays NOT_SERVING until it works.
      if ((await this.#poolSup.start()) && !informer.get(o.poolName, o.namespace)) {
        this.#log.warn({ pool: o.poolName, namespace: o.namespace }, 'InferencePool not found yet; waiting for it');
        this.#store.replaceAll([]);
      }
      // Wait for the first pod list of the pool found (if any).
      await this.#podsReady;
    } else {
      if (!o.selector || !o.targetPorts?.length) throw new Error('--endpoint-selector needs --endpoint-target-ports');
      await this.#reshape({ selector: o.selector, ports: o.targetPorts });
    }
    this.#setSynced(!this.#poolSup?.broken && !this.#podsSup?.broken);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#generation++;
    this.#poolSup?.stop();
    await Promise.allSettled([this.#pool?.stop(), this.#stopPods()]);
  }

  /** No valid pool: no endpoints (requests get 503) until it comes back. */
  #clear(): void {
    this.#generation++;
    this.#shape = undefined;
    void this.#stopPods();
    this.#store.replaceAll([]);
    this.#setSynced(!this.#poolSup?.broken);
  }

  #podsReady: Promise<void> = Promise.resolve();

  #applyPool(pool: InferencePool): void {
    const { labels, ports } = poolShape(pool);
    if (Object.keys(labels).length === 0 || ports.length === 0) {
      this.#log.error({ pool: pool.metadata?.name }, 'InferencePool has no selector or no target ports; no endpoints');
      this.#clear();
      return;
    }
    this.#podsReady = this.#reshape({ selector: selectorString(labels), ports });
  }

  /** The selector or ports changed: follow the new pod set. */
  async #reshape(shape: Shape): Promise<void> {
    const old = this.#shape;
    this.#shape = shape;
    if (old && old.selector === shape.selector && this.#pods) {
      // Same pods, other ports: recompute from the cache.
      if (old.ports.join() !== shape.ports.join()) this.#schedulePublish();
      return;
    }
    const generation = ++this.#generation;
    // Stop the old informer before any await, so two quick reshapes never
    // leave an older one running or publishing.
    const previous = this.#pods;
    this.#pods = undefined;
    this.#podsListed = false;
    this.#podsSup?.stop();
    this.#podsSup = undefined;
    if (previous) await previous.stop();
    if (generation !== this.#generation || this.#stopped) return;
    const ns = this.#opts.namespace;
    const core = this.#kc.makeApiClient(CoreV1Api);
    const informer = new ListWatch<V1Pod>(
      `/api/v1/namespaces/${ns}/pods`,
      this.#watch,
      () => core.listNamespacedPod({ namespace: ns, labelSelector: shape.selector }),
      false,
      shape.selector,
    );
    // Events of an informer that is no longer current are ignored.
    const changed = () => {
      if (informer === this.#pods) this.#schedulePublish();
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    const sup = this.#supervise(informer, 'Pods');
    this.#podsSup = sup;
    this.#pods = informer;
    this.#log.info({ selector: shape.selector, ports: shape.ports }, 'watching pods');
    const ok = await sup.start();
    if (generation !== this.#generation || this.#stopped) {
      // Superseded while listing (client-node would still open its watch): stop it.
      sup.stop();
      await informer.stop();
      return;
    }
    if (ok) {
      this.#podsListed = true;
      this.#publish();
    }
    this.#setSynced(!this.#poolSup?.broken && !sup.broken);
  }

  async #stopPods(): Promise<void> {
    const p = this.#pods;
    this.#pods = undefined;
    this.#podsListed = false;
    this.#podsSup?.stop();
    this.#podsSup = undefined;
    if (p) await p.stop();
  }

  /** Coalesce the events of one list or burst into one pool update. */
  #schedulePublish(): void {
    if (this.#publishQueued) return;
    this.#publishQueued = true;
    setImmediate(() => {
      this.#publishQueued = false;
      this.#publish();
    });
  }

  #publish(): void {
    // Only a current informer that has listed at least once knows the pod set.
    if (!this.#pods || !this.#shape || !this.#podsListed || this.#stopped) return;
    const specs = podEndpoints(this.#pods.list(this.#opts.namespace), this.#shape.ports);
    const change = this.#store.replaceAll(specs);
    if (change.added.length || change.removed.length) {
      this.#log.info({ endpoints: specs.length, added: change.added.map((e) => e.key), removed: change.removed.map((e) => e.key) }, 'endpoint pool changed');
    }
  }

  /** A broken watch: log, keep the last pool, re-list and resume with backoff. */
  #supervise(informer: ListWatch<KubernetesObject>, what: string): Supervision {
    return supervise(informer, what, this.#log, {
      onBroken: () => this.#setSynced(false),
      onRecovered: () => {
        if (informer === this.#pods) this.#podsListed = true;
        this.#publish();
        this.#setSynced(!this.#poolSup?.broken && !this.#podsSup?.broken);
      },
    });
  }

  #setSynced(synced: boolean): void {
    if (this.synced === synced) return;
    this.synced = synced;
    this.onSyncChange?.(synced);
  }
}
