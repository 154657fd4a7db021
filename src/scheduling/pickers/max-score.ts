// max-score-picker: highest total score first; equal scores in random order,
// so ties spread load instead of piling up. A random key per endpoint breaks
// ties and the best `max` are selected directly: O(n × max), no array copy or
// sort of all candidates (max is 1 + fallbacks).
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Picker, ScoredEndpoint } from '../framework.ts';
import { definePlugin } from '../registry.ts';
import { MAX_ENDPOINTS_PARAM } from './params.ts';

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
    const n = scored.length;
    const k = Math.min(max, n);
    const tie = new Float64Array(n);
    for (let i = 0; i < n; i++) tie[i] = this.#random();
    const taken = new Uint8Array(n);
    const out: Endpoint[] = [];
    for (let r = 0; r < k; r++) {
      let best = -1;
      for (let i = 0; i < n; i++) {
        if (taken[i]) continue;
        if (best < 0 || scored[i].score > scored[best].score || (scored[i].score === scored[best].score && tie[i] < tie[best])) best = i;
      }
      taken[best] = 1;
      out.push(scored[best].endpoint);
    }
    return out;
  }
}

export const maxScorePicker = definePlugin({
  type: 'max-score-picker',
  description: 'Picks the highest total score; ties are broken at random. The rest, in score order, are the fallbacks.',
  params: { maxNumOfEndpoints: MAX_ENDPOINTS_PARAM },
  create: (name, p, ctx) => new MaxScorePicker(name, p.maxNumOfEndpoints, ctx.random),
});
