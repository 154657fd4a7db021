// max-score-picker: highest total score first; equal scores in random order
// (shuffle, then a stable sort), so ties spread load instead of piling up.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Picker, ScoredEndpoint } from '../framework.ts';
import { definePlugin } from '../registry.ts';
import { MAX_ENDPOINTS_PARAM, shuffle } from './shuffle.ts';

class MaxScorePicker implements Picker {
  readonly type = 'max-score-picker';
  readonly name: string;
  readonly maxEndpoints: number | undefined;
  readonly #random: () => number;

  constructor(name: string, max: number | undefined, random: () => number) {
    this.name = name;
    this.maxEndpoints = max;
    this.#random = random;
  }

  pick(_state: CycleState, scored: readonly ScoredEndpoint[], max: number): Endpoint[] {
    const order = shuffle([...scored], this.#random).sort((a, b) => b.score - a.score);
    return order.slice(0, max).map((s) => s.endpoint);
  }
}

export const maxScorePicker = definePlugin({
  type: 'max-score-picker',
  description: 'Picks the highest total score; ties are broken at random. The rest, in score order, are the fallbacks.',
  params: { maxNumOfEndpoints: MAX_ENDPOINTS_PARAM },
  create: (name, p, ctx) => new MaxScorePicker(name, p.maxNumOfEndpoints, ctx.random),
});
