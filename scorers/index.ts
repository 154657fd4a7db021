// Scorer registrations: adding a scorer is its file plus one line here.
import type { PluginDefinition } from '../src/scheduling/registry.ts';
import { activeRequestScorer } from './active-request-scorer.ts';
import { endpointAttributeScorer } from './endpoint-attribute-scorer.ts';
import { kvCacheUtilizationScorer } from './kv-cache-utilization-scorer.ts';
import { loadAwareScorer } from './load-aware-scorer.ts';
import { loraAffinityScorer } from './lora-affinity-scorer.ts';
import { noHitLruScorer } from './no-hit-lru-scorer.ts';
import { prefixCacheScorer } from './prefix-cache-scorer.ts';
import { precisePrefixCacheScorer } from './precise-prefix-cache-scorer.ts';
import { queueScorer } from './queue-scorer.ts';
import { runningRequestsSizeScorer } from './running-requests-size-scorer.ts';
import { sessionAffinityScorer } from './session-affinity-scorer.ts';
import { tokenLoadScorer } from './token-load-scorer.ts';

export const SCORERS: readonly PluginDefinition<any>[] = [
  queueScorer,
  kvCacheUtilizationScorer,
  prefixCacheScorer,
  precisePrefixCacheScorer,
  loadAwareScorer,
  activeRequestScorer,
  tokenLoadScorer,
  sessionAffinityScorer,
  loraAffinityScorer,
  noHitLruScorer,
  runningRequestsSizeScorer,
  endpointAttributeScorer,
];
