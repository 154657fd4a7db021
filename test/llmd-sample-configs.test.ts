// Every sample EndpointPickerConfig that llm-d Router v0.10 ships
// (deploy/config/, copied into test/fixtures with their commit) either loads
// in llm-epp and schedules a request, or is refused with one exact line
// naming what llm-epp does not have. Nothing is silently ignored.
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimPod, type SimPod } from '../bench/sim/server.ts';
import { startTestApp } from './helpers/app-harness.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { flowControlOf } from '../src/flowcontrol/config.ts';
import { createLogger } from '../src/log.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import { makePool, request, runCycle } from './helpers/scheduling.ts';
import { thrown } from './helpers/thrown.ts';

const DIR = new URL('./fixtures/llm-d-router-v0.10/deploy-config/', import.meta.url);

const DISAGG = 'is not supported by llm-epp: prefill/decode (and encode) disaggregation is not implemented in llm-epp yet; use one profile (single-profile-handler with decode-filter)';

/** What each sample does in llm-epp: 'loads', 'alpha' (loads with --allow-experimental-plugins only), or the exact refusal. */
const EXPECTED: Record<string, 'loads' | 'alpha' | string> = {
  'dp-epp-config.yaml': 'loads',
  'epp-config.yaml': 'loads',
  'epp-estimate-prefix-cache-config.yaml': 'loads',
  'sim-epp-config.yaml': 'loads',
  'sim-epp-gpu-config.yaml': 'alpha',
  // Its vllm.url is a placeholder (<vllm-service>.<namespace>), filled in by load() as a user would.
  'epp-burst-prefix-cache-config.yaml': 'alpha',
  'epp-mm-embeddings-cache-config.yaml':
    'plugin "mm-embeddings-cache-producer": type "mm-embeddings-cache-producer" (llm-d Router) is not supported by llm-epp: multimodal encoder-cache routing is not implemented in llm-epp',
  'epp-precise-prefix-cache-config.yaml': 'loads',
  'sim-epp-kvcache-config.yaml': 'loads',
  'sim-epp-tokenizer-vllm-http-config.yaml': 'loads',
  // Precise scoring without a tokenizer: llm-d silently degrades to estimated ids, llm-epp refuses.
  'sim-epp-no-hit-lru.yaml':
    'sim-epp-no-hit-lru.yaml: plugin "precise-prefix-cache-producer" (precise-prefix-cache-producer) consumes "TokenizedPrompt", which no configured plugin produces: add a token-producer with the model\'s real tokens (vllm.url with modelName, or local.path)',
  'pd-epp-config.yaml': `plugin "disagg-profile-handler": type "disagg-profile-handler" (llm-d Router) ${DISAGG}`,
  'sim-e-p-d-epp-config.yaml': `plugin "disagg-profile-handler": type "disagg-profile-handler" (llm-d Router) ${DISAGG}`,
  'sim-e-pd-epp-config.yaml': `plugin "always-disagg-multimodal-decider": type "always-disagg-multimodal-decider" (llm-d Router) ${DISAGG}`,
  'sim-pd-epp-config.yaml': `plugin "prefix-based-pd-decider": type "prefix-based-pd-decider" (llm-d Router) ${DISAGG}`,
  'pd-topology-epp-config.yaml':
    'plugin "topology-extractor": type "topology-extractor" (llm-d Router) is not supported by llm-epp: topology-aware routing (zone/rack/host affinity) is not implemented in llm-epp; by-label or label-selector-filter can keep a zone by pod label',
  // Flow control (src/flowcontrol/): each flowControl section is read as well (flowControlOf).
  'probabilistic-admitter-epp-config.yaml': 'loads',
  'sim-program-aware-config.yaml': 'loads',
  'soft-reflective-ceiling-epp-config.yaml': 'alpha',
};

function load(file: string, allowExperimental: boolean) {
  const text = readFileSync(new URL(file, DIR), 'utf8').replace('<vllm-service>.<namespace>', 'vllm.default');
  return loadConfig(parseConfigText(text, file), createRegistry(), { pool: makePool([]).pool, log: createLogger('silent'), metrics: undefined, random: Math.random, allowExperimental }, file);
}

