// The cost-of-precision benchmark's parts: the simulated engines publish what
// vLLM would for a routed prompt (read by a real ZMQ SUB and llm-epp's own
// decoder), llm-epp's /metrics are read and differenced as the benchmark
// reports them, and the workloads repeat exactly what they claim to.
import { afterEach, describe, expect, it } from 'vitest';
import { Subscriber } from 'zeromq';
import { decodeKvEventBatch, type KvEvent } from '../src/kvcache/events.ts';
import { Engines } from '../bench/precise-cost/engines.ts';
import { eppDelta, histogramQuantile, readEppPage } from '../bench/precise-cost/epp-metrics.ts';
import { workloadRequest } from '../bench/precise-cost/workloads.ts';

const range = (from: number, n: number) => Uint32Array.from({ length: n }, (_, i) => from + i);

describe('simulated engines', () => {
  let engines: Engines | undefined;
  let sub: Subscriber | undefined;
  afterEach(() => {
    sub?.close();
    engines?.close();
    sub = engines = undefined;
  });

  it('publish one batch per prefill step: new blocks stored on the chosen pod, evicted ones removed one by one', async () => {
    const a = '127.0.1.201:8000';
    engines = Engines.start({ endpoints: [a, '127.0.1.202:8000'], model: 'm', numGpuBlocks: 5, blockSize: 4, stepTokens: 8 });
    sub = new Subscriber({ linger: 0, receiveTimeout: 100 });
    sub.connect(`tcp://127.0.1.201:${engines.socketPort}`);
    sub.subscribe('kv@');
    // ZMQ's slow joiner: announce until one arrives.
    for (let tries = 0; ; tries++) {
      expect(tries).toBeLessThan(100);
      engines.announce();
      try {
        await sub.receive();
        break;
      } catch {
        // not subscribed yet
      }
    }
    sub.receiveTimeout = 5000;
    const next = async (): Promise<{ topic: string; events: readonly KvEvent[] }> => {
      for (;;) {
        const [topic, , payload] = await sub!.receive();
        const { events } = decodeKvEventBatch(payload);
        if (events.length > 0) return { topic: topic.toString(), events };
      }
    };

    expect(engines.served(a, range(0, 10))).toEqual({ hitTokens: 0, promptTokens: 10 });
    const first = await next();
    expect(first.topic).toBe(`kv@${a}@m`);
    expect(first.events).toHaveLength(1);
    const stored = first.events[0];
    if (stored.type !== 'BlockStored') throw new Error('expected BlockStored');
    expect(stored.blockHashes.count).toBe(2); // the partial third block is not cached
    expect(stored.parentBlockHash).toBeNull();
    expect([...stored.tokenIds]).toEqual([...range(0, 8)]);

    // The same prefix again: its two blocks are hits, only the new full block is stored, chained to them.
    expect(engines.served(a, range(0, 12))).toEqual({ hitTokens: 8, promptTokens: 12 });
    const second = (await next()).events;
    expect(second).toHaveLength(1);
    if (second[0].type !== 'BlockStored') throw new Error('expected BlockStored');
    expect(second[0].parentBlockHash).toEqual({ hi: stored.blockHashes.hi[1], lo: stored.blockHashes.lo[1] });
    expect([...second[0].tokenIds]).toEqual([...range(8, 4)]);

    // Another prompt on a 4-block cache: two steps, each evicting what it takes over.
    expect(engines.served(a, range(100, 16)).hitTokens).toBe(0);
    const types = (evs: readonly KvEvent[]) => evs.map((e) => (e.type === 'AllBlocksCleared' ? e.type : `${e.type}:${e.blockHashes.count}`));
    expect(types((await next()).events)).toEqual(['BlockRemoved:1', 'BlockStored:2']);
    expect(types((await next()).events)).toEqual(['BlockRemoved:1', 'BlockRemoved:1', 'BlockStored:2']);
    expect(engines.totals).toEqual({ batches: 4, storedBlocks: 7, removedBlocks: 3 });

    // A fresh start (forget) holds nothing and says nothing.
    engines.forget();
    expect(engines.served(a, range(100, 16)).hitTokens).toBe(0);
    expect(() => engines!.served('127.0.0.1:1', range(0, 4))).toThrow(/no engine/);
  });

  it('refuses pods that share an address (one events port on each)', () => {
    expect(() => Engines.start({ endpoints: ['127.0.1.203:1', '127.0.1.203:2'], model: 'm' })).toThrow(/own address/);
  });
});

