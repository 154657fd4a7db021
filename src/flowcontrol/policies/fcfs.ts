// fcfs-ordering-policy (llm-d's default ordering): the request that entered
// flow control first goes first.
import { definePlugin } from '../../scheduling/registry.ts';
import type { OrderingPolicy, QueuedRequest } from '../types.ts';

export const FCFS_ORDERING_POLICY = 'fcfs-ordering-policy';

export class FcfsOrderingPolicy implements OrderingPolicy {
  readonly type = FCFS_ORDERING_POLICY;
  readonly flowControl = 'ordering' as const;
  readonly name: string;

  constructor(name: string = FCFS_ORDERING_POLICY) {
    this.name = name;
  }

  less(a: QueuedRequest, b: QueuedRequest): boolean {
    return firstCome(a, b);
  }
}

/** `a` entered flow control before `b` (arrival order breaks ties): fcfs, and the other orderings' tie-break. */
export function firstCome(a: QueuedRequest, b: QueuedRequest): boolean {
  return a.enqueuedAt !== b.enqueuedAt ? a.enqueuedAt < b.enqueuedAt : a.seq < b.seq;
}

export const fcfsOrderingPolicy = definePlugin({
  type: FCFS_ORDERING_POLICY,
  description: 'Flow control ordering: first come, first served within a flow (by the time the request entered flow control). The default ordering policy.',
  params: {},
  create: (name) => new FcfsOrderingPolicy(name),
});
