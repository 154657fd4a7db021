// queue-scorer: fewer waiting requests scores higher, min-max normalised over
// the candidates: (maxQ − q) / (maxQ − minQ); all equal ⇒ 1.
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { invertedMinMax } from '../src/scheduling/normalize.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class QueueScorer implements Scorer {
  readonly type = 'queue-scorer';
  readonly category = 'distribution';
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    return invertedMinMax(endpoints.map((e) => e.metrics?.waitingQueueSize ?? 0));
  }
}

export const queueScorer = definePlugin({
  type: 'queue-scorer',
  description: 'Prefers short waiting queues: (maxQ − q) / (maxQ − minQ) over the candidates, 1.0 when all are equal.',
  params: {},
  create: (name) => new QueueScorer(name),
});
