// GPU-utilization-aware routing as llm-d Router v0.10 configures it:
// dcgm-data-source + dcgm-extractor read NVIDIA DCGM exporter pages into the
// GPUUtilization attribute, endpoint-attribute-filter drops busy GPUs and
// endpoint-attribute-scorer prefers idle ones. Checked on a real exporter
// page, then end to end against simulated pods serving DCGM-style pages.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimPod, type SimPod } from '../bench/sim/server.ts';
import { DcgmPage as SimDcgmPage } from '../bench/sim/dcgm.ts';
import type { App } from '../src/app.ts';
import { DcgmPage, gpuUtilization } from '../src/metrics/dcgm-page.ts';
import { attributeKey, attributeOf } from '../src/pool/attributes.ts';
import { createEndpoint, type Endpoint } from '../src/pool/endpoint.ts';
import { createLogger } from '../src/log.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { makePool } from './helpers/scheduling.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { thrown } from './helpers/thrown.ts';

const REAL_PAGE = readFileSync(new URL('./fixtures/dcgm/dcgm-exporter-l4-gpu-operator.prom', import.meta.url), 'utf8');
const SAMPLE = readFileSync(new URL('./fixtures/llm-d-router-v0.10/deploy-config/sim-epp-gpu-config.yaml', import.meta.url), 'utf8');
const KEY = attributeKey('dcgm-extractor', 'GPUUtilization');

function endpoint(name: string): Endpoint {
  return createEndpoint({ address: '10.0.0.1', port: 8000, name });
}

describe('reading DCGM exporter pages', () => {
  it('a real exporter page (GPU Operator, one L4, idle): GPUUtilization 0', () => {
    expect(gpuUtilization(endpoint('vllm-0'), REAL_PAGE)).toBe(0);
    const busy = REAL_PAGE.replace(/(DCGM_FI_DEV_GPU_UTIL\{[^}]*\}) 0/, '$1 87');
    expect(gpuUtilization(endpoint('vllm-0'), busy)).toBe(0.87);
  });

  it('several GPUs: the busiest counts; a DaemonSet page keeps only the pod\'s own GPUs (and its -rank-N endpoints)', () => {
    const page = [
      'DCGM_FI_DEV_GPU_UTIL{gpu="0",pod="vllm-a",namespace="ns"} 40',
      'DCGM_FI_DEV_GPU_UTIL{gpu="1",pod="vllm-a",namespace="ns"} 70',
      'DCGM_FI_DEV_GPU_UTIL{gpu="2",pod="vllm-b",namespace="ns"} 99',
      'DCGM_FI_DEV_GPU_UTIL{gpu="3",pod="",namespace=""} 5',
    ].join('\n');
    expect(gpuUtilization(endpoint('vllm-a'), page)).toBe(0.7);
    expect(gpuUtilization(endpoint('vllm-a-rank-1'), page)).toBe(0.7);
    expect(gpuUtilization(endpoint('vllm-b'), page)).toBe(0.99);
    // Not a prefix match: vllm-ab is another pod.
    expect(gpuUtilization(endpoint('vllm-ab'), 'DCGM_FI_DEV_GPU_UTIL{gpu="0",pod="vllm-a"} 50')).toBeUndefined();
    // A GPU no pod uses (empty pod label) is kept, as a sidecar page's samples are.
    expect(gpuUtilization(endpoint('vllm-c'), page)).toBe(0.05);
  });

  it('a page without the metric is an extract error and leaves the attribute unknown', () => {
    const ep = endpoint('vllm-0');
    const reader = new DcgmPage(false, createLogger('silent'));
    reader.read(ep, 'DCGM_FI_DEV_GPU_UTIL{gpu="0"} 30');
    expect(ep.attributes.get(KEY)).toBe(0.3);
    expect(() => reader.read(ep, 'DCGM_FI_DEV_FB_USED{gpu="0"} 3')).toThrow(/no DCGM_FI_DEV_GPU_UTIL sample for pod vllm-0/);
    expect(ep.attributes.has(KEY)).toBe(false);
    reader.read(ep, 'DCGM_FI_DEV_GPU_UTIL{gpu="0"} 30');
    reader.failed(ep);
    expect(attributeOf(ep, 'dcgm-extractor', 'GPUUtilization')).toBeUndefined();
  });

  it('useNodeAddress scrapes the pod\'s node IP; an endpoint without one is skipped', () => {
    const withNode = createEndpoint({ address: '10.0.0.7', port: 8000, name: 'p', nodeAddress: '192.168.1.4' });
    expect(new DcgmPage(true, createLogger('silent')).address(withNode)).toBe('192.168.1.4');
    expect(new DcgmPage(false, createLogger('silent')).address(withNode)).toBe('10.0.0.7');
    expect(new DcgmPage(true, createLogger('silent')).address(endpoint('q'))).toBeUndefined();
  });
});

