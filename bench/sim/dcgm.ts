// A DCGM-exporter-style page for a simulated pod, so GPU-utilization-aware
// routing (dcgm-data-source + dcgm-extractor) is tested end to end. The
// exporter samples how busy each GPU was: here, the share of virtual time
// the engine spent in steps since the previous scrape, as a percentage in
// DCGM_FI_DEV_GPU_UTIL. Series names, labels and HELP/TYPE lines follow
// dcgm-exporter's default counters; in Kubernetes mode (a DaemonSet) each
// GPU's sample carries the pod using it.
import type { Engine } from './engine.ts';

export interface DcgmOptions {
  /** Add pod/namespace/container labels, as a DaemonSet exporter with DCGM_EXPORTER_KUBERNETES=true. */
  podName?: string;
  namespace?: string;
  /** Fixed utilization percentage instead of the engine's (tests). */
  fixedUtilPercent?: number;
}

export class DcgmPage {
  readonly #engine: Engine;
  readonly #o: DcgmOptions;
  #lastBusy = 0;
  #lastNow = 0;
  #util = 0;

  constructor(engine: Engine, o: DcgmOptions = {}) {
    this.#engine = engine;
    this.#o = o;
    this.#lastNow = engine.now();
    this.#lastBusy = engine.busySeconds();
  }

  /** GPU utilization since the previous call, percent (0–100). */
  sample(): number {
    if (this.#o.fixedUtilPercent !== undefined) return this.#o.fixedUtilPercent;
    const now = this.#engine.now();
    const busy = this.#engine.busySeconds();
    const dt = now - this.#lastNow;
    // Scrapes closer together than 1 ms of virtual time keep the last value.
    if (dt > 0.001) {
      this.#util = Math.round(Math.min(100, Math.max(0, ((busy - this.#lastBusy) / dt) * 100)));
      this.#lastNow = now;
      this.#lastBusy = busy;
    }
    return this.#util;
  }

  render(): string {
    const util = this.sample();
    const pod = this.#o.podName ? `,container="vllm",namespace="${this.#o.namespace ?? 'default'}",pod="${this.#o.podName}"` : '';
    const labels = `gpu="0",UUID="GPU-00000000-0000-0000-0000-000000000000",pci_bus_id="00000000:00:1E.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="sim"${pod}`;
    const kv = this.#engine.kv.usage();
    return [
      '# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).',
      '# TYPE DCGM_FI_DEV_GPU_UTIL gauge',
      `DCGM_FI_DEV_GPU_UTIL{${labels}} ${util}`,
      '# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).',
      '# TYPE DCGM_FI_DEV_FB_USED gauge',
      `DCGM_FI_DEV_FB_USED{${labels}} ${Math.round(16_000 + 60_000 * (Number.isFinite(kv) ? kv : 0))}`,
      '# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).',
      '# TYPE DCGM_FI_DEV_POWER_USAGE gauge',
      `DCGM_FI_DEV_POWER_USAGE{${labels}} ${(90 + 6 * util).toFixed(3)}`,
      '',
    ].join('\n');
  }
}
