// Fisher–Yates shuffle with an injectable random source (tests seed it).
export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  }
  return items;
}

export const MAX_ENDPOINTS_PARAM = {
  type: 'number',
  integer: true,
  min: 1,
  doc: 'How many endpoints to return (primary + fallbacks). Default: 1 + --fallback-endpoints.',
} as const;
