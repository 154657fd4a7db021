// weighted-random-picker: probability proportional to score, by A-Res
// weighted reservoir sampling (key = U^(1/w), largest keys win), which also
// yields a weighted order without replacement for the fallbacks. Endpoints
// with score ≤ 0 come last; if all are ≤ 0 the choice is uniform.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Picker, ScoredEndpoint } from '../framework.ts';
import { definePlugin } from '../registry.ts';
import { MAX_ENDPOINTS_PARAM } from './params.ts';

class WeightedRandomPicker implements Picker {
  readonly type = 'weighted-random-picker';
  readonly name: string;
  readonly maxEndpoints: number | undefined;
  readonly #random: () => number;

  constructor(name: string, max: number | undefined, random: () => number) {
    this.name = name;
    this.maxEndpoints = max;
    this.#random = random;
  }

  pick(_state: CycleState, scored: readonly ScoredEndpoint[], max: number): Endpoint[] {
    const keyed = scored.map((s) => {
      const u = this.#random();
      // Non-positive weights sort after every positive key (which lies in (0, 1]).
      return { endpoint: s.endpoint, key: s.score > 0 ? Math.pow(u, 1 / s.score) : u - 1 };
    });
    keyed.sort((a, b) => b.key - a.key);
    return keyed.slice(0, max).map((k) => k.endpoint);
  }
}

export const weightedRandomPicker = definePlugin({
  type: 'weighted-random-picker',
  description: 'Picks at random with probability proportional to the total score (A-Res); uniform when every score is 0.',
  params: { maxNumOfEndpoints: MAX_ENDPOINTS_PARAM },
  create: (name, p, ctx) => new WeightedRandomPicker(name, p.maxNumOfEndpoints, ctx.random),
});
