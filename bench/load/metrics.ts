// Scrape the prefix-cache counters of vLLM pods (or simulated pods) for the
// report's hit rate: vllm:prefix_cache_hits_total and
// vllm:prefix_cache_queries_total, summed over label sets.
import { request } from 'undici';
import type { PodCacheCounters } from './runner.ts';

const HITS = ['vllm:prefix_cache_hits_total', 'vllm:gpu_prefix_cache_hits_total'];
const QUERIES = ['vllm:prefix_cache_queries_total', 'vllm:gpu_prefix_cache_queries_total'];

/** Sum the samples of the first metric name in `names` present in a Prometheus text exposition. */
export function sumCounter(text: string, names: readonly string[]): number | undefined {
  for (const name of names) {
    let found = false;
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const rest = line.slice(name.length);
      if (rest[0] !== '{' && rest[0] !== ' ') continue;
      // The value follows the labels, or the name when there are none.
      const v = Number((rest[0] === '{' ? rest.slice(rest.lastIndexOf('}') + 1) : rest).trim().split(/\s+/)[0]);
      if (Number.isFinite(v)) {
        sum += v;
        found = true;
      }
    }
    if (found) return sum;
  }
  return undefined;
}

export function parseCacheCounters(text: string): { hits: number; queries: number } {
  return { hits: sumCounter(text, HITS) ?? 0, queries: sumCounter(text, QUERIES) ?? 0 };
}

/**
 * A scraper for RunOptions.cacheCounters. `targets` maps a pod name to its
 * metrics URL; a plain URL list names pods by host:port.
 */
export function cacheScraper(targets: Record<string, string> | string[]): () => Promise<PodCacheCounters> {
  const entries: Array<[string, string]> = Array.isArray(targets)
    ? targets.map((u) => {
        const url = new URL(u);
        return [url.host, u];
      })
    : Object.entries(targets);
  return async () => {
    const out: PodCacheCounters = {};
    await Promise.all(
      entries.map(async ([pod, url]) => {
        try {
          const res = await request(url, { headersTimeout: 5000, bodyTimeout: 5000 });
          const text = await res.body.text();
          if (res.statusCode === 200) out[pod] = parseCacheCounters(text);
        } catch {
          // A pod that cannot be scraped is left out of the hit rate.
        }
      }),
    );
    return out;
  };
}
