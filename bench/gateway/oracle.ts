// The routing benchmark's oracle (--strategy oracle): a router that knows every
// simulated pod's true prefix cache. For each request it asks every pod how many
// of the prompt's tokens its cache holds right now (POST /sim/prefix-match, a
// pure lookup in the simulator, bench/sim/server.ts) and sends the request to the
// pod holding the most; ties (no hit anywhere included) go to the pod with the
// fewest requests in flight. Only the simulator can answer it: real pods have
// no such route, which is what precise routing approximates from KV events.
import type { Agent } from 'undici';
import type { InFlight } from './upstream.ts';

const PATH = '/sim/prefix-match';
const TIMEOUT_MS = 2000;

/** Tokens of the prompt each pod holds; -1 when the pod did not answer. */
async function cachedTokens(agent: Agent, endpoint: string, body: Buffer): Promise<number> {
  try {
    const r = await agent.request({
      origin: `http://${endpoint}`,
      path: PATH,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
      body,
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
    const j = (await r.body.json()) as { cached_tokens?: unknown };
    return r.statusCode === 200 && typeof j.cached_tokens === 'number' ? j.cached_tokens : -1;
  } catch {
    return -1;
  }
}

/**
 * The endpoints in the oracle's order of preference: most cached tokens first, then fewest
 * requests in flight (the rest of the list is the fallback walk, as an EPP's would be).
 */
export async function oracleOrder(agent: Agent, endpoints: readonly string[], inFlight: InFlight, body: Buffer): Promise<string[]> {
  const cached = await Promise.all(endpoints.map((e) => cachedTokens(agent, e, body)));
  const order = endpoints.map((e, i) => ({ e, cached: cached[i], load: inFlight.get(e) ?? 0, tie: Math.random() }));
  order.sort((a, b) => b.cached - a.cached || a.load - b.load || a.tie - b.tie);
  return order.map((o) => o.e);
}
