// approx-prefix-cache-producer autoTune: each endpoint's LRU holds as many
// blocks as that endpoint reports in cache_config_info num_gpu_blocks; without
// a report (or with autoTune off) it holds lruCapacityPerServer
// (scheduling.md §4.1 step 9; src/scheduling/producers/approx-prefix.ts produce()).
import { describe, expect, it } from 'vitest';
import type { PrefixCacheScorer } from '../scorers/prefix-cache-scorer.ts';
import { extractMetrics, getEngine, wantedMetricNames } from '../src/metrics/engines.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { ApproxPrefixProducer, PrefixResult } from '../src/scheduling/producers/approx-prefix.ts';
import { create, makePool, state, type EpSpec } from './helpers/scheduling.ts';

const BLOCKS = 20;
// 16-token blocks × 4 characters = 64 bytes a block: exactly BLOCKS full blocks.
const body = (tag = 'a') => ({ model: 'm', prompt: tag.repeat(64 * BLOCKS) });

/** Produce for `candidates`, then record the request's blocks on `target` (as after a pick). */
async function route(p: ApproxPrefixProducer, candidates: readonly Endpoint[], target: Endpoint, b = body()): Promise<PrefixResult> {
  const st = state(b);
  p.produce(st, candidates);
  const r = st.get(p.matchKey)!;
  p.preRequest(st, target, new Map());
  await new Promise((res) => setImmediate(res)); // recorded off the critical path
  return r;
}

function producer(specs: EpSpec[], params: Record<string, unknown>) {
  const { pool, endpoints } = makePool(specs);
  return { p: create<ApproxPrefixProducer>('approx-prefix-cache-producer', params, pool), endpoints, pool };
}

describe('approx-prefix-cache-producer autoTune: LRU capacity from num_gpu_blocks', () => {
  it('caps each endpoint at its own reported num_gpu_blocks; unreported ones get lruCapacityPerServer', async () => {
    const { p, endpoints } = producer([{ cacheNumGpuBlocks: 5 }, { cacheNumGpuBlocks: 12 }, {}], { lruCapacityPerServer: 8 });
    const r = await route(p, endpoints, endpoints[0]);
    expect(r.total).toBe(BLOCKS);
    await route(p, endpoints, endpoints[1]);
    await route(p, endpoints, endpoints[2]);
    expect(endpoints.map((e) => p.index.podSize(e.key))).toEqual([5, 12, 8]);
  });

  it('is on by default (GAIE autoTune: true)', async () => {
    const { p, endpoints } = producer([{ cacheNumGpuBlocks: 3 }], {});
    await route(p, endpoints, endpoints[0]);
    expect(p.index.podSize(endpoints[0].key)).toBe(3);
  });

  it('a reported capacity larger than lruCapacityPerServer is used too', async () => {
    const { p, endpoints } = producer([{ cacheNumGpuBlocks: 1000 }], { lruCapacityPerServer: 4 });
    await route(p, endpoints, endpoints[0]);
    expect(p.index.podSize(endpoints[0].key)).toBe(BLOCKS);
  });

  it('autoTune: false ignores the report and uses lruCapacityPerServer', async () => {
    const { p, endpoints } = producer([{ cacheNumGpuBlocks: 5 }, { cacheNumGpuBlocks: 1000 }], { autoTune: false, blockSizeTokens: 16, lruCapacityPerServer: 9 });
    await route(p, endpoints, endpoints[0]);
    await route(p, endpoints, endpoints[1]);
    expect(endpoints.map((e) => p.index.podSize(e.key))).toEqual([9, 9]);
  });

  it('a reported 0 falls back to lruCapacityPerServer', async () => {
    const { p, endpoints } = producer([{ cacheNumGpuBlocks: 0 }], { lruCapacityPerServer: 7 });
    await route(p, endpoints, endpoints[0]);
    expect(p.index.podSize(endpoints[0].key)).toBe(7);
  });

  it('the capacity decides the match: a small cache has evicted the prompt\'s first blocks, so it no longer matches', async () => {
    const { p, endpoints } = producer([{ cacheNumGpuBlocks: 5 }, { cacheNumGpuBlocks: 100 }], {});
    await route(p, endpoints, endpoints[0]);
    await route(p, endpoints, endpoints[1]);
    const again = await route(p, endpoints, endpoints[1]);
    // The small pod kept only the last 5 blocks; the match walks from block 0.
    expect(again.matched.get(endpoints[0].key) ?? 0).toBe(0);
    expect(again.matched.get(endpoints[1].key)).toBe(BLOCKS);
  });

  it('follows a changed report: a pod that now reports fewer blocks is evicted down to it on the next request', async () => {
    const { p, endpoints } = producer([{ cacheNumGpuBlocks: 15 }], {});
    await route(p, endpoints, endpoints[0]);
    expect(p.index.podSize(endpoints[0].key)).toBe(15);
    endpoints[0].metrics = { ...endpoints[0].metrics!, cacheNumGpuBlocks: 4 };
    const st = state(body('b'));
    p.produce(st, endpoints); // capacity is applied when the candidates are seen
    expect(p.index.podSize(endpoints[0].key)).toBe(4);
  });

  it('the producer auto-created by prefix-cache-scorer autotunes the same way', async () => {
    const { pool, endpoints } = makePool([{ cacheNumGpuBlocks: 6 }, {}]);
    const s = create<PrefixCacheScorer>('prefix-cache-scorer', { lruCapacityPerServer: 10 }, pool);
    for (const target of endpoints) {
      const st = state(body());
      s.produce(st, endpoints);
      s.preRequest(st, target, new Map());
      await new Promise((res) => setImmediate(res));
    }
    expect(endpoints.map((e) => (s.producer as ApproxPrefixProducer).index.podSize(e.key))).toEqual([6, 10]);
  });

  it('end to end from a vLLM metrics page: cache_config_info num_gpu_blocks becomes the LRU capacity', async () => {
    const vllm = getEngine('vllm')!;
    const page = [
      'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="11"} 1.0',
      'vllm:num_requests_running{engine="0",model_name="m"} 0.0',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 0.0',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.0',
    ].join('\n');
    const { p, endpoints } = producer([{}], { lruCapacityPerServer: 31250 });
    endpoints[0].metrics = extractMetrics(vllm, parsePrometheusText(page, wantedMetricNames(vllm)));
    expect(endpoints[0].metrics.cacheNumGpuBlocks).toBe(11);
    await route(p, endpoints, endpoints[0]);
    expect(p.index.podSize(endpoints[0].key)).toBe(11);
  });
});
