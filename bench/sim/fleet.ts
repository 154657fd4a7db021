// A fleet of simulated vLLM pods in one process, pod i on --port + i:
//   node bench/sim/fleet.ts --pods 8 --port 8000
// Prints one JSON line {"pods":[{"name","address","port"[,"kvEvents"]}...],"endpoints"} on
// stdout once every pod listens; --endpoints-file writes the same pool in llm-epp's
// --endpoints-file format. Every engine constant is a flag (defaults: Llama-3.1-8B on one
// H100, vllm.md §6).
//
// What each pod serves (server.ts): vLLM's OpenAI routes, its render routes
// (/v1/completions/render, /v1/chat/completions/render: the prompt's token ids),
// /reset_prefix_cache and /metrics; and the simulator's /sim/reset, /sim/restart and
// /sim/prefix-match (the benchmark's oracle: how many of a prompt's tokens this pod's cache
// holds now). Prompts become token ids by a cheap synthetic model (4 characters per token,
// prompts.ts) or, with --tokenizer, the model's real tokenizer and chat template; either way
// those ids fill the prefix cache, in --block-size blocks, and count in usage.
// KV-cache events (--kv-events-*): each pod publishes vLLM's ZMQ stream (kv-publisher.ts),
// one batch per engine step, on topic kv@<pod address:port>@<model>, the pod's endpoint key in
// llm-epp. With --kv-events-port every pod binds that port on its own loopback address
// (127.0.1.1, 127.0.1.2, …, as pods have their own IPs), so llm-epp's discover mode connects
// to <endpoint IP>:<port> exactly as in a cluster; with --kv-events-endpoint the pods connect
// to a socket llm-epp binds.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { boolFlag, numFlag } from '../lib/args.ts';
import { DEFAULT_TIMING, type TimingOptions } from './engine.ts';
import { kvEventsFromFlags } from './kv-events-config.ts';
import type { PromptTokenizer } from './prompts.ts';
import { startSimPod, type SimPod, type SimPodOptions } from './server.ts';

export const FLEET_HELP = `Usage: npm run sim -- [options]

Fleet
  --pods N                       simulated pods (default 8)
  --host ADDR                    listen address (default 127.0.0.1)
  --port P                       port of pod 0; pod i listens on P+i; 0 = any free ports (default 8000)
  --endpoints-file FILE          also write the pool as an llm-epp --endpoints-file YAML
  --address-per-pod              every pod listens on its own loopback address 127.0.1.1, 127.0.1.2, …
                                 (as pods have their own IPs); implied by --dcgm-port, --kv-events-port
                                 and --kv-events-replay-port
  --dcgm-port P                  also serve a DCGM-exporter-style page (GPU utilization) on port P of
                                 every pod, for dcgm-data-source

Prompts
  --tokenizer PATH               tokenize with a real tokenizer: a directory holding tokenizer.json
                                 (+ tokenizer_config.json for the chat template), as vLLM does;
                                 default: the synthetic model (4 characters per token, cheap)

KV-cache events (vLLM's ZMQ stream; topic kv@<pod address:port>@<model>, one batch per step)
  --kv-events-port P             every pod binds tcp://<its address>:P (vLLM's tcp://*:P); 0 = any free
                                 port (the JSON line lists them)
  --kv-events-endpoint URL       or every pod connects to URL, a subscriber that binds (tcp://host:port)
  --kv-events-format map|array   event encoding: map (vLLM >= 0.24, default) or array (older vLLM)
  --kv-events-replay-port P      also bind vLLM's replay ROUTER on port P of every pod
  --kv-events-config JSON        vLLM's own --kv-events-config instead of the three above, e.g.
                                 '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557"}'

Engine (per pod; vLLM flag names)
  --model NAME                   served model name (default sim-model)
  --served-model-name A,B        further names it answers to (default meta-llama/Llama-3.1-8B-Instruct,
                                 the model the timing defaults describe)
  --num-gpu-blocks N             KV blocks (default 27000 ≈ an H100 80 GB, 8B model)
  --block-size N                 tokens per block (default 16)
  --max-num-seqs N               running batch cap (default 1024)
  --max-num-batched-tokens N     token budget per step, chunked prefill (default 8192)
  --max-model-len N              (default 131072)
  --enable-prefix-caching BOOL   (default true)
  --lora-modules A,B             servable LoRA adapters (selected by "model")
  --max-loras N                  adapters per batch (default 1)
  --enable-prompt-tokens-details BOOL  usage.prompt_tokens_details.cached_tokens (default false)
  --stream-interval N            output tokens per SSE chunk after the first (default 1)

Timing (simulated milliseconds; step = overhead + max(memory, compute))
  --time-scale X                 wall seconds per simulated second (default 1)
  --step-overhead-ms X           (default ${DEFAULT_TIMING.stepOverheadMs})
  --weight-read-ms X             (default ${DEFAULT_TIMING.weightReadMs})
  --kv-read-ms-per-token X       (default ${DEFAULT_TIMING.kvReadMsPerToken})
  --compute-ms-per-token X       (default ${DEFAULT_TIMING.computeMsPerToken})
  --attention-ms-per-token-pair X (default ${DEFAULT_TIMING.attentionMsPerTokenPair})
`;

