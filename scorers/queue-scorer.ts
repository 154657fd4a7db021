// queue-scorer: fewer waiting requests scores higher, min-max normalised over
// the candidates: (maxQ − q) / (maxQ − minQ); all equal ⇒ 1. By default q also
// counts the requests llm-epp routed to the endpoint since its last scrape was
// sent, so picks inside one scrape window do not all land on the same endpoint.
import { queueDepth, type Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { invertedMinMax } from '../src/scheduling/normalize.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

const reportedQueue = (e: Endpoint): number => e.metrics?.waitingQueueSize ?? 0;

class QueueScorer implements Scorer {
  readonly type = 'queue-scorer';
  readonly category = 'distribution';
  readonly name: string;
  readonly #queue: (e: Endpoint) => number;

  constructor(name: string, countRoutedSinceScrape: boolean) {
    this.name = name;
    this.#queue = countRoutedSinceScrape ? queueDepth : reportedQueue;
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    return invertedMinMax(endpoints.map(this.#queue));
  }
}

export const queueScorer = definePlugin({
  type: 'queue-scorer',
  description: 'Prefers short waiting queues: (maxQ − q) / (maxQ − minQ) over the candidates, 1.0 when all are equal.',
  params: {
    countRoutedSinceScrape: {
      type: 'boolean',
      default: true,
      doc: 'Add to the reported queue the requests routed to the endpoint since its last scrape was sent (false: the reported queue only, exactly as GAIE).',
    },
  },
  create: (name, p) => new QueueScorer(name, p.countRoutedSinceScrape),
});
