// decode-filter (llm-d): endpoints that decode, and unlabelled ones.
import { definePlugin } from '../registry.ts';
import { DECODE_ROLES, ROLE_LABEL, RoleFilter } from './role.ts';

export const decodeFilter = definePlugin({
  type: 'decode-filter',
  description: `Keeps endpoints whose ${ROLE_LABEL} is decode, prefill-decode, both or encode-prefill-decode, and endpoints without the label.`,
  params: {},
  create: (name) => new RoleFilter('decode-filter', name, DECODE_ROLES, true),
});
