// Tokenizer-free token model of the simulator: every 4 characters are one token, and a
// token's id is a cheap 32-bit hash (FNV-1a) of its 4-character piece, so equal text gives
// equal ids and the prefix cache sees real sharing. Used the same way everywhere (prompt
// counting, block hashing, usage reporting, generated text).

export const CHARS_PER_TOKEN = 4;

/** Number of tokens of `text` (ceil(length / 4); the empty string has 0). */
export function countTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

/** FNV-1a over the UTF-16 code units of text[start, end). */
function pieceId(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A 32-bit hash of a whole string (FNV-1a), e.g. to seed a cache salt into block hashes. */
export function textSeed(text: string): number {
  return pieceId(text, 0, text.length);
}

/** Token ids of `text`: one per 4-character piece (the last piece may be shorter). */
export function tokenize(text: string): Uint32Array {
  const n = countTokens(text);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const s = i * CHARS_PER_TOKEN;
    out[i] = pieceId(text, s, Math.min(text.length, s + CHARS_PER_TOKEN));
  }
  return out;
}

/** Filler vocabulary for generated text; every entry is exactly one token (4 characters). */
const WORDS = [
  ' the', ' sim', ' GPU', ' KV ', ' and', ' of ', ' a  ', ' to ', ' is ', ' in ', ' LLM', ' fast',
  ' pod', ' node', ' text', ' data', ' more', ' with', ' that', ' some', ' word', ' time', ' this',
  ' test', ' load', ' busy', ' here', ' page', ' tok', ' out', ' new', ' end',
].map((w) => w.padEnd(CHARS_PER_TOKEN, ' ').slice(0, CHARS_PER_TOKEN));

const WORD_IDS = WORDS.map((w) => pieceId(w, 0, w.length));

/** The i-th generated token (0-based) of a response: its text (4 characters) and id. */
export function fillerToken(i: number): { text: string; id: number } {
  const k = i % WORDS.length;
  return { text: WORDS[k], id: WORD_IDS[k] };
}

/** The text of `n` generated tokens. */
export function fillerText(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += WORDS[i % WORDS.length];
  return s;
}

/** Token ids of a prompt given as text or as token ids (vLLM accepts both). */
export function promptTokenIds(prompt: string | readonly number[]): Uint32Array {
  if (typeof prompt === 'string') return tokenize(prompt);
  const out = new Uint32Array(prompt.length);
  for (let i = 0; i < prompt.length; i++) out[i] = prompt[i] >>> 0;
  return out;
}