const OPTIONS = {
  pods: { type: 'string', default: '8' },
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '8000' },
  'endpoints-file': { type: 'string' },
  'address-per-pod': { type: 'boolean' },
  'dcgm-port': { type: 'string' },
  tokenizer: { type: 'string' },
  'kv-events-port': { type: 'string' },
  'kv-events-endpoint': { type: 'string' },
  'kv-events-format': { type: 'string' },
  'kv-events-replay-port': { type: 'string' },
  'kv-events-config': { type: 'string' },
  model: { type: 'string', default: 'sim-model' },
  'served-model-name': { type: 'string' },
  'num-gpu-blocks': { type: 'string' },
  'block-size': { type: 'string' },
  'max-num-seqs': { type: 'string' },
  'max-num-batched-tokens': { type: 'string' },
  'max-model-len': { type: 'string' },
  'enable-prefix-caching': { type: 'string' },
  'lora-modules': { type: 'string' },
  'max-loras': { type: 'string' },
  'enable-prompt-tokens-details': { type: 'string' },
  'stream-interval': { type: 'string' },
  'time-scale': { type: 'string' },
  'step-overhead-ms': { type: 'string' },
  'weight-read-ms': { type: 'string' },
  'kv-read-ms-per-token': { type: 'string' },
  'compute-ms-per-token': { type: 'string' },
  'attention-ms-per-token-pair': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface FleetPlan {
  pods: number;
  basePort: number;
  endpointsFile?: string;
  /** Pod i listens on 127.0.1.<i+1> (implied by dcgmPort). */
  addressPerPod?: boolean;
  /** Serve a DCGM-style page on this port of each pod. */
  dcgmPort?: number;
  /** Directory of a tokenizer.json (+ tokenizer_config.json) the pods tokenize with. */
  tokenizer?: string;
  pod: SimPodOptions;
}

/** Turn argv into a fleet plan (exported for tests). */
export function fleetPlanFromArgs(argv: string[]): FleetPlan | 'help' {
  const { values: v } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (v.help) return 'help';
  const timing: Partial<TimingOptions> = {};
  const t = (flag: string, key: keyof TimingOptions) => {
    const x = numFlag(flag, v[flag as keyof typeof v] as string | undefined, false, 0);
    if (x !== undefined) timing[key] = x;
  };
  t('step-overhead-ms', 'stepOverheadMs');
  t('weight-read-ms', 'weightReadMs');
  t('kv-read-ms-per-token', 'kvReadMsPerToken');
  t('compute-ms-per-token', 'computeMsPerToken');
  t('attention-ms-per-token-pair', 'attentionMsPerTokenPair');
  const pod: SimPodOptions = { model: v.model, host: v.host, timing };
  const set = <K extends keyof SimPodOptions>(k: K, x: SimPodOptions[K] | undefined) => {
    if (x !== undefined) pod[k] = x;
  };
  set('numGpuBlocks', numFlag('num-gpu-blocks', v['num-gpu-blocks'], true, 2));
  set('blockSize', numFlag('block-size', v['block-size'], true, 1));
  set('maxNumSeqs', numFlag('max-num-seqs', v['max-num-seqs'], true, 1));
  set('maxNumBatchedTokens', numFlag('max-num-batched-tokens', v['max-num-batched-tokens'], true, 1));
  set('maxModelLen', numFlag('max-model-len', v['max-model-len'], true, 1));
  set('enablePrefixCaching', boolFlag('enable-prefix-caching', v['enable-prefix-caching']));
  set('maxLoras', numFlag('max-loras', v['max-loras'], true, 1));
  set('enablePromptTokensDetails', boolFlag('enable-prompt-tokens-details', v['enable-prompt-tokens-details']));
  set('streamInterval', numFlag('stream-interval', v['stream-interval'], true, 1));
  set('timeScale', numFlag('time-scale', v['time-scale'], false, 0));
  if (v['served-model-name'] !== undefined) pod.servedModelNames = v['served-model-name'].split(',').map((s) => s.trim()).filter(Boolean);
  if (v['lora-modules']) pod.loraModules = v['lora-modules'].split(',').map((s) => s.trim()).filter(Boolean);
  const plan: FleetPlan = { pods: numFlag('pods', v.pods, true, 1)!, basePort: numFlag('port', v.port, true, 0)!, pod };
  if (plan.basePort > 0 && plan.basePort + plan.pods - 1 > 65535) throw new Error('--port + --pods exceeds 65535');
  if (v['endpoints-file']) plan.endpointsFile = v['endpoints-file'];
  if (v.tokenizer !== undefined) plan.tokenizer = v.tokenizer;
  const kv = kvEventsFromFlags({
    port: numFlag('kv-events-port', v['kv-events-port'], true, 0),
    endpoint: v['kv-events-endpoint'],
    replayPort: numFlag('kv-events-replay-port', v['kv-events-replay-port'], true, 0),
    format: v['kv-events-format'],
    config: v['kv-events-config'],
  });
  if (kv?.kvEvents.bindPort !== undefined && kv.kvEvents.bindPort > 65535) throw new Error('--kv-events-port exceeds 65535');
  if (kv?.kvEvents.replayPort !== undefined && kv.kvEvents.replayPort > 65535) throw new Error('--kv-events-replay-port exceeds 65535');
  if (kv) pod.kvEvents = kv.kvEvents;
  if (v['dcgm-port'] !== undefined) plan.dcgmPort = numFlag('dcgm-port', v['dcgm-port'], true, 1);
  const why = v['address-per-pod'] ? '--address-per-pod' : plan.dcgmPort !== undefined ? '--dcgm-port' : kv?.ownAddress ? 'a KV-event socket bound on every pod' : undefined;
  if (why !== undefined) {
    if (v.host !== '127.0.0.1') throw new Error(`${why} gives every pod its own loopback address; it cannot be combined with --host`);
    if (plan.pods > 254) throw new Error(`${why}: at most 254 pods (one loopback address each)`);
    plan.addressPerPod = true;
  }
  return plan;
}

