// The items that can expire, ordered by (expiresAt, version): an indexed
// binary min-heap, so that the leader finds what has expired without
// scanning, and an item's entry is moved or removed in O(log n) when it is
// rewritten, touched or deleted (no stale entries piling up).
//
// Versions are log indexes and each entry writes at most one item, so no two
// items share a version: the order is total, and what expired() returns does
// not depend on the heap's shape (which differs after a restore).

export interface HeapEntry {
  expiresAt: number | null;
  version: number;
  /** Position in the heap, -1 when not in it. Owned by the heap. */
  heapIndex: number;
}

function before(a: HeapEntry, b: HeapEntry): boolean {
  return a.expiresAt! < b.expiresAt! || (a.expiresAt === b.expiresAt && a.version < b.version);
}

export class ExpiryHeap<T extends HeapEntry> {
  private readonly heap: T[] = [];

  get size(): number {
    return this.heap.length;
  }

  /** Puts `e` where its (expiresAt, version) belongs: inserts, moves or removes it. */
  update(e: T): void {
    if (e.expiresAt === null) {
      this.remove(e);
    } else if (e.heapIndex < 0) {
      e.heapIndex = this.heap.length;
      this.heap.push(e);
      this.up(e.heapIndex);
    } else {
      this.down(this.up(e.heapIndex));
    }
  }

  remove(e: T): void {
    const i = e.heapIndex;
    if (i < 0) return;
    const last = this.heap.pop()!;
    e.heapIndex = -1;
    if (last === e) return;
    this.heap[i] = last;
    last.heapIndex = i;
    this.down(this.up(i));
  }

  /**
   * Up to `limit` entries with expiresAt ≤ now, earliest first, without
   * changing the heap: a best-first walk from the root that stops at the
   * first entry not yet expired on each branch, O(k log k) for k results.
   */
  expired(now: number, limit: number): T[] {
    const out: T[] = [];
    const h = this.heap;
    if (h.length === 0 || h[0]!.expiresAt! > now || limit <= 0) return out;
    const frontier: number[] = [0]; // heap indexes, itself a min-heap by the same order
    const less = (a: number, b: number): boolean => before(h[a]!, h[b]!);
    while (frontier.length > 0 && out.length < limit) {
      const i = popMin(frontier, less);
      out.push(h[i]!);
      for (const c of [2 * i + 1, 2 * i + 2]) {
        if (c < h.length && h[c]!.expiresAt! <= now) pushMin(frontier, c, less);
      }
    }
    return out;
  }

  /** Asserts the heap property and the index back-pointers (tests). */
  check(): void {
    this.heap.forEach((e, i) => {
      if (e.heapIndex !== i) throw new Error(`heap entry ${i} thinks it is at ${e.heapIndex}`);
      if (e.expiresAt === null) throw new Error(`heap entry ${i} has no expiry`);
      if (i > 0 && before(e, this.heap[(i - 1) >> 1]!)) throw new Error(`heap order broken at ${i}`);
    });
  }

  private up(i: number): number {
    const h = this.heap;
    const e = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, h[p]!)) break;
      h[i] = h[p]!;
      h[i]!.heapIndex = i;
      i = p;
    }
    h[i] = e;
    e.heapIndex = i;
    return i;
  }

  private down(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && before(h[r]!, h[l]!) ? r : l;
      if (!before(h[c]!, e)) break;
      h[i] = h[c]!;
      h[i]!.heapIndex = i;
      i = c;
    }
    h[i] = e;
    e.heapIndex = i;
  }
}

function pushMin(a: number[], v: number, less: (x: number, y: number) => boolean): void {
  let i = a.push(v) - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!less(a[i]!, a[p]!)) break;
    [a[i], a[p]] = [a[p]!, a[i]!];
    i = p;
  }
}

function popMin(a: number[], less: (x: number, y: number) => boolean): number {
  const top = a[0]!;
  const last = a.pop()!;
  if (a.length > 0) {
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && less(a[r]!, a[l]!) ? r : l;
      if (!less(a[c]!, a[i]!)) break;
      [a[i], a[c]] = [a[c]!, a[i]!];
      i = c;
    }
  }
  return top;
}
