// Bounded-load placement: each partition key gets an ordered list of distinct replica nodes, leader first,
// with no node's replica slots or leaderships above (1 + eps) x its weight share. Pure; never touches I/O.
import { GemError } from '../errors.ts'
import type { HashRing } from './hash-ring.ts'
import { PartitionSet } from './partition-set.ts'
import type { PartitionSpec } from './partition-set.ts'

// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, SODA 2018), weighted: visiting
// keys in ring-position order, a key walks clockwise from its position and takes the first nodes with room.
// Two budgets per node, both proportional to its weight:
//   slots:   (1 + eps) x (total replica weight + total background load) x share - the node's background load
//   leaders: (1 + eps) x (total key weight) x share
// The leader is the first node on the walk with room in both; followers are the first others with slot room.
// A node "has room" when the key fits under its budget (load + w <= budget), which holds every node at or
// below (1 + eps) x its share. When the budgets are too small for that to be feasible (few keys per node:
// the sum of budgets, less one key each for rounding, is below the total), a node has room while it is
// below its budget (Mirrokni's ceiling rule), so it ends at most one key above it. Distinct replicas can
// still leave a key nowhere to go: near the end of a small placement the last free slots may all sit on a
// node that already holds the key, and with replication close to the cluster size and unequal weights no
// placement meets the budgets at all. The missing replicas then go to the least loaded remaining nodes
// relative to weight, so every key always gets its full, distinct replica set; a node that this puts over its
// slot budget hands follower slots of earlier keys to nodes with room (relieve), so in property tests with feasible
// budgets a node ends at most one key over.

export interface AssignOptions {
  /** Replicas per key, clamped to the number of nodes with weight > 0. Integer >= 1. */
  readonly replication: number
  /** Load bound slack: no node above (1 + epsilon) x its weight share. Default 0.25. */
  readonly epsilon?: number
  /**
   * Leadership load each node already carries, in key-weight units (e.g. max(current, predicted) load x keys): it
   * counts against the leader budget as ring members' `load` counts against the slot budget. Absent: leaders by weight.
   */
  readonly leaderBackground?: ReadonlyMap<string, number>
}

/** key -> distinct replica node ids, the preferred leader first. */
export type Placement = Map<string, string[]>

export const DEFAULT_EPSILON = 0.25

/**
 * Places every key of `partitions` on `ring`. Deterministic: the result depends only on the ring's member
 * set and the partition set, never on insertion order. Throws UNAVAILABLE if no node has weight > 0 and
 * BAD_REQUEST on replication < 1, a non-integer replication, or epsilon not > 0.
 */
export function assignPartitions (ring: HashRing, partitions: PartitionSet | Iterable<PartitionSpec>, options: AssignOptions): Placement {
  const { replication, epsilon = DEFAULT_EPSILON } = options
  if (!Number.isInteger(replication) || replication < 1) throw new GemError('BAD_REQUEST', `replication must be an integer >= 1, got ${replication}`)
  if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon <= 0) throw new GemError('BAD_REQUEST', `epsilon must be a finite number > 0, got ${epsilon}`)
  if (ring.ownerCount === 0) throw new GemError('UNAVAILABLE', 'the ring has no node with weight > 0')
  const set = partitions instanceof PartitionSet ? partitions : PartitionSet.from(partitions)

  const members = ring.members
  const n = members.length
  const r = Math.min(replication, ring.ownerCount)
  const weight = new Float64Array(n)
  const background = new Float64Array(n)
  let totalWeight = 0
  let totalBackground = 0
  for (let i = 0; i < n; i++) {
    const m = members[i]
    if (m.weight === 0) continue
    weight[i] = m.weight
    background[i] = m.load ?? 0
    totalWeight += m.weight
    totalBackground += background[i]
  }

  const slotTotal = set.totalWeight * r
  const slotBudget = new Float64Array(n)
  const leaderBudget = new Float64Array(n)
  const leaderBg = new Float64Array(n)
  let totalLeaderBg = 0
  for (let i = 0; i < n; i++) {
    const b = options.leaderBackground?.get(members[i].id) ?? 0
    if (weight[i] === 0 || !Number.isFinite(b) || b <= 0) continue
    leaderBg[i] = b
    totalLeaderBg += b
  }
  for (let i = 0; i < n; i++) {
    if (weight[i] === 0) { slotBudget[i] = -1; leaderBudget[i] = -1; continue }
    const share = weight[i] / totalWeight
    slotBudget[i] = (1 + epsilon) * (slotTotal + totalBackground) * share - background[i]
    leaderBudget[i] = (1 + epsilon) * (set.totalWeight + totalLeaderBg) * share - leaderBg[i]
  }
  const strictSlots = feasible(slotBudget, set.maxWeight, slotTotal)
  const strictLeaders = feasible(leaderBudget, set.maxWeight, set.totalWeight)

  const slotLoad = new Float64Array(n)
  const leaderLoad = new Float64Array(n)
  // stamp[i] === k: node i already holds a replica of the k-th key (cheaper than a per-key Set).
  const stamp = new Int32Array(n).fill(-1)
  const positions = ring.positions
  const owners = ring.owners
  const vnodes = positions.length
  const placement: Placement = new Map()
  const followers: number[] = []
  /** Replica node indexes per key, leader first (filled in key order; relieve() may edit earlier keys). */
  const placed: number[][] = new Array(set.size)

  for (let k = 0; k < set.size; k++) {
    const w = set.weights[k]
    let leader = -1
    followers.length = 0
    let v = ring.vnodeAt(set.hashes[k])
    for (let step = 0; step < vnodes && (leader < 0 || followers.length < r - 1); step++) {
      const o = owners[v]
      if (++v === vnodes) v = 0
      if (stamp[o] === k) continue
      const slotRoom = hasRoom(slotLoad[o], slotBudget[o], w, strictSlots)
      if (!slotRoom) continue
      if (leader < 0 && hasRoom(leaderLoad[o], leaderBudget[o], w, strictLeaders)) {
        leader = o
        leaderLoad[o] += w
      } else if (followers.length < r - 1) {
        followers.push(o)
      } else {
        continue
      }
      stamp[o] = k
      slotLoad[o] += w
    }
    let completed = false
    if (leader < 0 || followers.length < r - 1) {
      leader = completeOverBudget(ring, set.hashes[k], k, w, r, leader, followers, stamp, weight, background, slotLoad, leaderLoad,
        o => hasRoom(leaderLoad[o], leaderBudget[o], w, strictLeaders), slotBudget)
      completed = true
    }
    const chosen = [leader, ...followers]
    placed[k] = chosen
    if (completed) {
      for (const o of chosen) {
        if (slotLoad[o] > slotBudget[o]) relieve(o, k, placed, set.weights, slotLoad, slotBudget, weight, background, strictSlots)
      }
    }
  }
  for (let k = 0; k < set.size; k++) placement.set(set.keys[k], placed[k].map(o => members[o].id))
  return placement
}

