// Token ids of recently seen prompt prefixes, so that the next turn of a conversation
// tokenizes only what it adds. Prefixes end at the cut points of prefix-cut.ts (right
// after an added token such as <|im_start|>), where tokenization provably restarts:
// ids(whole) = ids(prefix) + ids(tail). Keys are SHA-256 digests of the prefix text,
// chained over the cuts, so no client text is kept beyond the ids themselves.
//
// A request's ids are stored once; each of its cuts becomes an entry viewing a prefix
// of that array. Memory is counted per array (plus a fixed cost per entry) and bounded
// by `maxBytes`; least recently used entries go first, and an array is freed with its
// last entry. After tokenizing, every cut of the tail is matched back to its token —
// the n-th cut token in the text is the n-th cut-token id in the ids — and any
// disagreement (which the rule says cannot happen) discards the cached prefix: the
// caller then tokenizes the whole text.
import { createHash } from 'node:crypto';
import { CutFinder, type Cut, type CutToken } from './prefix-cut.ts';

/** Cuts hashed per text: the last ones, where the next turn's shared prefix ends. */
const MAX_CUTS = 256;
/** Memory charged per entry on top of the ids (key string, map slot, view object). */
const ENTRY_BYTES = 256;

interface Block {
  readonly ids: Uint32Array;
  refs: number;
}

interface Entry {
  readonly view: Uint32Array;
  readonly block: Block;
}

/** A text's cuts and the longest cached prefix among them. */
export interface PrefixPlan {
  /** The last cuts of the text (at most MAX_CUTS). */
  readonly cuts: readonly Cut[];
  /** Cuts before those, not hashed. */
  readonly skipped: number;
  readonly keys: readonly string[];
  /** Index in `cuts` of the cached prefix, -1 when none is cached. */
  readonly hit: number;
  /** Ids of text.slice(0, cuts[hit].end). */
  readonly hitIds: Uint32Array | undefined;
  /** Where the text to tokenize starts: the hit's cut token (tokenized again, then dropped), or 0. */
  readonly tailStart: number;
}

export class PrefixCache {
  private readonly finder: CutFinder;
  private readonly maxBytes: number;
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(cutTokens: readonly CutToken[], maxBytes: number) {
    this.finder = new CutFinder(cutTokens);
    this.maxBytes = maxBytes;
  }

  /** Bytes held now (ids and per-entry cost). */
  get size(): number {
    return this.bytes;
  }

  /** The cuts of `text` and its longest cached prefix. */
  plan(text: string): PrefixPlan {
    const { cuts, skipped } = this.finder.find(text, this.maxBytes > 0 ? MAX_CUTS : 0);
    const keys = digests(text, cuts);
    for (let i = cuts.length - 1; i >= 0; i--) {
      const e = this.entries.get(keys[i]);
      if (!e) continue;
      this.entries.delete(keys[i]);
      this.entries.set(keys[i], e);
      return { cuts, skipped, keys, hit: i, hitIds: e.view, tailStart: cuts[i].end - cuts[i].length };
    }
    return { cuts, skipped, keys, hit: -1, hitIds: undefined, tailStart: 0 };
  }

  /**
   * The whole text's ids from the plan and the ids of text.slice(plan.tailStart);
   * stores the new cuts. Undefined when the tail does not fit the cached prefix.
   */
  complete(plan: PrefixPlan, tailIds: Uint32Array): Uint32Array | undefined {
    let ids = tailIds;
    let from = 0;
    if (plan.hitIds) {
      if (tailIds[0] !== plan.cuts[plan.hit].id) return undefined;
      ids = new Uint32Array(plan.hitIds.length + tailIds.length - 1);
      ids.set(plan.hitIds, 0);
      ids.set(tailIds.subarray(1), plan.hitIds.length);
      from = plan.hitIds.length;
    }
    const counts = this.cutCounts(plan, ids, from);
    if (counts === undefined) return plan.hitIds ? undefined : ids;
    this.store(plan, ids, counts);
    return ids;
  }

  /** Token count at each cut after the hit, or undefined when the ids do not line up with the cuts. */
  private cutCounts(plan: PrefixPlan, ids: Uint32Array, from: number): number[] | undefined {
    const counts: number[] = [];
    let next = plan.hit + 1;
    // Cut tokens before the hashed window come first when the whole text was tokenized.
    let unhashed = plan.hit < 0 ? plan.skipped : 0;
    for (let i = from; i < ids.length; i++) {
      if (!this.finder.isCutId(ids[i])) continue;
      if (unhashed > 0) {
        unhashed--;
        continue;
      }
      if (next >= plan.cuts.length || ids[i] !== plan.cuts[next].id) return undefined;
      counts.push(i + 1);
      next++;
    }
    return next === plan.cuts.length && unhashed === 0 ? counts : undefined;
  }

  private store(plan: PrefixPlan, ids: Uint32Array, counts: readonly number[]): void {
    if (counts.length === 0 || ids.byteLength + ENTRY_BYTES > this.maxBytes) return;
    const block: Block = { ids: ids.slice(), refs: 0 };
    this.bytes += block.ids.byteLength;
    for (let k = 0; k < counts.length; k++) {
      const key = plan.keys[plan.hit + 1 + k];
      this.remove(key);
      this.entries.set(key, { view: block.ids.subarray(0, counts[k]), block });
      block.refs++;
      this.bytes += ENTRY_BYTES;
    }
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.remove(oldest.value);
    }
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= ENTRY_BYTES;
    if (--e.block.refs === 0) this.bytes -= e.block.ids.byteLength;
  }
}

/** SHA-256 of text.slice(0, cut.end) for each cut, hashing the text once. */
function digests(text: string, cuts: readonly Cut[]): string[] {
  if (cuts.length === 0) return [];
  const h = createHash('sha256');
  let at = 0;
  return cuts.map((c) => {
    h.update(text.slice(at, c.end));
    at = c.end;
    return h.copy().digest('base64');
  });
}
