// encode-filter (llm-d): endpoints whose llm-d.ai/role says they run the
// multimodal encode stage.
import { definePlugin } from '../registry.ts';
import { ENCODE_ROLES, ROLE_LABEL, RoleFilter } from './role.ts';

export const encodeFilter = definePlugin({
  type: 'encode-filter',
  description: `Keeps endpoints whose ${ROLE_LABEL} is encode, encode-prefill or encode-prefill-decode.`,
  params: {},
  create: (name) => new RoleFilter('encode-filter', name, ENCODE_ROLES, false),
});