describe('endpoint-attribute-filter and endpoint-attribute-scorer', () => {
  const withUtil = (values: (number | undefined)[]) => {
    const { endpoints } = makePool(values.map(() => ({})));
    values.forEach((v, i) => v !== undefined && endpoints[i].attributes.set(KEY, v));
    return endpoints;
  };
  const plugin = (type: string, parameters: Record<string, unknown>) => createRegistry().create(type, 'p', parameters, { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random, plugins: new Map(), allowExperimental: true });

  it('threshold filter: operators, onMissing Pass/Fail, fallbackOnEmpty', () => {
    const eps = withUtil([0.2, 0.95, undefined]);
    const f = (params: Record<string, unknown>) =>
      (plugin('endpoint-attribute-filter', { attribute: 'GPUUtilization', producer: 'dcgm-extractor', algorithm: { type: 'threshold', threshold: { operator: 'LessThanOrEqual', value: 0.9 } }, ...params }) as unknown as {
        filter: (s: unknown, e: readonly Endpoint[]) => readonly Endpoint[];
      }).filter(undefined, eps);
    expect(f({}).map((e) => e.name)).toEqual(['pod-1', 'pod-3']);
    expect(f({ onMissing: 'Fail' }).map((e) => e.name)).toEqual(['pod-1']);
    expect(f({ algorithm: { type: 'threshold', threshold: { operator: 'GreaterThan', value: '0.5' } }, onMissing: 'Fail' }).map((e) => e.name)).toEqual(['pod-2']);
    expect(f({ algorithm: { type: 'threshold', threshold: { operator: 'LessThan', value: 0.1 } }, onMissing: 'Fail' })).toEqual([]);
    expect(f({ algorithm: { type: 'threshold', threshold: { operator: 'LessThan', value: 0.1 } }, onMissing: 'Fail', fallbackOnEmpty: true })).toHaveLength(3);
  });

  it('configuration errors name the plugin and the field', () => {
    const bad = (type: string, parameters: Record<string, unknown>, message: RegExp) => expect(thrown(() => plugin(type, parameters), ConfigError).message).toMatch(message);
    bad('endpoint-attribute-filter', { algorithm: { type: 'threshold', threshold: { operator: 'LessThan', value: 1 } } }, /plugin "p" \(endpoint-attribute-filter\): parameter "attribute" is required/);
    bad('endpoint-attribute-filter', { attribute: 'x', algorithm: { type: 'percentile' } }, /algorithm.type must be "threshold"/);
    bad('endpoint-attribute-filter', { attribute: 'x', algorithm: { type: 'threshold', threshold: { operator: 'Below', value: 1 } } }, /operator must be one of LessThan, /);
    bad('endpoint-attribute-filter', { attribute: 'x', algorithm: { type: 'threshold', threshold: { operator: 'LessThan', value: 'high' } } }, /threshold.value must be a number/);
    bad('endpoint-attribute-filter', { attribute: 'a/b', algorithm: { type: 'threshold', threshold: { operator: 'LessThan', value: 1 } } }, /contains "\/"; set "producer" explicitly/);
    bad('endpoint-attribute-filter', { attribute: 'x', onMissing: 'Skip', algorithm: { type: 'threshold', threshold: { operator: 'LessThan', value: 1 } } }, /onMissing/);
    bad('endpoint-attribute-scorer', { attributeKey: 'x', algorithm: { type: 'log' } }, /linear_lower_is_better or linear_higher_is_better/);
    bad('endpoint-attribute-scorer', { attributeKey: 'x', algorithm: { type: 'linear_lower_is_better', normalization: { fixedRange: { min: 1, max: 1 } } } }, /fixedRange.min \(1\) must be less than max \(1\)/);
    bad('endpoint-attribute-scorer', { attributeKey: 'x', algorithm: { type: 'linear_lower_is_better', normalization: { fixedRange: { min: 0, max: 1 }, adaptiveRange: {} } } }, /not both/);
    bad('dcgm-data-source', { path: 'metrics' }, /parameter "path" must start with "\/"/);
    bad('dcgm-data-source', { interval: 'soon' }, /parameter "interval"/);
  });
});