export interface Fleet {
  readonly pods: SimPod[];
  /** "ip:port,…" for llm-epp --endpoints and the gateway's baselines. */
  readonly endpoints: string;
  reset(): void;
  close(): Promise<void>;
}

/** The tokenizer of --tokenizer (loaded only when asked for). */
async function loadTokenizer(path: string): Promise<PromptTokenizer> {
  const { loadSimTokenizer } = await import('./real-tokenizer.ts');
  try {
    return await loadSimTokenizer(path);
  } catch (e) {
    throw new Error(`--tokenizer ${path}: ${(e as Error).message}`);
  }
}

export async function startFleet(plan: FleetPlan): Promise<Fleet> {
  const pods: SimPod[] = [];
  const base: SimPodOptions = { ...plan.pod };
  if (plan.tokenizer !== undefined) base.tokenizer = await loadTokenizer(plan.tokenizer);
  if (plan.dcgmPort !== undefined) base.dcgmPort = plan.dcgmPort;
  try {
    for (let i = 0; i < plan.pods; i++) {
      const own = plan.addressPerPod || plan.dcgmPort !== undefined ? { host: `127.0.1.${i + 1}` } : {};
      pods.push(await startSimPod({ ...base, ...own, name: `sim-${i}`, engineIndex: '0', port: plan.basePort === 0 ? 0 : plan.basePort + i }));
    }
  } catch (e) {
    await Promise.all(pods.map((p) => p.close()));
    throw e;
  }
  const endpoints = pods.map((p) => `${p.host}:${p.port}`).join(',');
  if (plan.endpointsFile) {
    const yaml = ['endpoints:', ...pods.flatMap((p) => [`  - name: ${p.name}`, `    address: ${p.host}`, `    port: ${p.port}`, '    labels:', '      inference.networking.k8s.io/engine-type: vllm'])].join('\n');
    writeFileSync(plan.endpointsFile, yaml + '\n');
  }
  return {
    pods,
    endpoints,
    reset: () => pods.forEach((p) => p.engine.reset()),
    close: async () => {
      await Promise.all(pods.map((p) => p.close()));
    },
  };
}

if (import.meta.main) {
  let plan: FleetPlan | 'help';
  try {
    plan = fleetPlanFromArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n\n${FLEET_HELP}`);
    process.exit(2);
  }
  if (plan === 'help') {
    process.stdout.write(FLEET_HELP);
    process.exit(0);
  }
  let fleet: Fleet;
  try {
    fleet = await startFleet(plan);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const pods = fleet.pods.map((p) => ({ name: p.name, address: p.host, port: p.port, ...(p.kvEvents ? { kvEvents: p.kvEvents } : {}) }));
  process.stdout.write(JSON.stringify({ pods, endpoints: fleet.endpoints }) + '\n');
  const stop = () => void fleet.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
