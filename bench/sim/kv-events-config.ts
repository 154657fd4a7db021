// The fleet's KV-event flags, and vLLM's own --kv-events-config JSON, as each simulated pod's
// publisher settings (server.ts SimKvEventsOptions). vLLM's config (vllm/config/kv_events.py):
// enable_kv_cache_events, publisher "zmq" | "null", endpoint (binds for tcp://*:P, connects
// to anything else), replay_endpoint, buffer_steps, hwm, max_queue_size, topic. In a cluster
// every pod binds tcp://*:P in its own network namespace; here the pods share one host, so a
// bound endpoint means: each pod binds port P on its own loopback address, and the fleet then
// gives every pod one (so llm-epp's discover mode finds pod IP:P, as in a cluster).
import type { KvEventFormat } from './kv-batch-encoding.ts';
import type { SimKvEventsOptions } from './server.ts';

export interface KvEventsFlags {
  port?: number;
  endpoint?: string;
  replayPort?: number;
  format?: string;
  config?: string;
}

const CONFIG_KEYS = new Set(['enable_kv_cache_events', 'publisher', 'endpoint', 'replay_endpoint', 'buffer_steps', 'hwm', 'max_queue_size', 'topic']);

/** tcp://HOST:PORT → its parts; a clear error for anything else. */
function tcpEndpoint(what: string, endpoint: string): { host: string; port: number } {
  const m = /^tcp:\/\/(\[[^\]]*\]|[^:/]*):(\d{1,5})$/.exec(endpoint);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535 || m[1] === '') throw new Error(`${what} must be tcp://HOST:PORT (the simulator publishes over TCP), got "${endpoint.slice(0, 200)}"`);
  return { host: m[1], port };
}

const isWildcard = (host: string) => host === '*' || host === '0.0.0.0' || host === '[::]';

function format(v: string | undefined): KvEventFormat {
  if (v === undefined || v === 'map' || v === 'array') return v ?? 'map';
  throw new Error(`--kv-events-format must be map or array, got "${v.slice(0, 100)}"`);
}

/** vLLM's --kv-events-config JSON as pod settings; undefined when it leaves events off. */
function fromConfig(json: string, fmt: KvEventFormat): SimKvEventsOptions | undefined {
  let c: unknown;
  try {
    c = JSON.parse(json);
  } catch {
    throw new Error('--kv-events-config is not valid JSON');
  }
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error('--kv-events-config must be a JSON object');
  const o = c as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !CONFIG_KEYS.has(k));
  if (unknown.length > 0) throw new Error(`--kv-events-config: unknown field ${JSON.stringify(unknown[0].slice(0, 100))} (known: ${[...CONFIG_KEYS].join(', ')})`);
  if (o.enable_kv_cache_events !== undefined && typeof o.enable_kv_cache_events !== 'boolean') throw new Error('--kv-events-config: enable_kv_cache_events must be true or false');
  const publisher = o.publisher ?? (o.enable_kv_cache_events === true ? 'zmq' : 'null');
  if (publisher !== 'zmq' && publisher !== 'null') throw new Error('--kv-events-config: publisher must be "zmq" or "null"');
  if (o.enable_kv_cache_events !== true || publisher === 'null') return undefined;
  if (o.topic !== undefined && o.topic !== '') throw new Error('--kv-events-config: leave topic out: each simulated pod publishes on kv@<its address:port>@<model>, the topic llm-d expects');
  const positive = (k: string) => {
    const v = o[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < 1)) throw new Error(`--kv-events-config: ${k} must be a positive integer`);
    return v as number | undefined;
  };
  const out: SimKvEventsOptions = { format: fmt };
  const bufferSteps = positive('buffer_steps');
  const hwm = positive('hwm');
  // max_queue_size bounds vLLM's queue in front of its publisher thread; the simulator publishes
  // from the step itself and has no such queue, so it is only checked.
  positive('max_queue_size');
  if (bufferSteps !== undefined) out.bufferSteps = bufferSteps;
  if (hwm !== undefined) out.sendHighWaterMark = hwm;
  const endpoint = typeof o.endpoint === 'string' ? o.endpoint : o.endpoint === undefined ? 'tcp://*:5557' : undefined;
  if (endpoint === undefined) throw new Error('--kv-events-config: endpoint must be a string');
  const pub = tcpEndpoint('--kv-events-config endpoint', endpoint);
  if (isWildcard(pub.host)) out.bindPort = pub.port;
  else out.connect = endpoint;
  if (o.replay_endpoint !== undefined && o.replay_endpoint !== null) {
    if (typeof o.replay_endpoint !== 'string') throw new Error('--kv-events-config: replay_endpoint must be a string');
    const r = tcpEndpoint('--kv-events-config replay_endpoint', o.replay_endpoint);
    if (!isWildcard(r.host)) throw new Error('--kv-events-config: replay_endpoint must be tcp://*:PORT (each pod binds it on its own address)');
    out.replayPort = r.port;
  }
  return out;
}

/**
 * The pods' KV-event settings from the fleet flags (undefined: no events), and whether they
 * need an address of their own (anything bound on a pod: the PUB socket or the replay ROUTER).
 */
export function kvEventsFromFlags(f: KvEventsFlags): { kvEvents: SimKvEventsOptions; ownAddress: boolean } | undefined {
  const fmt = format(f.format);
  let kv: SimKvEventsOptions | undefined;
  if (f.config !== undefined) {
    if (f.port !== undefined || f.endpoint !== undefined || f.replayPort !== undefined) {
      throw new Error('--kv-events-config cannot be combined with --kv-events-port, --kv-events-endpoint or --kv-events-replay-port');
    }
    kv = fromConfig(f.config, fmt);
  } else {
    if (f.port !== undefined && f.endpoint !== undefined) throw new Error('--kv-events-port (pods bind) and --kv-events-endpoint (pods connect) exclude each other');
    if (f.port === undefined && f.endpoint === undefined) {
      if (f.replayPort !== undefined || f.format !== undefined) throw new Error('--kv-events-replay-port and --kv-events-format need --kv-events-port or --kv-events-endpoint');
      return undefined;
    }
    kv = { format: fmt };
    if (f.port !== undefined) kv.bindPort = f.port;
    if (f.endpoint !== undefined) {
      const e = tcpEndpoint('--kv-events-endpoint', f.endpoint);
      if (isWildcard(e.host) || e.port === 0) throw new Error('--kv-events-endpoint names the subscriber pods connect to (e.g. tcp://127.0.0.1:5557); to have pods bind, use --kv-events-port');
      kv.connect = f.endpoint;
    }
    if (f.replayPort !== undefined) kv.replayPort = f.replayPort;
  }
  return kv && { kvEvents: kv, ownAddress: kv.bindPort !== undefined || kv.replayPort !== undefined };
}
