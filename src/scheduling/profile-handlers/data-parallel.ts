// data-parallel-profile-handler (llm-d Router, deprecated there in favour of
// single-profile-handler with Istio ≥ 1.28.1): each data-parallel rank of a
// vLLM pod is an endpoint (one port per rank); the request is sent to the
// pod's primary port with x-data-parallel-host-port naming the rank that was
// picked, and the pod's own router hands it to that rank.
import type { Endpoint } from '../../pool/endpoint.ts';
import { joinHostPort } from '../../pool/endpoint.ts';
import type { CycleState, DestinationRewrite } from '../framework.ts';
import { definePlugin } from '../registry.ts';
import { SingleProfileHandler } from './single.ts';

export const DATA_PARALLEL_HEADER = 'x-data-parallel-host-port';

export class DataParallelProfileHandler extends SingleProfileHandler {
  override readonly type = 'data-parallel-profile-handler';
  readonly #primaryPort: number;

  constructor(name: string, primaryPort: number) {
    super(name);
    this.#primaryPort = primaryPort;
  }

  rewriteDestination(_state: CycleState, endpoints: readonly Endpoint[]): DestinationRewrite {
    const destinations = endpoints.map((e) => joinHostPort(e.address, this.#primaryPort));
    const first = endpoints[0];
    return { destinations, headers: first ? [[DATA_PARALLEL_HEADER, first.key]] : [] };
  }
}

export const dataParallelProfileHandler = definePlugin({
  type: 'data-parallel-profile-handler',
  deprecated: 'use single-profile-handler (with Istio ≥ 1.28.1), as llm-d Router advises',
  description: 'One profile; sends the request to the picked pod\'s primaryPort with x-data-parallel-host-port naming the picked rank (ip:port).',
  params: {
    primaryPort: { type: 'number', integer: true, min: 1, max: 65535, default: 8000, doc: 'The pod port that fronts every data-parallel rank.' },
  },
  create: (name, p) => new DataParallelProfileHandler(name, p.primaryPort),
});
