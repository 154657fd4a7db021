// The endpoint pool: the one place that knows which endpoints exist. Sources
// (static list, file, later Kubernetes) replace its contents; the collector
// and the scheduler read it. Endpoint objects keep their identity (and their
// scraped metrics) across updates that keep their key.
import { EventEmitter } from 'node:events';
import { createEndpoint, type Endpoint, type EndpointSpec } from './endpoint.ts';

export interface PoolChange {
  added: Endpoint[];
  removed: Endpoint[];
}

export interface EndpointPool {
  /** Current endpoints, in a stable order. Do not mutate. */
  list(): readonly Endpoint[];
  get(key: string): Endpoint | undefined;
  /** True once a source has delivered the pool at least once. */
  readonly synced: boolean;
  on(event: 'change', listener: (change: PoolChange) => void): this;
  off(event: 'change', listener: (change: PoolChange) => void): this;
}

export class Datastore extends EventEmitter implements EndpointPool {
  #byKey = new Map<string, Endpoint>();
  #list: readonly Endpoint[] = [];
  #synced = false;

  get synced(): boolean {
    return this.#synced;
  }

  list(): readonly Endpoint[] {
    return this.#list;
  }

  get(key: string): Endpoint | undefined {
    return this.#byKey.get(key);
  }

  /** Replace the whole pool. Duplicated keys keep the first spec. */
  replaceAll(specs: readonly EndpointSpec[]): PoolChange {
    const next = new Map<string, Endpoint>();
    const added: Endpoint[] = [];
    for (const spec of specs) {
      const fresh = createEndpoint(spec);
      if (next.has(fresh.key)) continue;
      const existing = this.#byKey.get(fresh.key);
      if (existing) {
        existing.name = fresh.name;
        existing.namespace = fresh.namespace;
        existing.labels = fresh.labels;
        existing.nodeAddress = fresh.nodeAddress;
        next.set(fresh.key, existing);
      } else {
        next.set(fresh.key, fresh);
        added.push(fresh);
      }
    }
    const removed: Endpoint[] = [];
    for (const [key, ep] of this.#byKey) if (!next.has(key)) removed.push(ep);
    this.#byKey = next;
    this.#list = Object.freeze([...next.values()]);
    this.#synced = true;
    const change = { added, removed };
    this.emit('change', change);
    return change;
  }
}
