// The placement a cluster moves toward when members join or leave. The meta
// leader plans it from the placement as it stands, releases a few partitions
// at a time, and plans again from the partly applied result. So it must be
// pure, a fixed point on its own output, move no replica that balance does
// not need (each move is a snapshot sent over the network), and keep to its
// plan when only part of it has been carried out.
//
// A plain greedy rebalance fails the last point: a re-plan from a partly
// applied placement can undo what the previous plan chose, and in testing the
// meta leader then flip-flopped one partition's leader forever. Here a plan is
// an optimum, in two stages: replica sets with the fewest replicas added, then
// preferred leaders with the fewest changes for those sets. Both costs add up
// partition by partition, so applying a planned partition lowers the optimum
// of what remains by exactly that partition's share: over any sequence of
// re-plans, no more replicas are added than the first plan adds.
//
// Each stage is one pass in partition order that moves counts only toward
// their final value (see Shares). When it adds no more than the lower bound
// it is optimal, and a re-plan after the first partitions are applied sees
// the same remaining shortfalls and plans the rest identically. When it gets
// stuck (a short node already in every partition with room, or a leader that
// can hand over to no one), a general method finishes: greedy balancing, then
// cancelling negative cycles on a graph of the N nodes (the usual min-cost
// flow optimality condition), which ends at the optimum too.

import type { NodeId } from '../../raft/index.js';

/** Per partition, its replicas' node ids, preferred leader first. */
export type Placement = readonly (readonly NodeId[])[];

/**
 * The placement to move toward: every partition on R' = min(replicas,
 * members) distinct members; replica counts, and preferred-leader counts,
 * each within one of each other; the fewest replica additions that allows,
 * then the fewest changes of preferred leader. A kept replica keeps its
 * position, a new one takes the place of one that leaves, and the preferred
 * leader comes first. Idempotent, independent of the order of `members`,
 * never mutates its inputs; a balanced placement of members comes back as is.
 */
export function rebalance(current: Placement, members: readonly NodeId[], replicas: number): NodeId[][] {
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be a positive integer, got ${replicas}`);
  const ids = [...new Set(members)].sort();
  if (ids.length === 0) throw new Error('rebalance needs at least one member');
  const n = ids.length;
  const r = Math.min(replicas, n);
  const indexOf = new Map<NodeId, number>(ids.map((id, i) => [id, i]));
  // Node indices in the current order; -1 for a node that is not a member.
  const before = current.map((reps, p) => {
    if (new Set(reps).size !== reps.length) throw new Error(`partition ${p} lists a node twice: ${reps.join(',')}`);
    return reps.map((id) => indexOf.get(id) ?? -1);
  });
  const sets = replicaSets(before, n, r);
  const ordered = before.map((reps, p) => inPlaceOf(reps, sets[p]!));
  const leader = preferredLeaders(ordered, before, n);
  return ordered.map((reps, p) => {
    const first = leader[p]!;
    return [first, ...reps.filter((i) => i !== first)].map((i) => ids[i]!);
  });
}

/** Replica additions needed to go from `a` to `b`: Σ over partitions of |b[p] \ a[p]|. */
export function movesBetween(a: Placement, b: Placement): number {
  if (a.length !== b.length) throw new Error(`placements differ in partition count: ${a.length} and ${b.length}`);
  let moves = 0;
  for (let p = 0; p < a.length; p++) {
    const had = new Set(a[p]);
    for (const id of b[p]!) if (!had.has(id)) moves++;
  }
  return moves;
}

/**
 * How many partitions each node holds and is preferred leader of. Every
 * member is listed (zeros included), then any other node the placement
 * still names (a draining one), all in id order.
 */
export function loadOf(p: Placement, members: readonly NodeId[]): Map<NodeId, { replicas: number; leaders: number }> {
  const ids = new Set(members);
  for (const reps of p) for (const id of reps) ids.add(id);
  const load = new Map<NodeId, { replicas: number; leaders: number }>();
  for (const id of [...ids].sort()) load.set(id, { replicas: 0, leaders: 0 });
  for (const reps of p) {
    reps.forEach((id, k) => {
      const l = load.get(id)!;
      l.replicas++;
      if (k === 0) l.leaders++;
    });
  }
  return load;
}

/**
 * Target voters of the metadata group: the current ones still members, in
 * their order, topped up from the members in id order to min(replicas,
 * members), and cut to that many (the earliest kept). Keeping the current
 * ones first means a join changes no voter while the group is full.
 */
export function metaVoters(current: readonly NodeId[], members: readonly NodeId[], replicas: number): NodeId[] {
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be a positive integer, got ${replicas}`);
  const ids = [...new Set(members)].sort();
  if (ids.length === 0) throw new Error('the metadata group needs at least one member');
  const want = Math.min(replicas, ids.length);
  const memberSet = new Set(ids);
  const voters = [...new Set(current)].filter((id) => memberSet.has(id)).slice(0, want);
  for (const id of ids) {
    if (voters.length >= want) break;
    if (!voters.includes(id)) voters.push(id);
  }
  return voters;
}

