// The registry of every plugin llm-epp ships: filters, pickers and the
// profile handler here, scorers from scorers/index.ts.
import { SCORERS } from '../../scorers/index.ts';
import { ApproxPrefixProducer, PREFIX_PARAMS } from './producers/approx-prefix.ts';
import { byLabelFilter } from './filters/by-label.ts';
import { labelSelectorFilter } from './filters/label-selector.ts';
import { prefixCacheAffinityFilter } from './filters/prefix-cache-affinity.ts';
import { decodeFilter, prefillFilter } from './filters/role.ts';
import { maxScorePicker } from './pickers/max-score.ts';
import { randomPicker } from './pickers/random.ts';
import { weightedRandomPicker } from './pickers/weighted-random.ts';
import { singleProfileHandler } from './profile-handlers/single.ts';
import { definePlugin, PluginRegistry } from './registry.ts';
import { concurrencyDetector } from './saturation/concurrency-detector.ts';
import { utilizationDetector } from './saturation/utilization-detector.ts';
import { coreMetricsExtractor, metricsDataSource, openaiParser } from './data-layer.ts';

const approxPrefixCacheProducer = definePlugin({
  type: 'approx-prefix-cache-producer',
  description: 'The approximate prefix index on its own (prefix-cache-scorer already includes one).',
  params: PREFIX_PARAMS,
  create: (name, p, ctx) => new ApproxPrefixProducer('approx-prefix-cache-producer', name, p, ctx),
});

// llm-d configs declare this producer next to token-load-scorer and
// active-request-scorer. llm-epp always counts in-flight requests and prompt
// tokens per endpoint (request-control/director.ts), so the declaration is all there is to it.
const inflightLoadProducer = definePlugin({
  type: 'inflight-load-producer',
  description: 'Accepted for llm-d configs: llm-epp always tracks in-flight requests and prompt tokens per endpoint, which active-request-scorer and token-load-scorer read.',
  params: {},
  create: (name) => ({ type: 'inflight-load-producer', name }),
});

export function createRegistry(): PluginRegistry {
  const r = new PluginRegistry();
  for (const def of SCORERS) r.register(def);
  r.register(decodeFilter);
  r.register(prefillFilter);
  r.register(labelSelectorFilter);
  r.register(byLabelFilter);
  r.register(prefixCacheAffinityFilter);
  r.register(maxScorePicker);
  r.register(randomPicker);
  r.register(weightedRandomPicker);
  r.register(singleProfileHandler);
  r.register(approxPrefixCacheProducer);
  r.register(inflightLoadProducer);
  r.register(utilizationDetector);
  r.register(concurrencyDetector);
  r.register(metricsDataSource);
  r.register(coreMetricsExtractor);
  r.register(openaiParser);
  return r;
}
