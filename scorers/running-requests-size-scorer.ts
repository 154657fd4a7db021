// running-requests-size-scorer: the queue-scorer formula on running requests.
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { invertedMinMax } from '../src/scheduling/normalize.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class RunningRequestsSizeScorer implements Scorer {
  readonly type = 'running-requests-size-scorer';
  readonly category = 'distribution';
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    return invertedMinMax(endpoints.map((e) => e.metrics?.runningRequests ?? 0));
  }
}

export const runningRequestsSizeScorer = definePlugin({
  type: 'running-requests-size-scorer',
  description: 'Prefers fewer running requests: (maxR − r) / (maxR − minR), 1.0 when all are equal.',
  params: {},
  create: (name) => new RunningRequestsSizeScorer(name),
});