describe('the simulator\'s DCGM page', () => {
  it('reports how busy the engine was since the last scrape', async () => {
    const pod = await startSimPod({ model: 'm', timeScale: 0.05 });
    try {
      const page = new SimDcgmPage(pod.engine);
      const text = () => page.render();
      expect(gpuUtilization(endpoint('x'), text())).toBe(0);
      const res = fetch(`http://${pod.host}:${pod.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: 'hi', max_tokens: 200, ignore_eos: true }) });
      await new Promise((r) => setTimeout(r, 100));
      expect(gpuUtilization(endpoint('x'), text())).toBeGreaterThan(0.5);
      await (await res).text();
      await new Promise((r) => setTimeout(r, 100));
      expect(gpuUtilization(endpoint('x'), text())).toBeLessThan(0.5);
      // Every line parses as Prometheus text.
      expect(parsePrometheusText(text()).get('DCGM_FI_DEV_GPU_UTIL')).toHaveLength(1);
    } finally {
      await pod.close();
    }
  });
});

describe('llm-d\'s sim-epp-gpu-config, end to end against simulated pods with DCGM pages', () => {
  let busy: SimPod;
  let idle: SimPod;
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    // Each pod on its own address, as pods have their own IPs: the exporter port is the same everywhere.
    busy = await startSimPod({ model: 'm', host: '127.0.1.1', dcgmPort: 0, dcgm: { fixedUtilPercent: 95 }, timeScale: 0.05 });
    idle = await startSimPod({ model: 'm', host: '127.0.1.2', dcgmPort: busy.dcgmPort, dcgm: { fixedUtilPercent: 20 }, timeScale: 0.05 });
    const config = SAMPLE.replace('port: 9400', `port: ${busy.dcgmPort}`).replace('interval: "1s"', 'interval: "40ms"');
    ({ app, client } = await startTestApp([`--endpoints=${busy.host}:${busy.port},${idle.host}:${idle.port}`, `--config-text=${config}`, '--allow-experimental-plugins'], { waitReady: 2 }));
    await waitFor(() => app.datastore.list().every((e) => e.attributes.has(KEY)));
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await Promise.all([busy.close(), idle.close()]);
  });

  it('reads each pod\'s GPU utilization and routes every request away from the 95 % GPU', async () => {
    const byHost = new Map(app.datastore.list().map((e) => [e.address, e.attributes.get(KEY)]));
    expect(byHost.get('127.0.1.1')).toBe(0.95);
    expect(byHost.get('127.0.1.2')).toBe(0.2);
    for (let i = 0; i < 10; i++) {
      const r = await client.send({ body: JSON.stringify({ model: 'm', prompt: `request ${i}` }) });
      expect(r.setHeaders.get('x-gateway-destination-endpoint')).toBe(`${idle.host}:${idle.port}`);
    }
  });

  it('an exporter that stops answering makes the attribute unknown (onMissing: Pass), and counts a poll error', async () => {
    await busy.close();
    await waitFor(() => !app.datastore.list().find((e) => e.address === '127.0.1.1')!.attributes.has(KEY), 5000);
    const text = await app.metrics.registry.metrics();
    expect(text).toMatch(/llm_d_epp_datalayer_poll_errors_total\{source_type="dcgm-data-source"\} [1-9]/);
  });
});

describe('DCGM configuration', () => {
  const load = (yaml: string, allowExperimental = true) =>
    loadConfig(parseConfigText(yaml, 'test.yaml'), createRegistry(), { pool: new Datastore(), log: createLogger('silent'), metrics: undefined, random: Math.random, allowExperimental }, 'test.yaml');

  it('llm-d\'s sample needs --allow-experimental-plugins, as in llm-d Router (the DCGM plugins are alpha there)', () => {
    expect(() => load(SAMPLE)).not.toThrow();
    expect(thrown(() => load(SAMPLE, false), ConfigError).message).toMatch(/plugin "dcgm-source".*alpha \(experimental\) plugin; start llm-epp with --allow-experimental-plugins/);
  });

  it('a dcgm-data-source without extractor, or a dcgm-extractor under no source, is refused', () => {
    const head = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: dcgm-data-source\n  name: src\n- type: dcgm-extractor\n  name: ext\n';
    expect(thrown(() => load(head + 'dataLayer:\n  sources:\n  - pluginRef: src\n'), ConfigError).message).toMatch(/source "src" \(dcgm-data-source\) has no extractors/);
    expect(thrown(() => load(head), ConfigError).message).toMatch(/plugin "ext" \(dcgm-extractor\) is not listed under a dcgm-data-source/);
  });

  it('a filter reading dcgm-extractor\'s attribute without one in the config is refused', () => {
    const yaml = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: endpoint-attribute-filter\n  name: f\n  parameters:\n    attribute: GPUUtilization\n    producer: dcgm-extractor\n    algorithm: {type: threshold, threshold: {operator: LessThan, value: 0.9}}\n';
    expect(thrown(() => load(yaml), ConfigError).message).toMatch(/plugin "f" \(endpoint-attribute-filter\): producer "dcgm-extractor" is not in the config/);
  });
});

