import { describe, expect, it } from 'vitest';
import type { Scorer } from '../../src/scheduling/framework.ts';
import { create, makePool, state } from '../helpers/scheduling.ts';

describe('lora-affinity-scorer', () => {
  it('active 1.0, free slot 0.8, waiting 0.6, no room 0', () => {
    const { pool, endpoints } = makePool([
      { lora: { maxActiveModels: 2, activeModels: ['sql-lora', 'x'], waitingModels: [] } }, // active
      { lora: { maxActiveModels: 2, activeModels: ['x'], waitingModels: [] } }, // slot free
      { lora: { maxActiveModels: 2, activeModels: ['x'], waitingModels: ['sql-lora'] } }, // waiting, full
      { lora: { maxActiveModels: 1, activeModels: ['x'], waitingModels: ['y'] } }, // full
      {}, // no LoRA info
    ]);
    const s = create<Scorer>('lora-affinity-scorer', {}, pool);
    expect([...s.score(state({ model: 'sql-lora', prompt: 'q' }), endpoints)]).toEqual([1, 0.8, 0.6, 0, 0]);
  });
});