describe("llm-epp's metrics as the benchmark reads them", () => {
  const page = (n: number) => `# TYPE llm_d_epp_tokenization_latency_seconds histogram
llm_d_epp_tokenization_latency_seconds_bucket{le="0.01",plugin_name="t",backend="local"} ${2 * n}
llm_d_epp_tokenization_latency_seconds_bucket{le="0.1",plugin_name="t",backend="local"} ${3 * n}
llm_d_epp_tokenization_latency_seconds_bucket{le="+Inf",plugin_name="t",backend="local"} ${4 * n}
llm_d_epp_tokenization_latency_seconds_sum{plugin_name="t",backend="local"} ${0.5 * n}
llm_d_epp_tokenization_latency_seconds_count{plugin_name="t",backend="local"} ${4 * n}
llm_d_epp_tokenization_requests_total{plugin_name="t",backend="local",result="ok"} ${3 * n}
llm_d_epp_tokenization_requests_total{plugin_name="t",backend="local",result="overloaded"} ${n}
llm_d_epp_tokenization_prefix_cache_chars_total{plugin_name="t",result="hit"} ${300 * n}
llm_d_epp_tokenization_prefix_cache_chars_total{plugin_name="t",result="miss"} ${100 * n}
llm_d_epp_kv_cache_events_total{pod="a",event_type="BlockStored"} ${5 * n}
llm_d_epp_kv_cache_events_total{pod="b",event_type="BlockRemoved"} ${7 * n}
llm_d_epp_precise_prefix_fallbacks_total{plugin_name="p",reason="no_tokens"} ${n}
llm_d_epp_kv_cache_uncertain_pods{plugin_name="p"} ${n % 2}
`;

  it('sums series over their labels and differences two readings', () => {
    const d = eppDelta(readEppPage(page(1)), readEppPage(page(3)));
    expect(d).toEqual({
      tokenizeCount: 8,
      tokenizeSumSeconds: 1,
      tokenizeBuckets: [
        { le: 0.01, count: 4 },
        { le: 0.1, count: 6 },
        { le: Infinity, count: 8 },
      ],
      tokenizeOk: 6,
      tokenizeFailed: 2,
      prefixHitChars: 600,
      prefixMissChars: 200,
      events: 24,
      fallbacks: 2,
      uncertainPods: 1,
    });
  });

  it('reads an approximate config (no such series) as zeros', () => {
    const r = readEppPage('inference_pool_ready_pods 10\n');
    expect(r.tokenizeCount + r.events + r.fallbacks + r.uncertainPods).toBe(0);
    expect(r.tokenizeBuckets).toEqual([]);
  });

  it('interpolates quantiles inside buckets as histogram_quantile does', () => {
    const b = [
      { le: 0.01, count: 4 },
      { le: 0.1, count: 6 },
      { le: Infinity, count: 8 },
    ];
    expect(histogramQuantile(0.25, b)).toBeCloseTo(0.005); // rank 2 of 4 in [0, 0.01]
    expect(histogramQuantile(0.625, b)).toBeCloseTo(0.055); // rank 5: halfway through [0.01, 0.1]
    expect(histogramQuantile(0.99, b)).toBe(0.1); // in +Inf: the highest finite bound
    expect(histogramQuantile(0.5, [{ le: Infinity, count: 0 }])).toBeNaN();
  });
});

describe('workloads', () => {
  it('chat8k: a later turn resends the earlier one, on a system prompt shared across conversations', () => {
    const turn1 = workloadRequest('chat8k', 5, 'measured');
    const turn2 = workloadRequest('chat8k', 5 + 48, 'measured');
    expect(turn2.messages.slice(0, 2)).toEqual(turn1.messages);
    expect(turn2.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(workloadRequest('chat8k', 5 + 8, 'measured').messages[0]).toEqual(turn1.messages[0]);
    expect(workloadRequest('chat8k', 5, 'warmup').messages[0]).not.toEqual(turn1.messages[0]);
  });

  it('long-warm shares its document with the warm-up; long-cold shares nothing', () => {
    const doc = (k: number, set: 'measured' | 'warmup') => workloadRequest('long-warm', k, set).messages[1].content;
    expect(doc(0, 'measured')).toBe(doc(7, 'warmup'));
    expect(doc(0, 'measured').length).toBeGreaterThan(500_000);
    const q = (k: number, set: 'measured' | 'warmup') => workloadRequest('long-warm', k, set).messages[3].content;
    expect(new Set([q(0, 'measured'), q(1, 'measured'), q(0, 'warmup'), q(1, 'warmup')]).size).toBe(4);
    const cold = (k: number, set: 'measured' | 'warmup') => workloadRequest('long-cold', k, set).messages[1].content.slice(0, 2000);
    expect(new Set([cold(0, 'measured'), cold(1, 'measured'), cold(0, 'warmup')]).size).toBe(3);
    expect(workloadRequest('long-cold', 3, 'measured')).toEqual(workloadRequest('long-cold', 3, 'measured'));
  });
});
