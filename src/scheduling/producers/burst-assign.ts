// The joint placement of one burst window (burst-prefix-cache-producer, after
// llm-d Router's assignment): requests with an identical prompt prefix form a
// group, always placed whole when it has two or more members; a single request
// is placed only when it shares at least minColocateBlocks leading blocks with
// another request of the window. Groups go first, then those singles, each tier
// longest prefix first. A unit's first replica is the one already holding the
// longest shared prefix (≥ minColocateBlocks blocks) while under its fair share
// of the window, else the least loaded; maxPerReplica caps how many of a unit's
// requests one replica takes, the rest spilling to the next least loaded. Load
// is the window's own: requests, or prefix blocks still to prefill (a replica
// is charged a unit's blocks once, less the leading blocks it already holds).
// Ties go to fewer in-flight requests, then the name.
import type { Endpoint } from '../../pool/endpoint.ts';
import type { BlockHashes } from '../../prefix/hash.ts';

/** maxPerReplica (and maxBatchSize) meaning no cap. */
export const UNLIMITED = -1;

export type BalanceBy = 'requests' | 'tokens';

export interface BurstOptions {
  /** Requests of one unit a replica takes (k), or UNLIMITED. */
  readonly maxPerReplica: number;
  /** Shared leading blocks for co-location and for a single request to be placed; 0: groups only. */
  readonly minColocateBlocks: number;
  readonly balanceBy: BalanceBy;
}

/** One request of a window. */
export interface BurstEntry {
  readonly hashes: BlockHashes;
  /** The request's candidates; a window places over its first prefixed request's. */
  readonly candidates: readonly Endpoint[];
  /** Written by assignBurst: where the request is steered; undefined is no affinity. */
  assigned: Endpoint | undefined;
}

interface Unit {
  readonly members: readonly BurstEntry[];
  readonly hashes: BlockHashes;
  readonly blocks: number;
}

/** The replicas a block was placed on; blocks whose hashes share the low half are chained. */
interface Holders {
  readonly hi: number;
  readonly replicas: string[];
  readonly next: Holders | undefined;
}

/** Names the first n blocks: each block's hash chains those before it. */
const prefixId = (h: BlockHashes, n: number) => `${n}/${h.hi[n - 1]}:${h.lo[n - 1]}`;

const longestFirst = (a: Unit, b: Unit) => b.blocks - a.blocks;

/** Sets `assigned` on the entries of one sealed window. */
export function assignBurst(entries: Iterable<BurstEntry>, o: BurstOptions): void {
  const groups = new Map<string, BurstEntry[]>();
  let replicas: readonly Endpoint[] | undefined;
  for (const e of entries) {
    const n = e.hashes.count;
    if (n === 0) continue;
    const id = prefixId(e.hashes, n);
    const group = groups.get(id);
    if (group) group.push(e);
    else groups.set(id, [e]);
    replicas ??= e.candidates;
  }
  if (!replicas || replicas.length === 0) return;
  const sharing = sharingPrefixes(groups, o.minColocateBlocks);
  const whole: Unit[] = [];
  const singles: Unit[] = [];
  for (const [id, members] of groups) {
    const unit = { members, hashes: members[0].hashes, blocks: members[0].hashes.count };
    if (members.length >= 2) whole.push(unit);
    else if (sharing.has(id)) singles.push(unit);
  }
  // A longer prefix placed first leaves more blocks for shorter units to match (sort is stable).
  whole.sort(longestFirst);
  singles.sort(longestFirst);
  const byTokens = o.balanceBy === 'tokens';
  let total = 0;
  for (const u of whole) total += byTokens ? u.blocks : u.members.length;
  for (const u of singles) total += byTokens ? u.blocks : u.members.length;
  const placement = new Placement(replicas, o, Math.ceil(total / replicas.length));
  for (const u of whole) placement.place(u);
  for (const u of singles) placement.place(u);
}

/** Groups whose first minColocateBlocks blocks some other request of the window shares. */
function sharingPrefixes(groups: ReadonlyMap<string, readonly BurstEntry[]>, minBlocks: number): Set<string> {
  const out = new Set<string>();
  if (minBlocks <= 0) return out;
  const lead = new Map<string, string>();
  const requests = new Map<string, number>();
  for (const [id, members] of groups) {
    const h = members[0].hashes;
    if (h.count < minBlocks) continue;
    const sig = prefixId(h, minBlocks);
    lead.set(id, sig);
    requests.set(sig, (requests.get(sig) ?? 0) + members.length);
  }
  for (const [id, sig] of lead) if (requests.get(sig)! >= 2) out.add(id);
  return out;
}

class Placement {
  readonly #replicas: readonly Endpoint[];
  readonly #o: BurstOptions;
  readonly #fairShare: number;
  /** Per replica key: requests, or blocks to prefill, placed so far in this window. */
  readonly #load = new Map<string, number>();
  /** Per block (by the low half of its hash): the replicas it was placed on in this window. */
  readonly #holders = new Map<number, Holders>();

