// session-affinity-scorer (llm-d): request header x-session-token names an
// endpoint (base64 of "namespace/name"); that endpoint scores 1.0, others 0.
// Every response carries the token of the endpoint that served it, so a
// client that echoes it back stays on its pod.
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, ResponseReceived, Scorer } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

export const SESSION_HEADER = 'x-session-token';

export function sessionToken(e: Endpoint): string {
  return Buffer.from(`${e.namespace}/${e.name}`).toString('base64');
}

class SessionAffinityScorer implements Scorer, ResponseReceived {
  readonly type = 'session-affinity-scorer';
  readonly category = 'affinity';
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    const token = state.request.headers.get(SESSION_HEADER);
    if (!token) return out;
    const target = Buffer.from(token, 'base64').toString('utf8');
    for (let i = 0; i < endpoints.length; i++) {
      const e = endpoints[i];
      if (`${e.namespace}/${e.name}` === target) out[i] = 1;
    }
    return out;
  }

  responseReceived(_state: CycleState, served: Endpoint): [string, string][] {
    return [[SESSION_HEADER, sessionToken(served)]];
  }
}

export const sessionAffinityScorer = definePlugin({
  type: 'session-affinity-scorer',
  description: 'x-session-token (base64 of namespace/name) names the endpoint that scores 1.0; responses carry the serving endpoint\'s token.',
  params: {},
  create: (name) => new SessionAffinityScorer(name),
});
