// A binary min-heap that tells each element where it sits, so an element can
// be removed or re-sorted in O(log n) by the position it carries (a request
// cancelled while queued, a deadline moved). Flow queues and the TTL deadline
// index are both one of these.

export class IndexedHeap<T> {
  readonly #items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;
  readonly #setPos: (item: T, pos: number) => void;

  /** `setPos(item, -1)` is called when an item leaves the heap. */
  constructor(less: (a: T, b: T) => boolean, setPos: (item: T, pos: number) => void) {
    this.#less = less;
    this.#setPos = setPos;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  /** The elements in heap order (not sorted); do not mutate. */
  items(): readonly T[] {
    return this.#items;
  }

  push(item: T): void {
    const items = this.#items;
    items.push(item);
    this.#setPos(item, items.length - 1);
    this.#up(items.length - 1);
  }

  pop(): T | undefined {
    if (this.#items.length === 0) return undefined;
    return this.removeAt(0);
  }

  /** Remove the element at `pos` (as last told to setPos). */
  removeAt(pos: number): T {
    const items = this.#items;
    const item = items[pos];
    const last = items.pop()!;
    if (pos < items.length) {
      items[pos] = last;
      this.#setPos(last, pos);
      this.#fix(pos);
    }
    this.#setPos(item, -1);
    return item;
  }

  /** Empty the heap, returning what it held. */
  drain(): T[] {
    const out = this.#items.splice(0);
    for (const item of out) this.#setPos(item, -1);
    return out;
  }

  #fix(pos: number): void {
    if (pos > 0 && this.#less(this.#items[pos], this.#items[(pos - 1) >> 1])) this.#up(pos);
    else this.#down(pos);
  }

  #up(pos: number): void {
    const items = this.#items;
    const item = items[pos];
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      if (!this.#less(item, items[parent])) break;
      items[pos] = items[parent];
      this.#setPos(items[pos], pos);
      pos = parent;
    }
    items[pos] = item;
    this.#setPos(item, pos);
  }

  #down(pos: number): void {
    const items = this.#items;
    const n = items.length;
    const item = items[pos];
    for (;;) {
      const left = 2 * pos + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#less(items[right], items[left]) ? right : left;
      if (!this.#less(items[child], item)) break;
      items[pos] = items[child];
      this.#setPos(items[pos], pos);
      pos = child;
    }
    items[pos] = item;
    this.#setPos(item, pos);
  }
}
