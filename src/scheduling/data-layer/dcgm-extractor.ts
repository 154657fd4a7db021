// dcgm-extractor (llm-d Router, alpha): reads a dcgm-data-source's page into
// the endpoint attribute GPUUtilization (0..1; the busiest of the pod's
// GPUs), read by endpoint-attribute-filter and endpoint-attribute-scorer
// with producer "dcgm-extractor". The reading itself is src/metrics/dcgm-page.ts.
import type { Plugin } from '../framework.ts';
import { definePlugin } from '../registry.ts';

export class DcgmExtractor implements Plugin {
  readonly type = 'dcgm-extractor';
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }
}

export function isDcgmExtractor(p: Plugin): p is DcgmExtractor {
  return p.type === 'dcgm-extractor';
}

export const dcgmExtractor = definePlugin({
  type: 'dcgm-extractor',
  stability: 'alpha',
  description: 'Turns a dcgm-data-source\'s page into attribute GPUUtilization (max DCGM_FI_DEV_GPU_UTIL over the pod\'s GPUs, 0..1) for endpoint-attribute-filter / -scorer.',
  params: {},
  create: (name) => new DcgmExtractor(name),
});
