// Client-supplied strings never grow memory: a unique 1 MiB model name per
// request, or tens of thousands of distinct short ones, leave the process's
// memory and its metric series bounded. And every label of every metric is
// classified as client-derived (bounded through one helper) or not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { LabelValues, MAX_CLIENT_STRING_LENGTH, MAX_LABEL_VALUES, OTHER_LABEL, TRUNCATED_MARKER, bounded } from '../src/observability/bounded.ts';
import { CLIENT_LABELS, OPERATOR_LABELS } from '../src/observability/metrics.ts';
import { startTestApp } from './helpers/app-harness.ts';
import { EnvoyClient } from './helpers/envoy-client.ts';
import { rssMiB, startEppProcess } from './helpers/epp-process.ts';
import { FakePod } from './helpers/fake-pod.ts';


describe('bounded()', () => {
  it('keeps short strings, cuts long ones with a marker, never splits a surrogate pair', () => {
    expect(bounded('llama')).toBe('llama');
    const long = 'm'.repeat(1 << 20);
    const cut = bounded(long);
    expect(cut).toBe('m'.repeat(MAX_CLIENT_STRING_LENGTH) + TRUNCATED_MARKER);
    const emoji = 'x'.repeat(MAX_CLIENT_STRING_LENGTH - 1) + '😀' + 'y'.repeat(10);
    expect(bounded(emoji)).toBe('x'.repeat(MAX_CLIENT_STRING_LENGTH - 1) + TRUNCATED_MARKER);
  });

  it('LabelValues keeps at most `limit` distinct values, then answers "other"', () => {
    const lv = new LabelValues(3);
    expect(['a', 'b', 'c', 'd', 'a'].map((v) => lv.value(v))).toEqual(['a', 'b', 'c', OTHER_LABEL, 'a']);
    expect(lv.size).toBe(3);
  });
});

describe('client-derived metric labels', () => {
  const pod = new FakePod();
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    await pod.start();
    ({ app, client } = await startTestApp([`--endpoints=${pod.key}`, '--max-request-body-bytes=2Mi'], { waitReady: 1 }));
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await pod.stop();
  });

  async function sendModels(to: EnvoyClient, models: Iterable<string>, concurrency = 8): Promise<void> {
    const it = models[Symbol.iterator]();
    const worker = async () => {
      for (let n = it.next(); !n.done; n = it.next()) {
        const r = await to.send({ body: JSON.stringify({ model: n.value, prompt: 'hi' }), response: { status: 200, chunks: ['{"ok":true}'] } });
        expect(r.immediate).toBeUndefined();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  function* uniqueHugeModels(count: number): Generator<string> {
    const filler = 'x'.repeat(1 << 20);
    // The unique part first, so the truncated label values are distinct too.
    for (let i = 0; i < count; i++) yield `huge-${i}-${filler}`;
  }

  it('1,000 requests, each naming a unique 1 MiB model, leave the llm-epp process\'s RSS within 50 MB of the start', async () => {
    // Measured on llm-epp as users run it, in its own process, so the RSS is
    // its own and not this test's client. One request at a time, after a
    // warm-up that lets the allocator reach its working size for 1 MiB bodies.
    const epp = await startEppProcess([`--endpoints=${pod.key}`, '--grpc-port=0', '--grpc-health-port=0', '--metrics-port=0', '--secure-serving=false', '--max-request-body-bytes=2Mi', '--shutdown-delay=0s']);
    const c = new EnvoyClient(`127.0.0.1:${epp.grpcPort}`);
    try {
      // Ready once the pod has been scraped: the first request routes.
      const end = Date.now() + 10_000;
      while ((await c.send({ body: JSON.stringify({ model: 'm', prompt: 'p' }) })).immediate && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      await sendModels(c, uniqueHugeModels(100), 1);
      const before = rssMiB(epp.proc.pid!);
      await sendModels(c, uniqueHugeModels(1000), 1);
      expect(rssMiB(epp.proc.pid!) - before).toBeLessThan(50);
      // A scrape renders every series (≈ 110,000 here): it answers.
      const page = await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`);
      expect(page.status).toBe(200);
      expect((await page.text()).length).toBeLessThan(128 << 20);
    } finally {
      c.close();
      epp.proc.kill('SIGTERM');
      await epp.exit;
    }
  }, 120_000);

  it('distinct model names beyond the cap share "other"; every client label is bounded in length and count', async () => {
    const names = Array.from({ length: MAX_LABEL_VALUES + 500 }, (_, i) => `tenant-model-${i}`);
    await sendModels(client, names, 16);
    const metrics = await app.metrics.registry.getMetricsAsJSON();
    const clientLabels = new Set<string>(CLIENT_LABELS);
    const operator = new Set<string>(OPERATOR_LABELS);
    const valuesPerLabel = new Map<string, Set<string>>();
    for (const m of metrics) {
      for (const v of m.values as { labels: Record<string, string | number> }[]) {
        for (const [label, value] of Object.entries(v.labels)) {
          if (label === 'le' || label === 'quantile') continue;
          // A new label must be classified: client-derived ones go through modelLabel().
          expect(clientLabels.has(label) || operator.has(label), `metric ${m.name}: label "${label}" is neither in CLIENT_LABELS nor OPERATOR_LABELS`).toBe(true);
          if (!clientLabels.has(label)) continue;
          const s = String(value);
          expect(s.length, `${m.name}{${label}}`).toBeLessThanOrEqual(MAX_CLIENT_STRING_LENGTH + TRUNCATED_MARKER.length);
          const key = `${m.name}/${label}`;
          if (!valuesPerLabel.has(key)) valuesPerLabel.set(key, new Set());
          valuesPerLabel.get(key)!.add(s);
        }
      }
    }
    for (const [key, values] of valuesPerLabel) expect(values.size, key).toBeLessThanOrEqual(MAX_LABEL_VALUES + 2);
    // The capped ones went somewhere: counted under "other", including scheduler attempts.
    expect(valuesPerLabel.get('inference_objective_request_total/model_name')?.has(OTHER_LABEL)).toBe(true);
    expect(valuesPerLabel.get('inference_extension_scheduler_attempts_total/target_model_name')?.has(OTHER_LABEL)).toBe(true);
  }, 120_000);
});