// ---------------------------------------------------------------------------
// Replica sets: each partition on r distinct members, each member on ⌊P·r/N⌋
// or ⌈P·r/N⌉ of them, with the fewest replicas added.

function replicaSets(before: readonly (readonly number[])[], n: number, r: number): number[][] {
  const partitions = before.length;
  const parts = before.map((reps) => reps.filter((i) => i >= 0));
  const count = new Array<number>(n).fill(0);
  for (const reps of parts) for (const i of reps) count[i]!++;

  // Trims first, so that targets see the loads they leave behind. The most
  // loaded goes (ties: largest id), never the preferred leader: r ≥ 1 keeps it.
  let trimmed = false;
  for (const reps of parts) {
    while (reps.length > r) {
      let drop = 1;
      for (let k = 2; k < reps.length; k++) {
        const a = reps[k]!;
        const b = reps[drop]!;
        if (count[a]! > count[b]! || (count[a] === count[b] && a > b)) drop = k;
      }
      count[reps[drop]!]!--;
      reps.splice(drop, 1);
      trimmed = true;
    }
  }

  // One pass in partition order: top up, then swap replicas of members that
  // may give for members that may take (see Shares). When every change is
  // one that balance needs, the replicas added are `shares.least`, which no
  // balanced placement beats; and a re-plan after the first partitions are
  // applied finds the same shares left to give and take, so it plans the
  // rest the same way. If the pass gets stuck (every member that may take is
  // already in a partition with room), or trimmed replicas that could have
  // stayed, the general method finishes the job.
  const shares = new Shares(count, partitions * r);
  const least = shares.least;
  let added = 0;
  const inPartition = new Uint8Array(n);
  for (let p = 0; p < partitions; p++) {
    const reps = parts[p]!;
    const leader = before[p]![0] ?? -1;
    for (const i of reps) inPartition[i] = 1;
    while (reps.length < r) {
      let add = shares.neediest(inPartition);
      if (add < 0) {
        // Stuck: the least loaded then, and the general method afterwards.
        for (let i = 0; i < n; i++) if (!inPartition[i] && (add < 0 || count[i]! < count[add]!)) add = i;
      }
      shares.take(add);
      inPartition[add] = 1;
      reps.push(add);
      added++;
    }
    for (;;) {
      // The most loaded that may give (ties: largest id), but the preferred
      // leader only if no other can: moving it costs a leadership handover.
      let give = -1;
      for (const i of reps) {
        if (!shares.canGive(i)) continue;
        if (give < 0 || (give === leader && i !== leader)) give = i;
        else if (i !== leader && (count[i]! > count[give]! || (count[i] === count[give] && i > give))) give = i;
      }
      if (give < 0) break;
      const take = shares.neediest(inPartition);
      if (take < 0) break;
      reps[reps.indexOf(give)] = take;
      inPartition[give] = 0;
      inPartition[take] = 1;
      shares.give(give);
      shares.take(take);
      added++;
    }
    for (const i of reps) inPartition[i] = 0;
  }
  if (!trimmed && added === least && spread(count) <= 1) return parts.map((reps) => [...reps].sort((a, b) => a - b));

  const has = new Bitsets(n, partitions); // the sets being built
  const had = new Bitsets(n, partitions); // the members' current replicas
  const led = new Bitsets(n, partitions); // and preferred leaders
  for (let p = 0; p < partitions; p++) {
    for (const i of parts[p]!) has.set(i, p);
    for (const i of before[p]!) if (i >= 0) had.set(i, p);
    const first = before[p]![0];
    if (first !== undefined && first >= 0) led.set(first, p);
  }
  balanceCounts(has, count, n);
  const total = partitions * r;
  // A replica added outweighs any number of leaders moved away.
  const big = partitions + 1;
  cancelCycles(n, Math.floor(total / n), Math.ceil(total / n), count, (a, b) => has.cheapestMove(a, b, had, led, big), (hops) => {
    for (const { from, to, p } of hops) {
      has.clear(from, p);
      has.set(to, p);
    }
  });
  return Array.from({ length: partitions }, (_, p) => {
    const set: number[] = [];
    for (let i = 0; i < n; i++) if (has.has(i, p)) set.push(i);
    return set;
  });
}