describe('llm-d Router v0.10 sample configs (deploy/config/)', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();

  it('the fixture holds all 19 samples of the release, and each has an expectation here', () => {
    expect(files).toHaveLength(19);
    expect(files).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const file of Object.keys(EXPECTED).sort()) {
    const want = EXPECTED[file];
    if (want === 'loads' || want === 'alpha') {
      it(`${file} loads${want === 'alpha' ? ' with --allow-experimental-plugins (alpha plugins, as in llm-d Router)' : ''} and picks an endpoint`, () => {
        if (want === 'alpha') expect(thrown(() => load(file, false), ConfigError).message).toMatch(/an alpha \(experimental\) plugin; start llm-epp with --allow-experimental-plugins/);
        const config = load(file, want === 'alpha');
        // With the flowControl gate on, its section reads too (as llm-epp does at start-up).
        const flow = flowControlOf(config, file);
        expect(flow !== undefined).toBe(config.featureGates.flowControl);
        const { endpoints } = makePool([{ waitingQueueSize: 3, kvCacheUsage: 0.5 }, { waitingQueueSize: 0, kvCacheUsage: 0.1 }]);
        const result = runCycle(new PipelineScheduler(config, createLogger('silent')), request({ model: 'm', prompt: 'hello' }), endpoints, 1);
        expect(result.endpoints).toHaveLength(1);
      });
    } else {
      it(`${file} is refused with one line naming what llm-epp lacks`, () => {
        const err = thrown(() => load(file, true), ConfigError);
        expect(err.message).toBe(want);
        expect(err.message).not.toContain('\n');
      });
    }
  }
});

describe('the samples that load, run against simulated vLLM pods', () => {
  const SAMPLES = ['epp-config.yaml', 'dp-epp-config.yaml', 'epp-estimate-prefix-cache-config.yaml', 'sim-epp-config.yaml'];
  // sim-epp-gpu-config.yaml runs end to end in test/dcgm.test.ts (its pods also serve DCGM pages).
  let pods: SimPod[] = [];
  beforeAll(async () => {
    pods = await Promise.all([0, 1, 2].map(() => startSimPod({ model: 'sim-model', timeScale: 0.02 })));
  });
  afterAll(async () => {
    await Promise.all(pods.map((p) => p.close()));
  });

  for (const file of SAMPLES) {
    it(`${file}: routes requests, and the same long prompt to the same pod`, async () => {
      const config = readFileSync(new URL(file, DIR), 'utf8');
      const { app, client } = await startTestApp([`--endpoints=${pods.map((p) => `${p.host}:${p.port}`).join(',')}`, `--config-text=${config}`], { waitReady: 3 });
      try {
        const prompt = 'You are a careful assistant. '.repeat(40);
        const picks: string[] = [];
        for (let i = 0; i < 4; i++) {
          const r = await client.send({ body: JSON.stringify({ model: 'sim-model', prompt: prompt + `question ${i}` }), response: { status: 200, chunks: ['{"usage":{"prompt_tokens":300,"completion_tokens":1}}'] } });
          expect(r.immediate).toBeUndefined();
          // The primary first, then fallbacks.
          const dest = r.setHeaders.get('x-gateway-destination-endpoint')!.split(',')[0];
          // The data-parallel handler sends to the pod's primary port and names the rank in a header.
          picks.push(file === 'dp-epp-config.yaml' ? r.setHeaders.get('x-data-parallel-host-port')! : dest);
          if (file === 'dp-epp-config.yaml') expect(dest).toBe('127.0.0.1:8000');
        }
        for (const p of picks) expect(pods.map((x) => `${x.host}:${x.port}`)).toContain(p);
        expect(new Set(picks).size, `prefix affinity: ${picks.join(' ')}`).toBe(1);
      } finally {
        client.close();
        await app.stop(100);
      }
    });
  }
});
