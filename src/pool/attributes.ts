// Scalar endpoint attributes by producer and key, as llm-d Router's data
// layer names them (a DataKey: attribute name + producer type). The core
// metrics extractor's custom metrics live on the endpoint's scraped metrics;
// other sources' (dcgm-extractor's GPUUtilization) in endpoint.attributes.
import type { Endpoint } from './endpoint.ts';

/** The producer an attribute filter or scorer reads when none is named. */
export const CORE_PRODUCER = 'core-metrics-extractor';

export function attributeKey(producer: string, key: string): string {
  return `${producer}/${key}`;
}

/**
 * The endpoint's value of `key` from `producer`; producer "" reads any
 * producer's (the core extractor's first). Undefined when not known now.
 */
export function attributeOf(ep: Endpoint, producer: string, key: string): number | undefined {
  if (producer === CORE_PRODUCER) return ep.metrics?.custom?.[key];
  if (producer !== '') return ep.attributes.get(attributeKey(producer, key));
  const core = ep.metrics?.custom?.[key];
  if (core !== undefined) return core;
  const suffix = '/' + key;
  for (const [k, v] of ep.attributes) if (k.endsWith(suffix)) return v;
  return undefined;
}