/**
 * A completed replica set put `node` over its slot budget: hand one of its follower slots on an earlier key to a node
 * with room that does not hold that key yet, so `node` ends back within budget (its leaderships stay where they are).
 * Without this, a node that was the only one left with leader room could take key after key over its slot budget.
 */
function relieve (
  node: number, upto: number, placed: number[][], weights: Float64Array | number[], slotLoad: Float64Array, slotBudget: Float64Array,
  weight: Float64Array, background: Float64Array, strictSlots: boolean,
): void {
  for (let k = 0; k < upto && slotLoad[node] > slotBudget[node]; k++) {
    const replicas = placed[k]
    const at = replicas.indexOf(node)
    if (at < 1) continue // not a follower of this key (leaderships are not moved)
    const w = weights[k]
    let best = -1
    for (let o = 0; o < weight.length; o++) {
      if (weight[o] === 0 || replicas.includes(o)) continue
      if (!hasRoom(slotLoad[o], slotBudget[o], w, strictSlots)) continue
      if (best < 0 || (slotLoad[o] + background[o] + w) / weight[o] < (slotLoad[best] + background[best] + w) / weight[best]) best = o
    }
    if (best < 0) continue
    replicas[at] = best
    slotLoad[node] -= w
    slotLoad[best] += w
  }
}

/**
 * Whether a key of weight `w` fits a node at `load` under `budget`: strictly (it fits whole) when the budgets are
 * feasible, else while the node is below its budget (Mirrokni's ceiling rule; see the header).
 */
function hasRoom (load: number, budget: number, w: number, strict: boolean): boolean {
  return strict ? load + w <= budget : load < budget
}

/** True when every node can fill its budget to within one largest key and the budgets still cover `total`. */
function feasible (budget: Float64Array, maxKeyWeight: number, total: number): boolean {
  let usable = 0
  for (const b of budget) if (b > maxKeyWeight) usable += b - maxKeyWeight
  // The budgets are products of shares, so "exactly enough" can come out a rounding error short.
  return usable >= total * (1 - 1e-9)
}

/**
 * The bounded walk went all the way round without a full replica set: take the missing leader and followers
 * from the least loaded nodes relative to weight, ties to the earlier node on the walk. Returns the leader.
 * A missing leader means every node with leader room was out of slot room, so the leader goes to the one of
 * those that overshoots its slot budget least: choosing by leader load alone can pick the same slot-full node
 * key after key and push it several keys over.
 */
function completeOverBudget (
  ring: HashRing, hash: number, k: number, w: number, r: number, leader: number, followers: number[],
  stamp: Int32Array, weight: Float64Array, background: Float64Array, slotLoad: Float64Array, leaderLoad: Float64Array,
  leaderRoom: (node: number) => boolean, slotBudget: Float64Array,
): number {
  const pool: number[] = []
  const seen = new Set<number>()
  const owners = ring.owners
  const vnodes = owners.length
  for (let step = 0, v = ring.vnodeAt(hash); step < vnodes; step++, v = v + 1 === vnodes ? 0 : v + 1) {
    if (!seen.has(owners[v])) { seen.add(owners[v]); pool.push(owners[v]) }
  }
  if (leader < 0) {
    let best = -1
    for (const o of pool) {
      if (!leaderRoom(o)) continue
      if (best < 0 || slotLoad[o] - slotBudget[o] < slotLoad[best] - slotBudget[best]) best = o
    }
    if (best < 0) {
      for (const o of pool) {
        if (best < 0 || (leaderLoad[o] + w) / weight[o] < (leaderLoad[best] + w) / weight[best]) best = o
      }
    }
    leader = best
    leaderLoad[leader] += w
    const at = followers.indexOf(leader)
    if (at >= 0) followers.splice(at, 1)
    else { stamp[leader] = k; slotLoad[leader] += w }
  }
  while (followers.length < r - 1) {
    let best = -1
    for (const o of pool) {
      if (stamp[o] === k) continue
      if (best < 0 || (slotLoad[o] + background[o] + w) / weight[o] < (slotLoad[best] + background[best] + w) / weight[best]) best = o
    }
    followers.push(best)
    stamp[best] = k
    slotLoad[best] += w
  }
  return leader
}