/**
 * Sharing `total` out within one with the fewest changes: every node ends
 * at low = ⌊total/N⌋ or high = ⌈total/N⌉, `extra` = total − N·low of them at
 * high. Nodes above high must give down to high, nodes below low must take
 * up to low; that is forced. The rest is a choice, left to whoever gets the
 * chance first: if more nodes stand at high or above than `extra`, that many
 * `drops` from high to low remain to be given; if fewer, `ups` from low to
 * high remain to be taken. Any such choice changes as little as any other,
 * and applying part of a plan leaves exactly the plan's remaining drops and
 * ups: nodes only ever move toward their final count.
 */
class Shares {
  readonly low: number;
  readonly high: number;
  /** Σ of what nodes must take: the fewest changes any balanced outcome needs. */
  readonly least: number;
  private drops: number;
  private ups: number;

  constructor(
    readonly count: number[],
    total: number,
  ) {
    const n = count.length;
    this.low = Math.floor(total / n);
    const extra = total - this.low * n;
    this.high = this.low + (extra > 0 ? 1 : 0);
    const atHigh = extra > 0 ? count.filter((c) => c >= this.high).length : 0;
    this.drops = Math.max(0, atHigh - extra);
    this.ups = Math.max(0, extra - atHigh);
    let least = this.ups;
    for (const c of count) least += Math.max(0, this.low - c);
    this.least = least;
  }

  canGive(i: number): boolean {
    const c = this.count[i]!;
    return c > this.high || (c === this.high && this.high > this.low && this.drops > 0);
  }

  canTake(i: number): boolean {
    const c = this.count[i]!;
    return c < this.low || (c === this.low && this.high > this.low && this.ups > 0);
  }

  give(i: number): void {
    if (this.count[i] === this.high && this.high > this.low) this.drops--;
    this.count[i]!--;
  }

  take(i: number): void {
    if (this.count[i] === this.low && this.high > this.low) this.ups--;
    this.count[i]!++;
  }

  /** The node that may take and is furthest below (ties: smallest id), among those `skip` does not mark; -1 if none. */
  neediest(skip: Uint8Array): number {
    let best = -1;
    for (let i = 0; i < this.count.length; i++) {
      if (!skip[i] && this.canTake(i) && (best < 0 || this.count[i]! < this.count[best]!)) best = i;
    }
    return best;
  }
}

function spread(count: readonly number[]): number {
  return count.length === 0 ? 0 : Math.max(...count) - Math.min(...count);
}

/**
 * While max − min > 1, moves one replica from the most loaded member
 * (largest id) to the least loaded (smallest id), in the lowest-numbered
 * partition that lacks the latter. There is one: the most loaded holds more
 * partitions than the least loaded. Each move lowers Σ count² by ≥ 2, and
 * takes from a member that ends at ⌊T/N⌋ or more and gives to one that ends
 * at ⌈T/N⌉ or less, so it is a move that balance needs.
 */
function balanceCounts(has: Bitsets, count: number[], n: number): void {
  for (let guard = has.partitions * n + 1; ; guard--) {
    if (guard === 0) throw new Error('rebalance: replica balancing did not converge (bug)');
    let hi = 0;
    let lo = 0;
    for (let i = 1; i < n; i++) {
      if (count[i]! >= count[hi]!) hi = i;
      if (count[i]! < count[lo]!) lo = i;
    }
    if (count[hi]! - count[lo]! <= 1) return;
    const p = has.firstOf(hi, lo);
    if (p < 0) throw new Error('rebalance: no partition to move (bug)');
    has.clear(hi, p);
    has.set(lo, p);
    count[hi]!--;
    count[lo]!++;
  }
}

