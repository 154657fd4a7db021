// What decode-filter and prefill-filter share: keep endpoints by their
// llm-d.ai/role label, with llm-d's role sets.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter } from '../framework.ts';

export const ROLE_LABEL = 'llm-d.ai/role';
export const DECODE_ROLES = new Set(['decode', 'prefill-decode', 'both', 'encode-prefill-decode']);
export const PREFILL_ROLES = new Set(['prefill', 'encode-prefill', 'prefill-decode', 'both', 'encode-prefill-decode']);
export const ENCODE_ROLES = new Set(['encode', 'encode-prefill', 'encode-prefill-decode']);

export class RoleFilter implements Filter {
  readonly type: string;
  readonly name: string;
  readonly #roles: ReadonlySet<string>;
  readonly #keepUnlabelled: boolean;

  constructor(type: string, name: string, roles: ReadonlySet<string>, keepUnlabelled: boolean) {
    this.type = type;
    this.name = name;
    this.#roles = roles;
    this.#keepUnlabelled = keepUnlabelled;
  }

  filter(_state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    return endpoints.filter((e) => {
      const role = e.labels[ROLE_LABEL];
      return role === undefined ? this.#keepUnlabelled : this.#roles.has(role);
    });
  }
}
