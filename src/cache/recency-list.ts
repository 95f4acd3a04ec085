// A cache's items from least to most recently used: an intrusive doubly
// linked list (the links live in the items), so that moving an item on a
// write or a read, and removing it, are O(1) with no allocation.
//
// Recency is leader-local knowledge, not replicated state: apply() moves an
// item on a put (every replica does the same), and the leader also moves it
// on reads (touchRecency). Evictions it decides on are replicated as commands.

export interface RecencyNode<T> {
  older: T | null;
  newer: T | null;
}

export class RecencyList<T extends RecencyNode<T>> {
  private oldest: T | null = null;
  private newest: T | null = null;

  /** Appends `e` (not in the list) as the most recent. */
  append(e: T): void {
    e.older = this.newest;
    e.newer = null;
    if (this.newest) this.newest.newer = e;
    else this.oldest = e;
    this.newest = e;
  }

  remove(e: T): void {
    if (e.older) e.older.newer = e.newer;
    else this.oldest = e.newer;
    if (e.newer) e.newer.older = e.older;
    else this.newest = e.older;
    e.older = e.newer = null;
  }

  /** Makes `e` (in the list) the most recent. */
  use(e: T): void {
    if (this.newest === e) return;
    this.remove(e);
    this.append(e);
  }

  *fromOldest(): Generator<T> {
    for (let e = this.oldest; e; e = e.newer) yield e;
  }
}