  constructor(replicas: readonly Endpoint[], o: BurstOptions, fairShare: number) {
    this.#replicas = replicas;
    this.#o = o;
    this.#fairShare = fairShare;
  }

  place(u: Unit): void {
    const { maxPerReplica: k, minColocateBlocks, balanceBy } = this.#o;
    let preferShared = minColocateBlocks > 0;
    const held = preferShared || balanceBy === 'tokens' ? this.#heldPrefix(u.hashes) : new Map<string, number>();
    const taken = new Map<string, number>();
    for (let i = 0; i < u.members.length; ) {
      const target = (preferShared && this.#sharedReplica(taken, held)) || this.#leastLoaded(taken);
      const have = taken.get(target.key) ?? 0;
      let run = u.members.length - i;
      // More members than k × replicas: one at a time, each to the least loaded.
      if (k !== UNLIMITED) run = Math.min(run, Math.max(1, k - have));
      for (let j = i; j < i + run; j++) u.members[j].assigned = target;
      taken.set(target.key, have + run);
      if (balanceBy === 'requests') this.#charge(target, run);
      else if (have === 0) this.#charge(target, Math.max(0, u.blocks - (held.get(target.key) ?? 0)));
      i += run;
      // Only the unit's first replica follows the shared prefix.
      preferShared = false;
    }
    // Only co-location and token balancing look at which blocks a replica
    // holds. Last block first: where the replicas already hold one, they hold
    // every block before it.
    if (minColocateBlocks > 0 || balanceBy === 'tokens') {
      for (let b = u.blocks - 1; b >= 0; b--) {
        const at = this.#holdersOf(u.hashes, b, true)!;
        let added = false;
        for (const key of taken.keys()) {
          if (at.replicas.includes(key)) continue;
          at.replicas.push(key);
          added = true;
        }
        if (!added) break;
      }
    }
  }

  /** The replicas holding block b of h; with `add`, an empty entry is made for a new block. */
  #holdersOf(h: BlockHashes, b: number, add: boolean): Holders | undefined {
    const lo = h.lo[b];
    const hi = h.hi[b];
    const first = this.#holders.get(lo);
    for (let at = first; at; at = at.next) if (at.hi === hi) return at;
    if (!add) return undefined;
    const made: Holders = { hi, replicas: [], next: first };
    this.#holders.set(lo, made);
    return made;
  }

  /**
   * Per replica key, the leading blocks of `h` placed there. Whole prefixes
   * are placed, so a replica holding a block holds every block before it:
   * binary searches find where each replica's share ends.
   */
  #heldPrefix(h: BlockHashes): Map<string, number> {
    const out = new Map<string, number>();
    const first = this.#holdersOf(h, 0, false);
    if (!first) return out;
    for (const key of first.replicas) {
      let held = 1;
      let notHeld = h.count;
      while (held < notHeld) {
        const mid = (held + notHeld) >>> 1;
        if (this.#holdersOf(h, mid, false)?.replicas.includes(key)) held = mid + 1;
        else notHeld = mid;
      }
      out.set(key, held);
    }
    return out;
  }

  /** The replica holding the longest prefix of at least minColocateBlocks, with room for the unit and under its fair share. */
  #sharedReplica(taken: ReadonlyMap<string, number>, held: ReadonlyMap<string, number>): Endpoint | undefined {
    let best: Endpoint | undefined;
    let bestHeld = 0;
    for (const r of this.#replicas) {
      if (!this.#hasRoom(r, taken) || this.#loadOf(r) >= this.#fairShare) continue;
      const n = held.get(r.key) ?? 0;
      if (n < this.#o.minColocateBlocks) continue;
      if (!best || n > bestHeld || (n === bestHeld && this.#before(r, best))) {
        best = r;
        bestHeld = n;
      }
    }
    return best;
  }

  /** The least loaded replica with room for the unit, else the least loaded of all. */
  #leastLoaded(taken: ReadonlyMap<string, number>): Endpoint {
    let best: Endpoint | undefined;
    for (const r of this.#replicas) if (this.#hasRoom(r, taken) && (!best || this.#before(r, best))) best = r;
    if (best) return best;
    best = this.#replicas[0];
    for (const r of this.#replicas) if (this.#before(r, best)) best = r;
    return best;
  }

  #hasRoom(r: Endpoint, taken: ReadonlyMap<string, number>): boolean {
    const k = this.#o.maxPerReplica;
    return k === UNLIMITED || (taken.get(r.key) ?? 0) < k;
  }

  /** Less window load, then fewer requests in flight, then name (and key, for ranks of one pod). */
  #before(a: Endpoint, b: Endpoint): boolean {
    const la = this.#loadOf(a);
    const lb = this.#loadOf(b);
    if (la !== lb) return la < lb;
    if (a.inFlight !== b.inFlight) return a.inFlight < b.inFlight;
    if (a.name !== b.name) return a.name < b.name;
    return a.key < b.key;
  }

  #loadOf(r: Endpoint): number {
    return this.#load.get(r.key) ?? 0;
  }

  #charge(r: Endpoint, amount: number): void {
    this.#load.set(r.key, this.#loadOf(r) + amount);
  }
}
