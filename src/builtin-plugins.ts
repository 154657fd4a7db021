// The one composition place: the registry of every plugin llm-epp ships,
// by type name. Each plugin is a file of its own (with its test) under
// src/scheduling/{filters,pickers,profile-handlers,producers,saturation}/ or
// scorers/; adding one is a line here (scorers: a line in scorers/index.ts).
import { SCORERS } from '../scorers/index.ts';
import { approxPrefixCacheProducer } from './scheduling/producers/approx-prefix.ts';
import { inflightLoadProducer } from './scheduling/producers/inflight-load.ts';
import { byLabelFilter } from './scheduling/filters/by-label.ts';
import { labelSelectorFilter } from './scheduling/filters/label-selector.ts';
import { prefixCacheAffinityFilter } from './scheduling/filters/prefix-cache-affinity.ts';
import { decodeFilter } from './scheduling/filters/decode.ts';
import { prefillFilter } from './scheduling/filters/prefill.ts';
import { maxScorePicker } from './scheduling/pickers/max-score.ts';
import { randomPicker } from './scheduling/pickers/random.ts';
import { weightedRandomPicker } from './scheduling/pickers/weighted-random.ts';
import { singleProfileHandler } from './scheduling/profile-handlers/single.ts';
import { PluginRegistry } from './scheduling/registry.ts';
import { concurrencyDetector } from './scheduling/saturation/concurrency-detector.ts';
import { utilizationDetector } from './scheduling/saturation/utilization-detector.ts';
import { coreMetricsExtractor } from './scheduling/data-layer/core-metrics-extractor.ts';
import { metricsDataSource } from './scheduling/data-layer/metrics-data-source.ts';
import { endpointNotificationSource } from './scheduling/data-layer/endpoint-notification-source.ts';
import { fileDiscovery } from './scheduling/data-layer/file-discovery.ts';
import { anthropicParser } from './scheduling/parsers/anthropic-parser.ts';
import { openaiParser } from './scheduling/parsers/openai-parser.ts';
import { passthroughParser } from './scheduling/parsers/passthrough-parser.ts';
import { vllmhttpParser } from './scheduling/parsers/vllmhttp-parser.ts';
import { dataParallelProfileHandler } from './scheduling/profile-handlers/data-parallel.ts';
import { headerProfileHandler } from './scheduling/profile-handlers/header-profile.ts';
import { encodeFilter } from './scheduling/filters/encode.ts';
import { sessionAffinityFilter } from './scheduling/filters/session-affinity.ts';
import { utilizationFilter } from './scheduling/filters/utilization.ts';
import { sessionIdProducer } from './scheduling/producers/session-id.ts';
import { tokenProducer } from './scheduling/producers/token-producer.ts';
import { precisePrefixCacheProducer } from './scheduling/producers/precise-prefix.ts';
import { burstPrefixCacheProducer } from './scheduling/producers/burst-prefix.ts';
import { dcgmDataSource } from './scheduling/data-layer/dcgm-data-source.ts';
import { dcgmExtractor } from './scheduling/data-layer/dcgm-extractor.ts';
import { endpointAttributeFilter } from './scheduling/filters/endpoint-attribute.ts';
import { FLOW_CONTROL_PLUGINS } from './flowcontrol/plugins.ts';

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
  r.register(anthropicParser);
  r.register(vllmhttpParser);
  r.register(passthroughParser);
  r.register(endpointNotificationSource);
  r.register(fileDiscovery);
  r.register(headerProfileHandler);
  r.register(dataParallelProfileHandler);
  r.register(encodeFilter);
  r.register(utilizationFilter);
  r.register(sessionAffinityFilter);
  r.register(sessionIdProducer);
  r.register(tokenProducer);
  r.register(precisePrefixCacheProducer);
  r.register(burstPrefixCacheProducer);
  r.register(dcgmDataSource);
  r.register(dcgmExtractor);
  r.register(endpointAttributeFilter);
  // Flow control's policies (src/flowcontrol/policies/) and the probabilistic-admitter.
  for (const def of FLOW_CONTROL_PLUGINS) r.register(def);
  return r;
}
