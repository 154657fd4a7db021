// A fleet of simulated vLLM pods in one process, pod i on --port + i:
//   node bench/sim/fleet.ts --pods 8 --port 8000
// Prints one JSON line {"pods":[{"name","address","port"}...]} on stdout once every pod
// listens; --endpoints-file writes the same pool in llm-epp's --endpoints-file format.
// Every engine constant is a flag (defaults: Llama-3.1-8B on one H100, vllm.md §6).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { boolFlag, numFlag } from '../lib/args.ts';
import { DEFAULT_TIMING, type TimingOptions } from './engine.ts';
import { startSimPod, type SimPod, type SimPodOptions } from './server.ts';

export const FLEET_HELP = `Usage: npm run sim -- [options]

Fleet
  --pods N                       simulated pods (default 8)
  --host ADDR                    listen address (default 127.0.0.1)
  --port P                       port of pod 0; pod i listens on P+i; 0 = any free ports (default 8000)
  --endpoints-file FILE          also write the pool as an llm-epp --endpoints-file YAML
  --dcgm-port P                  also serve a DCGM-exporter-style page (GPU utilization) on port P of
                                 every pod, for dcgm-data-source; pods then listen on their own
                                 loopback addresses 127.0.1.1, 127.0.1.2, … (as pods have their own IPs)

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
  'dcgm-port': { type: 'string' },
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
  /** Serve a DCGM-style page on this port of each pod (pods on 127.0.1.<i+1>). */
  dcgmPort?: number;
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
  if (v['dcgm-port'] !== undefined) {
    if (v.host !== '127.0.0.1') throw new Error('--dcgm-port gives every pod its own loopback address; it cannot be combined with --host');
    if (plan.pods > 254) throw new Error('--dcgm-port: at most 254 pods (one loopback address each)');
    plan.dcgmPort = numFlag('dcgm-port', v['dcgm-port'], true, 1);
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

export async function startFleet(plan: FleetPlan): Promise<Fleet> {
  const pods: SimPod[] = [];
  try {
    for (let i = 0; i < plan.pods; i++) {
      const own = plan.dcgmPort !== undefined ? { host: `127.0.1.${i + 1}`, dcgmPort: plan.dcgmPort } : {};
      pods.push(await startSimPod({ ...plan.pod, ...own, name: `sim-${i}`, engineIndex: '0', port: plan.basePort === 0 ? 0 : plan.basePort + i }));
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
  const fleet = await startFleet(plan);
  process.stdout.write(JSON.stringify({ pods: fleet.pods.map((p) => ({ name: p.name, address: p.host, port: p.port })), endpoints: fleet.endpoints }) + '\n');
  const stop = () => void fleet.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
