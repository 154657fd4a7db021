// Where a text can be cut so that tokenizing the two halves separately gives exactly the
// ids of the whole: right after an added token such as Qwen's <|im_start|>.
//
// Why that is exact. A Hugging Face tokenizer first splits the raw text on its
// non-normalized added tokens (leftmost-longest matching), then normalizes,
// pre-tokenizes and runs the model on each piece between them on its own. Let A be
// such a token and P + T a text where P ends with a match of A. Nothing about the
// pieces of P depends on T, and T's pieces start a new piece, if no match can start in
// P and end in T and nothing strips or checks the characters around A. The rule below
// admits A as a cut token only when that holds for every string, whatever the other
// added tokens:
//   1. A is matched on raw text (normalized: false), with no lstrip/rstrip/single_word,
//      is not empty, and does not end in whitespace;
//   2. A's id lies outside the model's own vocabulary (so it can only come from the
//      added-token match, and the ids can be matched back to the text);
//   3. no other added token contains A;
//   4. no added token (A included) begins with a non-empty suffix of A and goes on
//      past it (a match starting inside or before A's end and crossing it);
//   5. no added token (A included) ends with a proper non-empty prefix of A (a match
//      overlapping A's start, which would hide this occurrence of A).
// The one piece that depends on position — Metaspace's prepend_scheme "first", which
// prefixes only the piece at offset 0 — is handled by tokenizing the tail *with* A in
// front (A + T) and dropping A's id: T's first piece then starts at a non-zero offset,
// as it does inside the whole text.
import type { AddedTokenSpec } from './text-tokenizer.ts';

export interface CutToken {
  readonly content: string;
  readonly id: number;
}

/** One cut: the text up to `end` ends with the cut token whose id is `id`. */
export interface Cut {
  readonly end: number;
  readonly id: number;
  readonly length: number;
}

/**
 * The added tokens after which tokenization restarts (the rule above). Linear in the
 * added tokens' total length apart from rule 3's scan, so thousands of added tokens
 * load in well under a second.
 */
export function selectCutTokens(added: readonly AddedTokenSpec[], modelMayProduce: (token: AddedTokenSpec) => boolean): CutToken[] {
  const properPrefixes = new Set<string>();
  const suffixes = new Set<string>();
  for (const { content } of added) {
    for (let k = 1; k < content.length; k++) properPrefixes.add(content.slice(0, k));
    for (let k = 0; k < content.length; k++) suffixes.add(content.slice(k));
  }
  const all = `\0${added.map((a) => a.content).join('\0')}\0`;
  return added
    .filter((a) => {
      const s = a.content;
      if (a.normalized || a.lstrip || a.rstrip || a.singleWord || s === '' || /\s$/u.test(s) || modelMayProduce(a)) return false;
      // 3: A occurs once among all added tokens' text (its own entry).
      const first = all.indexOf(s);
      if (all.indexOf(s, first + 1) >= 0) return false;
      for (let k = 1; k <= s.length; k++) {
        // 4: some token starts with A's suffix of length k and goes on.
        if (properPrefixes.has(s.slice(s.length - k))) return false;
        // 5: some token ends with A's proper prefix of length k.
        if (k < s.length && suffixes.has(s.slice(0, k))) return false;
      }
      return true;
    })
    .map((a) => ({ content: a.content, id: a.id }));
}

/** Finds the cut points of a text, left to right. */
export class CutFinder {
  private readonly pattern: RegExp | undefined;
  private readonly ids: ReadonlyMap<string, number>;
  private readonly idSet: ReadonlySet<number>;
  /** Smallest cut-token id: added tokens usually sit above the whole vocabulary, so most ids fail this first. */
  private readonly minId: number;

  constructor(tokens: readonly CutToken[]) {
    this.ids = new Map(tokens.map((t) => [t.content, t.id]));
    this.idSet = new Set(this.ids.values());
    this.minId = Math.min(...this.idSet);
    const escaped = tokens.map((t) => t.content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.pattern = escaped.length ? new RegExp(escaped.join('|'), 'g') : undefined;
  }

  /** Whether `id` is a cut token's id. */
  isCutId(id: number): boolean {
    return id >= this.minId && this.idSet.has(id);
  }

  /** The last `max` cuts of `text`, in order, and how many earlier ones were left out. */
  find(text: string, max: number): { cuts: Cut[]; skipped: number } {
    if (!this.pattern || max <= 0) return { cuts: [], skipped: 0 };
    let cuts: Cut[] = [];
    let skipped = 0;
    this.pattern.lastIndex = 0;
    for (const m of text.matchAll(this.pattern)) {
      cuts.push({ end: m.index + m[0].length, id: this.ids.get(m[0]) as number, length: m[0].length });
      if (cuts.length === 2 * max) {
        skipped += max;
        cuts = cuts.slice(max);
      }
    }
    if (cuts.length > max) {
      skipped += cuts.length - max;
      cuts = cuts.slice(cuts.length - max);
    }
    return { cuts, skipped };
  }
}
