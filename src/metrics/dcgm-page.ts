// NVIDIA DCGM exporter pages (dcgm-data-source + dcgm-extractor): the
// GPU utilization of the pod's busiest GPU, DCGM_FI_DEV_GPU_UTIL (0–100)
// normalised to 0..1, as attribute GPUUtilization of producer dcgm-extractor.
// A sidecar exporter's page has only the pod's GPUs; a DaemonSet exporter
// (scraped on the node address) labels each GPU with the pod using it
// (DCGM_EXPORTER_KUBERNETES=true), and only this pod's samples count.
import type { Logger } from '../log.ts';
import { attributeKey } from '../pool/attributes.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import type { PageReader } from './collector.ts';
import { parsePrometheusText } from './prom-text.ts';

export const DCGM_GPU_UTIL = 'DCGM_FI_DEV_GPU_UTIL';
export const GPU_UTILIZATION = 'GPUUtilization';
export const DCGM_EXTRACTOR = 'dcgm-extractor';
const WANTED: ReadonlySet<string> = new Set([DCGM_GPU_UTIL]);

/** The pod a multi-port endpoint belongs to: GAIE names those `<pod>-rank-<n>`. */
function podMatches(ep: Endpoint, pod: string): boolean {
  return ep.name === pod || (ep.name.startsWith(pod) && /^-rank-\d+$/.test(ep.name.slice(pod.length)));
}

/** The endpoint's GPU utilization (0..1) from a DCGM page, or undefined when the page has no sample for it. */
export function gpuUtilization(ep: Endpoint, text: string): number | undefined {
  const samples = parsePrometheusText(text, WANTED).get(DCGM_GPU_UTIL) ?? [];
  let max: number | undefined;
  for (const s of samples) {
    const pod = s.labels.pod;
    if (pod && !podMatches(ep, pod)) continue;
    if (!Number.isFinite(s.value)) continue;
    if (max === undefined || s.value > max) max = s.value;
  }
  return max === undefined ? undefined : Math.min(1, Math.max(0, max / 100));
}

export class DcgmPage implements PageReader {
  readonly sourceType = 'dcgm-data-source';
  readonly extractorType = DCGM_EXTRACTOR;
  readonly what = 'DCGM exporter metrics';
  readonly #useNodeAddress: boolean;
  readonly #log: Logger;
  readonly #key = attributeKey(DCGM_EXTRACTOR, GPU_UTILIZATION);
  #warnedNoNode = false;

  constructor(useNodeAddress: boolean, log: Logger) {
    this.#useNodeAddress = useNodeAddress;
    this.#log = log;
  }

  address(ep: Endpoint): string | undefined {
    if (!this.#useNodeAddress) return ep.address;
    if (ep.nodeAddress === undefined && !this.#warnedNoNode) {
      this.#warnedNoNode = true;
      this.#log.warn({ endpoint: ep.key }, 'dcgm-data-source useNodeAddress: the endpoint has no node address (only Kubernetes pods do); its GPU utilization is unknown');
    }
    return ep.nodeAddress;
  }

  read(ep: Endpoint, text: string): void {
    const v = gpuUtilization(ep, text);
    if (v === undefined) {
      ep.attributes.delete(this.#key);
      throw new Error(`no ${DCGM_GPU_UTIL} sample for pod ${ep.name} on the DCGM exporter's page`);
    }
    ep.attributes.set(this.#key, v);
  }

  failed(ep: Endpoint): void {
    // Unknown now: filters apply their onMissing policy, scorers give 0.
    ep.attributes.delete(this.#key);
  }
}
