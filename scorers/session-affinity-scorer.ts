// session-affinity-scorer (llm-d): the endpoint a request's session is pinned
// to scores 1.0, the others 0 — by the encoded_endpoint_header strategy
// (x-session-token names the endpoint; responses carry the serving endpoint's
// token) or session_id (a client session id bound to its last endpoint).
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, PreRequest, ResponseReceived, Scorer, StateKey } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';
import { AFFINITY_PARAMS, createSessionAffinity, type SessionAffinity } from '../src/scheduling/session/affinity.ts';

export { SESSION_HEADER, sessionToken } from '../src/scheduling/session/affinity.ts';

class SessionAffinityScorer implements Scorer, PreRequest, ResponseReceived {
  readonly type = 'session-affinity-scorer';
  readonly category = 'affinity';
  readonly name: string;
  readonly consumes: readonly StateKey<unknown>[];
  readonly #a: SessionAffinity;

  constructor(name: string, a: SessionAffinity) {
    this.name = name;
    this.#a = a;
    this.consumes = a.consumes;
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    const target = this.#a.target(state, endpoints);
    if (target) out[endpoints.indexOf(target)] = 1;
    return out;
  }

  preRequest(state: CycleState, primary: Endpoint): void {
    this.#a.bind(state, primary);
  }

  responseReceived(_state: CycleState, served: Endpoint): [string, string][] {
    return this.#a.responseHeaders(served);
  }
}

export const sessionAffinityScorer = definePlugin({
  type: 'session-affinity-scorer',
  // Alpha in llm-d Router v0.10; beta here, where it has served GAIE v1.5 configs all along.
  description: 'The endpoint the request\'s session is pinned to scores 1.0 (strategy encoded_endpoint_header: x-session-token = base64 of namespace/name, set on every response; strategy session_id: a client session id bound to its last endpoint).',
  params: AFFINITY_PARAMS,
  create: (name, p, ctx) => new SessionAffinityScorer(name, createSessionAffinity(`plugin "${name}" (session-affinity-scorer)`, p, ctx.sync && { sync: ctx.sync, plugin: name })),
});