/**
 * The replicas a partition ends with, in place: kept ones where they were,
 * new ones (ascending) in the places of those that leave, the rest after.
 * With nothing added or removed, the current order comes back as is.
 */
function inPlaceOf(before: readonly number[], set: readonly number[]): number[] {
  const added = set.filter((i) => !before.includes(i));
  const out: number[] = [];
  let k = 0;
  for (const i of before) {
    if (i >= 0 && set.includes(i)) out.push(i);
    else if (k < added.length) out.push(added[k++]!);
  }
  while (k < added.length) out.push(added[k++]!);
  return out;
}

// ---------------------------------------------------------------------------
// Preferred leaders: one replica per partition, each member leading ⌊P/N⌋ or
// ⌈P/N⌉ of them, with the fewest changes from the current first replicas.

function preferredLeaders(ordered: readonly (readonly number[])[], before: readonly (readonly number[])[], n: number): number[] {
  const partitions = ordered.length;
  const leader = new Array<number>(partitions).fill(-1);
  const count = new Array<number>(n).fill(0);
  for (let p = 0; p < partitions; p++) {
    const first = before[p]![0];
    if (first !== undefined && first >= 0 && ordered[p]!.includes(first)) {
      leader[p] = first;
      count[first]!++;
    }
  }
  // One pass, as for replicas: a partition whose leader leaves, or whose
  // leader may give (see Shares), goes to one of its replicas that may take.
  // When each change is one that balance needs, there are `shares.least` of
  // them, the fewest possible. Among those that may take, the one with the
  // fewest chances left goes first: later[x·n + y] counts the partitions
  // still ahead that x leads (x = n: whose leader leaves) and y holds, and
  // y's chances are those whose leader may give.
  const shares = new Shares(count, partitions);
  const least = shares.least;
  const later = new Int32Array((n + 1) * n);
  const row = leader.map((x) => (x < 0 ? n : x));
  for (let p = 0; p < partitions; p++) for (const y of ordered[p]!) if (y !== leader[p]) later[row[p]! * n + y]!++;
  const slack = (y: number): number => {
    let chances = later[n * n + y]!;
    for (let x = 0; x < n; x++) if (shares.canGive(x)) chances += later[x * n + y]!;
    return chances - Math.max(0, shares.low - count[y]!);
  };
  let changes = 0;
  for (let p = 0; p < partitions; p++) {
    const reps = ordered[p]!;
    const cur = leader[p]!;
    for (const y of reps) if (y !== cur) later[row[p]! * n + y]!--;
    if (cur >= 0 && !shares.canGive(cur)) continue;
    let next = -1;
    let nextSlack = 0;
    for (const y of reps) {
      if (y === cur || !shares.canTake(y)) continue;
      const s = slack(y);
      if (next < 0 || s < nextSlack || (s === nextSlack && (count[y]! < count[next]! || (count[y] === count[next] && y < next)))) {
        next = y;
        nextSlack = s;
      }
    }
    if (next < 0 && cur < 0) {
      // Stuck: the least led then, and the general method afterwards.
      for (const i of reps) if (next < 0 || count[i]! < count[next]!) next = i;
    }
    if (next < 0) continue;
    if (cur >= 0) shares.give(cur);
    shares.take(next);
    leader[p] = next;
    changes++;
  }
  if (changes === least && spread(count) <= 1) return leader;

  const holds = new Bitsets(n, partitions);
  const leads = new Bitsets(n, partitions);
  const ledBefore = new Bitsets(n, partitions);
  for (let p = 0; p < partitions; p++) {
    for (const i of ordered[p]!) holds.set(i, p);
    leads.set(leader[p]!, p);
    const first = before[p]![0];
    if (first !== undefined && first >= 0) ledBefore.set(first, p);
  }
  const hand = (from: number, to: number, p: number): void => {
    leads.clear(from, p);
    leads.set(to, p);
    leader[p] = to;
  };
  balanceLeaders(ordered, leader, leads, holds, count, n, hand);
  cancelCycles(n, Math.floor(partitions / n), Math.ceil(partitions / n), count, (a, b) => leads.cheapestHandover(a, b, holds, ledBefore), (hops) => {
    for (const { from, to, p } of hops) hand(from, to, p);
  });
  return leader;
}

