// random-picker: uniform choice, ignoring scores.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Picker, ScoredEndpoint } from '../framework.ts';
import { definePlugin } from '../registry.ts';
import { shuffle } from '../../random.ts';
import { MAX_ENDPOINTS_PARAM } from './params.ts';

class RandomPicker implements Picker {
  readonly type = 'random-picker';
  readonly name: string;
  readonly maxEndpoints: number | undefined;
  readonly #random: () => number;

  constructor(name: string, max: number | undefined, random: () => number) {
    this.name = name;
    this.maxEndpoints = max;
    this.#random = random;
  }

  pick(_state: CycleState, scored: readonly ScoredEndpoint[], max: number): Endpoint[] {
    return shuffle(scored.map((s) => s.endpoint), this.#random).slice(0, max);
  }
}

export const randomPicker = definePlugin({
  type: 'random-picker',
  description: 'Picks uniformly at random among the filtered endpoints.',
  params: { maxNumOfEndpoints: MAX_ENDPOINTS_PARAM },
  create: (name, p, ctx) => new RandomPicker(name, p.maxNumOfEndpoints, ctx.random),
});
