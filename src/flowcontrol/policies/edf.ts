// edf-ordering-policy: earliest deadline first, the deadline being the time
// the request entered flow control plus its TTL. A request without a TTL
// (defaultRequestTTL: 0s) has no deadline and goes after every one that has.
// Ties: first come, first served.
import { definePlugin } from '../../scheduling/registry.ts';
import type { OrderingPolicy, QueuedRequest } from '../types.ts';
import { firstCome } from './fcfs.ts';

export const EDF_ORDERING_POLICY = 'edf-ordering-policy';

function deadline(q: QueuedRequest): number {
  return q.ttl > 0 ? q.enqueuedAt + q.ttl : Number.POSITIVE_INFINITY;
}

export class EdfOrderingPolicy implements OrderingPolicy {
  readonly type = EDF_ORDERING_POLICY;
  readonly flowControl = 'ordering' as const;
  readonly name: string;

  constructor(name: string = EDF_ORDERING_POLICY) {
    this.name = name;
  }

  less(a: QueuedRequest, b: QueuedRequest): boolean {
    const da = deadline(a);
    const db = deadline(b);
    if (da !== db) return da < db;
    return firstCome(a, b);
  }
}

export const edfOrderingPolicy = definePlugin({
  type: EDF_ORDERING_POLICY,
  description: 'Flow control ordering: earliest deadline first, the deadline being enqueue time + the request TTL (defaultRequestTTL); requests without a TTL go last; ties first come, first served.',
  params: {},
  create: (name) => new EdfOrderingPolicy(name),
});
