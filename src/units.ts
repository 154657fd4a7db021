// Units llm-epp reads and estimates with: Go-style durations, Kubernetes-style
// byte sizes, and the characters-per-token estimate used wherever a prompt's
// token count is guessed from its text (prefix blocks, in-flight tokens).

/** Average characters per token (as GAIE's approximate prefix index assumes). */
export const CHARS_PER_TOKEN = 4;

/** Estimated tokens of a text of `chars` characters. */
export function estimateTokens(chars: number): number {
  return Math.ceil(chars / CHARS_PER_TOKEN);
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go time.ParseDuration syntax ("50ms", "1m30s", "0"), returned in milliseconds. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new Error(`invalid duration "${text}" (use a unit, e.g. 50ms, 2s, 1m)`);
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    pos = re.lastIndex;
  }
  if (s.length === 0) throw new Error('empty duration');
  return total;
}

const BYTE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3 };

/** Plain bytes or a k/M/G (decimal) or Ki/Mi/Gi (binary) size, e.g. 8388608, 8Mi. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+)\s*(k|m|g|ki|mi|gi)?b?\s*$/i.exec(text);
  if (!m) throw new Error(`invalid byte size "${text}" (e.g. 8388608, 8Mi)`);
  return Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()];
}
