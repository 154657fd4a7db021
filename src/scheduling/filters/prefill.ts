// prefill-filter (llm-d): endpoints that prefill; unlabelled ones are removed.
import { definePlugin } from '../registry.ts';
import { PREFILL_ROLES, ROLE_LABEL, RoleFilter } from './role.ts';

export const prefillFilter = definePlugin({
  type: 'prefill-filter',
  description: `Keeps endpoints whose ${ROLE_LABEL} is prefill, encode-prefill, prefill-decode, both or encode-prefill-decode; unlabelled endpoints are removed.`,
  params: {},
  create: (name) => new RoleFilter('prefill-filter', name, PREFILL_ROLES, false),
});