/**
 * Evens out leader counts by handing leadership along chains: x leads a
 * partition that holds y, y one that holds z, … — only the chain's ends
 * change count. A single hand-over from a most-led to a least-led node is not
 * always there when balance is reachable; a chain is (this is an augmenting
 * path). It stops when no chain runs from a node to one leading two or more
 * fewer: then Σ count² is the least any choice of leaders allows. With
 * replica counts within one, a choice with leader counts within one exists
 * (Hall's condition holds for ⌊P/N⌋ from below and ⌈P/N⌉ from above, and
 * bipartite degree bounds link), so that is what it reaches.
 */
function balanceLeaders(
  ordered: readonly (readonly number[])[],
  leader: readonly number[],
  leads: Bitsets,
  holds: Bitsets,
  count: number[],
  n: number,
  hand: (from: number, to: number, p: number) => void,
): void {
  const partitions = ordered.length;
  // edges[x * n + y]: how many partitions x leads that hold y.
  const edges = new Int32Array(n * n);
  for (let p = 0; p < partitions; p++) {
    const x = leader[p]!;
    for (const y of ordered[p]!) if (y !== x) edges[x * n + y]!++;
  }
  const parent = new Int32Array(n);
  const seen = new Uint8Array(n);
  const queue = new Int32Array(n);
  const byCount = Array.from({ length: n }, (_, i) => i);
  // Each chain lowers Σ count² by at least 2: bounded, but checked anyway.
  for (let guard = partitions * partitions + 1; ; guard--) {
    if (guard === 0) throw new Error('rebalance: leader balancing did not converge (bug)');
    let min = Infinity;
    let top = 0;
    for (let i = 0; i < n; i++) {
      min = Math.min(min, count[i]!);
      if (count[i]! >= count[top]!) top = i;
    }
    // Sources: most led first, then largest id. The top one nearly always
    // has a chain; the sort is for when it has none.
    let path: number[] | null = null;
    for (let k = -1; k < n && path === null; k++) {
      if (k === 0) byCount.sort((a, b) => count[b]! - count[a]! || b - a);
      const s = k < 0 ? top : byCount[k]!;
      if (count[s]! < min + 2) break;
      // Breadth first, ids ascending: the target is the reachable node with
      // the fewest leaderships, the first reached among equals.
      seen.fill(0);
      seen[s] = 1;
      queue[0] = s;
      let head = 0;
      let tail = 1;
      let best = -1;
      while (head < tail && (best < 0 || count[best]! > min)) {
        const x = queue[head++]!;
        for (let y = 0; y < n; y++) {
          if (seen[y] || edges[x * n + y] === 0) continue;
          seen[y] = 1;
          parent[y] = x;
          queue[tail++] = y;
          if (best < 0 || count[y]! < count[best]!) best = y;
        }
      }
      if (best >= 0 && count[best]! <= count[s]! - 2) {
        path = [best];
        while (path[0] !== s) path.unshift(parent[path[0]!]!);
      }
    }
    if (path === null) return;
    // Every hop's partition is picked before any changes hands, so each is
    // led by the hop's source as the search saw it.
    const hops = path.slice(1).map((y, k) => leads.firstBoth(path[k]!, holds, y));
    hops.forEach((p, k) => {
      if (p < 0) throw new Error('rebalance: leadership chain broken (bug)');
      const x = path[k]!;
      const y = path[k + 1]!;
      for (const z of ordered[p]!) {
        if (z !== x) edges[x * n + z]!--;
        if (z !== y) edges[y * n + z]!++;
      }
      hand(x, y, p);
    });
    count[path[0]!]!--;
    count[path[path.length - 1]!]!++;
  }
}

// ---------------------------------------------------------------------------
// Exact optimum by cycle cancelling, on a graph of N members plus a hub.

interface Hop {
  from: number;
  to: number;
  p: number;
}

/**
 * Lowers the cost of a balanced assignment to its minimum. An edge a → b
 * stands for "a hands one partition to b"; its weight is the cheapest such
 * hand-over's change of cost (`cheapest` gives it and its lowest partition).
 * A cycle keeps every count; through the hub, a member at `high` hands one
 * net to a member at `low`, which keeps the counts balanced. A balanced
 * assignment with no negative cycle costs the least possible (the min-cost
 * flow optimality condition); each cancelled cycle lowers the integer cost,
 * so this ends.
 */
