// lora-affinity-scorer: the request's model is a LoRA adapter name. Already
// running on the endpoint ⇒ 1.0; not loaded but a slot is free ⇒ 0.8;
// waiting to load there ⇒ 0.6; no room ⇒ 0. From vllm:lora_requests_info.
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class LoraAffinityScorer implements Scorer {
  readonly type = 'lora-affinity-scorer';
  readonly category = 'affinity';
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    const model = state.request.targetModel;
    for (let i = 0; i < endpoints.length; i++) {
      const lora = endpoints[i].metrics?.lora;
      if (!lora) continue;
      if (lora.activeModels.includes(model)) out[i] = 1;
      else if (lora.activeModels.length + lora.waitingModels.length < lora.maxActiveModels) out[i] = 0.8;
      else if (lora.waitingModels.includes(model)) out[i] = 0.6;
    }
    return out;
  }
}

export const loraAffinityScorer = definePlugin({
  type: 'lora-affinity-scorer',
  description: 'Adapter running ⇒ 1.0; a free adapter slot ⇒ 0.8; adapter waiting ⇒ 0.6; otherwise 0.',
  params: {},
  create: (name) => new LoraAffinityScorer(name),
});
