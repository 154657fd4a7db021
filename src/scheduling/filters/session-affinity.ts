// session-affinity-filter (llm-d Router, alpha): the hard form of
// session-affinity-scorer — keep only the endpoint the session is pinned to,
// or every candidate when that endpoint is gone.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter, PreRequest, ResponseReceived, StateKey } from '../framework.ts';
import { definePlugin } from '../registry.ts';
import { AFFINITY_PARAMS, createSessionAffinity, type SessionAffinity } from '../session/affinity.ts';

class SessionAffinityFilter implements Filter, PreRequest, ResponseReceived {
  readonly type = 'session-affinity-filter';
  readonly name: string;
  readonly consumes: readonly StateKey<unknown>[];
  readonly #a: SessionAffinity;

  constructor(name: string, a: SessionAffinity) {
    this.name = name;
    this.#a = a;
    this.consumes = a.consumes;
  }

  filter(state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    const target = this.#a.target(state, endpoints);
    return target ? [target] : endpoints;
  }

  preRequest(state: CycleState, primary: Endpoint): void {
    this.#a.bind(state, primary);
  }

  responseReceived(_state: CycleState, served: Endpoint): [string, string][] {
    return this.#a.responseHeaders(served);
  }
}

export const sessionAffinityFilter = definePlugin({
  type: 'session-affinity-filter',
  stability: 'alpha',
  description: 'Keeps only the endpoint the request\'s session is pinned to (same strategies as session-affinity-scorer); every candidate when it is gone.',
  params: AFFINITY_PARAMS,
  create: (name, p, ctx) => new SessionAffinityFilter(name, createSessionAffinity(`plugin "${name}" (session-affinity-filter)`, p, ctx.sync && { sync: ctx.sync, plugin: name })),
});