function cancelCycles(
  n: number,
  low: number,
  high: number,
  count: number[],
  cheapest: (a: number, b: number) => { weight: number; p: number } | null,
  apply: (hops: Hop[]) => void,
): void {
  const v = n + 1;
  const hub = n;
  const weight = new Int32Array(v * v).fill(NO_EDGE);
  const via = new Int32Array(v * v);
  const edge = (a: number, b: number): void => {
    const best = cheapest(a, b);
    weight[a * v + b] = best === null ? NO_EDGE : best.weight;
    if (best !== null) via[a * v + b] = best.p;
  };
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (a !== b) edge(a, b);
  const changed = new Uint8Array(n);
  for (let guard = 1_000_000; ; guard--) {
    if (guard === 0) throw new Error('rebalance: cycle cancelling did not converge (bug)');
    for (let a = 0; a < n; a++) {
      weight[a * v + hub] = count[a]! < high ? 0 : NO_EDGE; // a may end one higher
      weight[hub * v + a] = count[a]! > low ? 0 : NO_EDGE; // a may end one lower
    }
    const cycle = negativeCycle(weight, v);
    if (cycle === null) return;
    const hops: Hop[] = [];
    for (let k = 0; k < cycle.length; k++) {
      const from = cycle[k]!;
      const to = cycle[(k + 1) % cycle.length]!;
      if (from !== hub && to !== hub) hops.push({ from, to, p: via[from * v + to]! });
    }
    // Two hops may share a partition (x→y and z→w with x, z in it and y, w
    // not): both apply, and their costs add up, so the cycle stays valid.
    apply(hops);
    changed.fill(0);
    for (const { from, to } of hops) {
      count[from]!--;
      count[to]!++;
      changed[from] = 1;
      changed[to] = 1;
    }
    // Only edges from or to a node whose partitions changed can change.
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) if (a !== b && (changed[a] || changed[b])) edge(a, b);
    }
  }
}

const NO_EDGE = 1 << 30;

/** Bellman-Ford from a virtual source at distance 0 to every vertex: a vertex relaxed in pass V lies behind a negative cycle. */
function negativeCycle(weight: Int32Array, v: number): number[] | null {
  const dist = new Int32Array(v);
  const parent = new Int32Array(v).fill(-1);
  let last = -1;
  for (let pass = 0; pass < v; pass++) {
    last = -1;
    for (let a = 0; a < v; a++) {
      for (let b = 0; b < v; b++) {
        const w = weight[a * v + b]!;
        if (w === NO_EDGE || dist[a]! + w >= dist[b]!) continue;
        dist[b] = dist[a]! + w;
        parent[b] = a;
        last = b;
      }
    }
    if (last < 0) return null;
  }
  let x = last;
  for (let k = 0; k < v; k++) x = parent[x]!;
  if (x < 0) throw new Error('rebalance: negative cycle lost (bug)');
  const cycle = [x];
  for (let y = parent[x]!; y !== x; y = parent[y]!) cycle.push(y);
  return cycle.reverse();
}

/**
 * One bit per (node, partition): finding the lowest partition with a given
 * mix of properties is a scan of P/32 words, not of partition lists, which
 * keeps P = 4096 over 64 nodes in milliseconds.
 */
class Bitsets {
  readonly partitions: number;
  private readonly words: number;
  private readonly bits: Uint32Array;
  private readonly scratch = new Int32Array(7);

  constructor(nodes: number, partitions: number) {
    this.partitions = partitions;
    this.words = Math.ceil(partitions / 32);
    this.bits = new Uint32Array(nodes * this.words);
  }

  has(node: number, p: number): boolean {
    return (this.bits[node * this.words + (p >>> 5)]! & (1 << (p & 31))) !== 0;
  }

  set(node: number, p: number): void {
    this.bits[node * this.words + (p >>> 5)]! |= 1 << (p & 31);
  }

  clear(node: number, p: number): void {
    this.bits[node * this.words + (p >>> 5)]! &= ~(1 << (p & 31));
  }

