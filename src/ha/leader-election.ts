// Active-passive HA with a coordination.k8s.io Lease, as the GAIE EPP runs it:
// the replica holding the lease is the leader (only it reports readiness
// SERVING); the others watch the lease and take it over once its holder has
// not renewed it for the lease duration. Expiry is judged on this process's
// clock from when the lease was last seen changing (as client-go does), so
// skewed clocks between replicas do not matter.
import { CoordinationV1Api, KubeConfig, V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.ts';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs?: number;
  /** How often the leader renews and followers look. */
  retryPeriodMs?: number;
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number };
  return e?.code ?? e?.statusCode;
}

export class LeaderElector {
  readonly identity: string;
  readonly #api: CoordinationV1Api;
  readonly #ns: string;
  readonly #name: string;
  readonly #durationMs: number;
  readonly #retryMs: number;
  readonly #log: Logger;
  #leader = false;
  #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #tickRunning: Promise<void> | undefined;
  #stopped = false;
  #lastRenew = 0;
  // What we last saw of someone else's lease, and when (local clock).
  #observed = '';
  #observedAt = 0;
  onChange: ((leader: boolean) => void) | undefined;

  constructor(kc: KubeConfig, opts: LeaderElectionOptions, log: Logger) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#ns = opts.namespace;
    this.#name = opts.name;
    this.identity = opts.identity ?? `${hostname()}_${randomUUID().slice(0, 8)}`;
    this.#durationMs = opts.leaseDurationMs ?? 15_000;
    this.#retryMs = opts.retryPeriodMs ?? 2_000;
    this.#log = log.child({ component: 'leader-election', lease: `${opts.namespace}/${opts.name}`, identity: this.identity });
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** A leader that has not renewed for this long steps down, before the lease can expire for others. */
  get #renewDeadlineMs(): number {
    return Math.max(this.#retryMs, Math.floor((this.#durationMs * 2) / 3));
  }

  start(): void {
    this.#stopped = false;
    this.#tickRunning = this.#tick();
  }

  /** Stop; a leader releases the lease so a standby takes over at once. */
  async stop(release = true): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#deadline) clearTimeout(this.#deadline);
    // Let an in-flight renewal land first, or the release would conflict with it.
    await this.#tickRunning;
    if (release && this.#leader) {
      try {
        const lease = await this.#api.readNamespacedLease({ name: this.#name, namespace: this.#ns });
        if (lease.spec?.holderIdentity === this.identity) {
          lease.spec.holderIdentity = '';
          lease.spec.leaseDurationSeconds = 1;
          lease.spec.renewTime = new V1MicroTime();
          await this.#api.replaceNamespacedLease({ name: this.#name, namespace: this.#ns, body: lease });
        }
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'could not release the lease');
      }
    }
    this.#set(false);
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#tryAcquireOrRenew();
    } catch (err) {
      if (!this.#stopped) this.#log.warn({ err: (err as Error).message ?? String(err) }, 'lease update failed');
    }
    if (!this.#stopped) this.#timer = setTimeout(() => (this.#tickRunning = this.#tick()), this.#retryMs);
  }

  async #tryAcquireOrRenew(): Promise<void> {
    // MicroTime: the API server only parses six-digit fractional seconds.
    const now = new V1MicroTime();
    let lease: V1Lease | undefined;
    try {
      lease = await this.#api.readNamespacedLease({ name: this.#name, namespace: this.#ns });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const durationSeconds = Math.max(1, Math.ceil(this.#durationMs / 1000));
    if (!lease) {
      await this.#api.createNamespacedLease({
        namespace: this.#ns,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.#name, namespace: this.#ns },
          spec: { holderIdentity: this.identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        },
      });
      if (!this.#stopped) this.#won();
      return;
    }
    const spec = (lease.spec ??= {});
    const holder = spec.holderIdentity ?? '';
    if (holder !== this.identity) {
      const seen = `${holder}|${String(spec.renewTime)}|${lease.metadata?.resourceVersion}`;
      if (seen !== this.#observed) {
        this.#observed = seen;
        this.#observedAt = Date.now();
      }
      const duration = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
      if (holder !== '' && Date.now() - this.#observedAt < duration) {
        this.#set(false);
        return;
      }
      spec.acquireTime = now;
      spec.leaseTransitions = (spec.leaseTransitions ?? 0) + 1;
    }
    spec.holderIdentity = this.identity;
    spec.leaseDurationSeconds = durationSeconds;
    spec.renewTime = now;
    // Replace with the resourceVersion read: a concurrent writer makes this fail with 409.
    try {
      await this.#api.replaceNamespacedLease({ name: this.#name, namespace: this.#ns, body: lease });
    } catch (err) {
      if (statusOf(err) === 409) {
        this.#set(false);
        return;
      }
      throw err;
    }
    if (!this.#stopped) this.#won();
  }

  #won(): void {
    this.#lastRenew = performance.now();
    this.#set(true);
    // Step down by a timer, not after the next API call returns: a hanging
    // call must not keep a stale leader serving next to a new one.
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => {
      if (this.#leader && performance.now() - this.#lastRenew >= this.#renewDeadlineMs) {
        this.#log.error('could not renew the lease in time; stepping down');
        this.#set(false);
      }
    }, this.#renewDeadlineMs);
  }

  #set(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.#log.info({ leader }, leader ? 'became the leader' : 'not the leader');
    this.onChange?.(leader);
  }
}
