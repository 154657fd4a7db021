// The parameter every picker takes.
export const MAX_ENDPOINTS_PARAM = {
  type: 'number',
  integer: true,
  min: 1,
  doc: 'How many endpoints to return (primary + fallbacks). Default: 1 + --fallback-endpoints.',
} as const;