  /** The lowest p in this[a] but not in this[b]; -1 if none. */
  firstOf(a: number, b: number): number {
    const w = this.words;
    for (let k = 0; k < w; k++) {
      const word = this.bits[a * w + k]! & ~this.bits[b * w + k]!;
      if (word !== 0) return lowestBit(k, word);
    }
    return -1;
  }

  /** The lowest p in this[a] and in other[b]; -1 if none. */
  firstBoth(a: number, other: Bitsets, b: number): number {
    const w = this.words;
    for (let k = 0; k < w; k++) {
      const word = this.bits[a * w + k]! & other.bits[b * w + k]!;
      if (word !== 0) return lowestBit(k, word);
    }
    return -1;
  }

  /**
   * Replica sets (this = the sets being built, had = the members' current
   * replicas, led = their current preferred leaders): the cheapest way to
   * move one replica from a to b, as `big` × the change in replicas added
   * plus the change in preferred leaders moved away. Ties to the lowest partition.
   */
  cheapestMove(a: number, b: number, had: Bitsets, led: Bitsets, big: number): { weight: number; p: number } | null {
    const w = this.words;
    // The lowest partition of each weight class, from −big−1 (a was added,
    // b led it before) to big+1 (a leads it, b is new); see `moveWeight`.
    const best = this.scratch.fill(-1);
    for (let k = 0; k < w; k++) {
      const movable = this.bits[a * w + k]! & ~this.bits[b * w + k]!;
      if (movable === 0) continue;
      const hadA = had.bits[a * w + k]!;
      const hadB = had.bits[b * w + k]!;
      const ledA = led.bits[a * w + k]!;
      const ledB = led.bits[b * w + k]!;
      const keptA = hadA & ~ledA;
      const keptB = hadB & ~ledB;
      first(best, 0, k, movable & ~hadA & ledB);
      if (best[0]! >= 0) break;
      first(best, 1, k, movable & ~hadA & keptB);
      first(best, 2, k, movable & keptA & ledB);
      first(best, 3, k, movable & ((~hadA & ~hadB) | (keptA & keptB)));
      first(best, 4, k, movable & ledA & hadB);
      first(best, 5, k, movable & keptA & ~hadB);
      first(best, 6, k, movable & ledA & ~hadB);
    }
    for (let c = 0; c < 7; c++) if (best[c]! >= 0) return { weight: moveWeight(c, big), p: best[c]! };
    return null;
  }

  /**
   * Leaders (this = who leads): the cheapest hand-over from a to b of a
   * partition that b holds, as change in leaders changed: −1 when b led it
   * before, +1 when a did, 0 otherwise.
   */
  cheapestHandover(a: number, b: number, holds: Bitsets, ledBefore: Bitsets): { weight: number; p: number } | null {
    const w = this.words;
    let zero = -1;
    let plus = -1;
    for (let k = 0; k < w; k++) {
      const movable = this.bits[a * w + k]! & holds.bits[b * w + k]!;
      if (movable === 0) continue;
      const wasA = ledBefore.bits[a * w + k]!;
      const wasB = ledBefore.bits[b * w + k]!;
      const minus = movable & wasB;
      if (minus !== 0) return { weight: -1, p: lowestBit(k, minus) };
      if (zero < 0) {
        const neither = movable & ~wasA & ~wasB;
        if (neither !== 0) zero = lowestBit(k, neither);
      }
      if (plus < 0) {
        const more = movable & wasA;
        if (more !== 0) plus = lowestBit(k, more);
      }
    }
    if (zero >= 0) return { weight: 0, p: zero };
    return plus >= 0 ? { weight: 1, p: plus } : null;
  }
}

/** Records in best[c] the lowest partition of `bits` (word k) unless one is there already. */
function first(best: Int32Array, c: number, k: number, bits: number): void {
  if (bits !== 0 && best[c]! < 0) best[c] = lowestBit(k, bits);
}

/**
 * The change of cost of moving a replica from a to b, by class: big per
 * replica added (b not there before) or saved (a was added), and 1 per
 * preferred leader moved away (a led it) or brought back (b led it).
 */
function moveWeight(c: number, big: number): number {
  return [-big - 1, -big, -1, 0, 1, big, big + 1][c]!;
}

function lowestBit(word: number, bits: number): number {
  return word * 32 + (31 - Math.clz32(bits & -bits));
}
