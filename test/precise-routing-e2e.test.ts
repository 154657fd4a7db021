// Precise prefix-cache routing through ext_proc, against simulated vLLM pods:
// the request waits in request control while token-producer asks a pod's
// render endpoint for the prompt's tokens (the async producer path), and the
// pick follows what the pods' KV events say they hold — here a pod warmed by
// traffic llm-epp never routed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../bench/lib/processes.ts';
import { startSimPod, type SimPod } from '../bench/sim/server.ts';
import { startTestApp } from './helpers/app-harness.ts';

describe('precise prefix-cache routing end to end', () => {
  let pods: SimPod[] = [];
  let zmqPort = 0;
  beforeAll(async () => {
    zmqPort = await freePort();
    // Each pod on its own loopback address with the same events port, as pods in a cluster: llm-epp connects to each.
    pods = await Promise.all([1, 2].map((i) => startSimPod({ model: 'sim-model', host: `127.0.1.${i}`, timeScale: 0, blockSize: 16, kvEvents: { bindPort: zmqPort } })));
  });
  afterAll(async () => {
    await Promise.all(pods.map((p) => p.close()));
  });

  it('tokenizes through the render endpoint and routes to the pod whose events show the prefix', async () => {
    const config = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: token-producer
  parameters: {modelName: sim-model, vllm: {url: "http://${pods[0].host}:${pods[0].port}"}}
- type: precise-prefix-cache-producer
  parameters:
    tokenProcessorConfig: {blockSizeTokens: 16}
    kvEventsConfig: {discoverPods: true, podDiscoveryConfig: {socketPort: ${zmqPort}}}
- type: prefix-cache-scorer
  parameters: {prefixMatchInfoProducerName: precise-prefix-cache-producer}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
  - pluginRef: max-score-picker
`;
    const { app, client } = await startTestApp([`--endpoints=${pods.map((p) => `${p.host}:${p.port}`).join(',')}`, `--config-text=${config}`], { waitReady: 2 });
    try {
      const prompt = 'You are a careful assistant who answers briefly. '.repeat(30);
      const target = pods[1];
      // Warm pod 2 behind llm-epp's back; wait until its KV events have reached llm-epp.
      await fetch(`http://${target.host}:${target.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'sim-model', prompt, max_tokens: 1 }) });
      const metrics = async () => (await fetch(`http://127.0.0.1:${app.ports.metrics}/metrics`)).text();
      // (A SUB that connects after the warm-up misses its events: warm until they arrive.)
      const end = Date.now() + 10_000;
      while (!/llm_d_epp_kv_cache_events_total\{[^}]*event_type="BlockStored"\} [1-9]/.test(await metrics()) && Date.now() < end) {
        await fetch(`http://${target.host}:${target.port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'sim-model', prompt: prompt + Date.now(), max_tokens: 1 }) });
        await new Promise((res) => setTimeout(res, 20));
      }
      // Every pick now follows the pod's reported cache (a tie would be a coin toss per request).
      for (let i = 0; i < 6; i++) {
        const r = await client.send({ body: JSON.stringify({ model: 'sim-model', prompt: prompt + ` Question ${i}?` }), response: { status: 200, chunks: ['{}'] } });
        expect(r.immediate).toBeUndefined();
        expect(r.setHeaders.get('x-gateway-destination-endpoint')!.split(',')[0]).toBe(`${target.host}:${target.port}`);
      }
      const page = await metrics();
      expect(page).toMatch(/llm_d_epp_tokenization_requests_total\{[^}]*backend="vllm"[^}]*result="ok"\} 6/);
      expect(page).not.toMatch(/llm_d_epp_precise_prefix_fallbacks_total\{/);
    } finally {
      client.close();
      await app.stop(100);
    }
  });
});
