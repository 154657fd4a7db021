// decode-filter / prefill-filter: keep endpoints by their llm-d.ai/role label,
// with llm-d's role sets.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter } from '../framework.ts';
import { definePlugin } from '../registry.ts';

export const ROLE_LABEL = 'llm-d.ai/role';
const DECODE_ROLES = new Set(['decode', 'prefill-decode', 'both', 'encode-prefill-decode']);
const PREFILL_ROLES = new Set(['prefill', 'encode-prefill', 'prefill-decode', 'both', 'encode-prefill-decode']);

class RoleFilter implements Filter {
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

export const decodeFilter = definePlugin({
  type: 'decode-filter',
  description: `Keeps endpoints whose ${ROLE_LABEL} is decode, prefill-decode, both or encode-prefill-decode, and endpoints without the label.`,
  params: {},
  create: (name) => new RoleFilter('decode-filter', name, DECODE_ROLES, true),
});

export const prefillFilter = definePlugin({
  type: 'prefill-filter',
  description: `Keeps endpoints whose ${ROLE_LABEL} is prefill, encode-prefill, prefill-decode, both or encode-prefill-decode; unlabelled endpoints are removed.`,
  params: {},
  create: (name) => new RoleFilter('prefill-filter', name, PREFILL_ROLES, false),
});
