// HashRing: an immutable consistent-hash ring of weighted nodes with virtual nodes, sorted for binary search.
// Pure data: it never does I/O, never balances load (assign-partitions.ts does) and never mutates after construction.
import { GemError } from '../errors.ts'
import { hashKey, vnodePositions } from './hash.ts'

/** A ring member. */
export interface RingNode {
  readonly id: string
  /**
   * Capacity weight, in units where 1 is a baseline server node; vnodes and bounded-load capacity are
   * proportional to it. 0 = the node is a member but owns nothing (browser edge peers).
   */
  readonly weight: number
  /**
   * Load already on the node that a placement does not itself place (gateway connections, browser fan-out,
   * other placements), in the units of partition weights. Bounded-load assignment counts it against the
   * node's share. Optional; issue #7 feeds max(current, predicted).
   */
  readonly load?: number
}

export interface HashRingOptions {
  /** Virtual nodes per unit of weight (rounded, at least 1 for any weight > 0). Default 256. */
  readonly vnodesPerUnitWeight?: number
}

// Why 256: a node's ring share varies by 1/sqrt(its vnodes), and at a few dozen keys per unit of weight that
// noise decides how far one join or leave strays from its ideal movement. Measured at 1000 nodes (weights
// 1/2/4), 50k keys, 40 joins and 20 leaves: moved/ideal summed 1.10 -> 1.06 (joins) and 1.09 -> 1.03 (leaves),
// worst single join 1.42 -> 1.31, against 128. 512 gains little more and builds that ring in ~0.55 s (256: ~0.2 s).
export const DEFAULT_VNODES_PER_UNIT_WEIGHT = 256

// A vnode sorts by its position, then by its owner's index in id order: packed as position * 2^20 + index,
// both fit a safe integer and one native Float64Array sort orders the ring deterministically.
const INDEX_RANGE = 2 ** 20
const MAX_VNODES = 2 ** 24

export class HashRing {
  readonly vnodesPerUnitWeight: number
  /** Members (including weight-0 ones) sorted by id; `owners` index into this array. */
  readonly members: readonly RingNode[]
  /** Sorted vnode positions and, in parallel, the index in `members` of each vnode's owner. Never mutate. */
  readonly positions: Uint32Array
  readonly owners: Uint32Array
  /** Members with weight > 0: the ones that can own keys. */
  readonly ownerCount: number
  readonly #index: Map<string, number>
  // id -> the longest vnode position list computed for that member, handed on to derived rings so a
  // membership change re-hashes only the node that changed. Holds current members only, so it stays bounded.
  readonly #cache = new Map<string, Uint32Array>()

  private constructor (members: RingNode[], vnodesPerUnitWeight: number, parent?: HashRing) {
    this.vnodesPerUnitWeight = vnodesPerUnitWeight
    this.members = members
    this.#index = new Map(members.map((n, i) => [n.id, i]))
    let total = 0
    let ownerCount = 0
    for (const n of members) {
      if (n.weight > 0) { ownerCount++; total += this.#vnodeCount(n.weight) }
    }
    if (total > MAX_VNODES) throw new GemError('BAD_REQUEST', `ring would have ${total} vnodes (max ${MAX_VNODES}); lower the weights or vnodesPerUnitWeight`)
    this.ownerCount = ownerCount
    this.positions = new Uint32Array(total)
    this.owners = new Uint32Array(total)

    // Members whose vnodes the parent already has sorted keep them (remap: parent index -> new index);
    // only the others are hashed (or taken from the cache) and sorted, then merged in one linear pass.
    const remap = parent === undefined ? undefined : new Int32Array(parent.members.length).fill(-1)
    const fresh: number[] = []
    let kept = 0
    for (let i = 0; i < members.length; i++) {
      const n = members[i]
      if (n.weight === 0) continue
      const p = parent === undefined ? undefined : parent.#index.get(n.id)
      if (remap !== undefined && p !== undefined && parent!.members[p].weight > 0 &&
          this.#vnodeCount(parent!.members[p].weight) === this.#vnodeCount(n.weight)) {
        remap[p] = i
        kept += this.#vnodeCount(n.weight)
        this.#cache.set(n.id, parent!.#cache.get(n.id)!)
      } else {
        fresh.push(i)
      }
    }
    if (parent === undefined || kept < total / 2) {
      const all = members.flatMap((n, i) => (n.weight > 0 ? [i] : []))
      this.#sortInto(this.positions, this.owners, all, parent)
    } else {
      const freshPositions = new Uint32Array(total - kept)
      const freshOwners = new Uint32Array(total - kept)
      this.#sortInto(freshPositions, freshOwners, fresh, parent)
      mergeInto(this.positions, this.owners, parent.positions, parent.owners, remap!, freshPositions, freshOwners)
    }
  }

  /** A ring of `nodes` (any order: the result depends only on the set). Throws BAD_REQUEST on invalid or duplicate nodes. */
  static from (nodes: Iterable<RingNode>, options: HashRingOptions = {}): HashRing {
    const vpw = options.vnodesPerUnitWeight ?? DEFAULT_VNODES_PER_UNIT_WEIGHT
    if (!Number.isFinite(vpw) || vpw <= 0) throw new GemError('BAD_REQUEST', `vnodesPerUnitWeight must be a positive number, got ${vpw}`)
    return new HashRing(normalise(nodes), vpw)
  }

  get size (): number { return this.members.length }

  has (id: string): boolean { return this.#index.has(id) }

  node (id: string): RingNode | undefined {
    const i = this.#index.get(id)
    return i === undefined ? undefined : this.members[i]
  }

  /** A ring with `node` added, or replacing the member with the same id (e.g. a new weight or load). */
  withNode (node: RingNode): HashRing {
    return this.withMembers([...this.members.filter(n => n.id !== node.id), node])
  }

  /** A ring without member `id` (this ring if it has no such member). */
  withoutNode (id: string): HashRing {
    return this.has(id) ? this.withMembers(this.members.filter(n => n.id !== id)) : this
  }

  /**
   * A ring of exactly `nodes`, equal to HashRing.from(nodes) with this ring's options, but re-hashing and
   * re-sorting only the members that are new or changed weight: O(vnodes) for one join or leave.
   */
  withMembers (nodes: Iterable<RingNode>): HashRing {
    return new HashRing(normalise(nodes), this.vnodesPerUnitWeight, this)
  }

  /** The first owner clockwise from the key's position (plain consistent hashing, no load bound). */
  owner (key: string): string {
    this.#requireOwners()
    return this.members[this.owners[this.vnodeAt(hashKey(key))]].id
  }

  /**
   * Up to `n` distinct owners walking clockwise from the key's position; the first is the preferred
   * leader. Clamped to `ownerCount`. No load bound: use assignPartitions for balanced placement.
   */
  preferenceList (key: string, n: number): string[] {
    if (!Number.isInteger(n) || n < 1) throw new GemError('BAD_REQUEST', `replica count must be an integer >= 1, got ${n}`)
    this.#requireOwners()
    const want = Math.min(n, this.ownerCount)
    const out: string[] = []
    const seen = new Set<number>()
    const total = this.positions.length
    for (let step = 0, v = this.vnodeAt(hashKey(key)); out.length < want && step < total; step++, v = v + 1 === total ? 0 : v + 1) {
      const o = this.owners[v]
      if (!seen.has(o)) { seen.add(o); out.push(this.members[o].id) }
    }
    return out
  }

  /** Index of the first vnode at or clockwise after `position` (wrapping to 0). Binary search. */
  vnodeAt (position: number): number {
    const p = this.positions
    let lo = 0
    let hi = p.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (p[mid] < position) lo = mid + 1
      else hi = mid
    }
    return lo === p.length ? 0 : lo
  }

  #requireOwners (): void {
    if (this.ownerCount === 0) throw new GemError('UNAVAILABLE', 'the ring has no node with weight > 0')
  }

  #vnodeCount (weight: number): number {
    return Math.max(1, Math.round(weight * this.vnodesPerUnitWeight))
  }

  /** Writes the vnodes of members `indexes`, sorted by (position, member index), into the two arrays. */
  #sortInto (positions: Uint32Array, owners: Uint32Array, indexes: number[], parent: HashRing | undefined): void {
    const packed = new Float64Array(positions.length)
    let k = 0
    for (const i of indexes) {
      const pos = this.#positionsOf(this.members[i], parent)
      for (let j = 0; j < pos.length; j++) packed[k++] = pos[j] * INDEX_RANGE + i
    }
    packed.sort()
    for (let j = 0; j < packed.length; j++) {
      const owner = packed[j] % INDEX_RANGE
      owners[j] = owner
      positions[j] = (packed[j] - owner) / INDEX_RANGE
    }
  }

  #positionsOf (n: RingNode, parent: HashRing | undefined): Uint32Array {
    const count = this.#vnodeCount(n.weight)
    const cached = this.#cache.get(n.id) ?? (parent === undefined ? undefined : parent.#cache.get(n.id))
    if (cached !== undefined && cached.length >= count) {
      this.#cache.set(n.id, cached)
      return cached.subarray(0, count)
    }
    const fresh = vnodePositions(n.id, count)
    this.#cache.set(n.id, fresh)
    return fresh
  }
}

/**
 * Merges the parent's sorted vnodes (owners renumbered by `remap`, dropped where it is -1) with sorted fresh
 * vnodes. `remap` is increasing on the members it keeps (both member lists are sorted by id), so the parent's
 * order among equal positions stays the (position, member index) order of a full sort.
 */
function mergeInto (
  positions: Uint32Array, owners: Uint32Array,
  oldPositions: Uint32Array, oldOwners: Uint32Array, remap: Int32Array,
  freshPositions: Uint32Array, freshOwners: Uint32Array,
): void {
  let a = 0
  let b = 0
  for (let k = 0; k < positions.length; k++) {
    while (a < oldPositions.length && remap[oldOwners[a]] < 0) a++
    const takeOld = a < oldPositions.length && (b === freshPositions.length ||
      oldPositions[a] < freshPositions[b] || (oldPositions[a] === freshPositions[b] && remap[oldOwners[a]] < freshOwners[b]))
    if (takeOld) {
      positions[k] = oldPositions[a]
      owners[k] = remap[oldOwners[a]]
      a++
    } else {
      positions[k] = freshPositions[b]
      owners[k] = freshOwners[b]
      b++
    }
  }
}

/** Validated, frozen copies sorted by id (so the ring never depends on insertion order). */
function normalise (nodes: Iterable<RingNode>): RingNode[] {
  const out: RingNode[] = []
  const ids = new Set<string>()
  for (const n of nodes) {
    if (typeof n?.id !== 'string' || n.id === '') throw new GemError('BAD_REQUEST', 'ring node id must be a non-empty string')
    if (typeof n.weight !== 'number' || !Number.isFinite(n.weight) || n.weight < 0) {
      throw new GemError('BAD_REQUEST', `ring node ${n.id}: weight must be a finite number >= 0, got ${n.weight}`)
    }
    if (n.load !== undefined && (typeof n.load !== 'number' || !Number.isFinite(n.load) || n.load < 0)) {
      throw new GemError('BAD_REQUEST', `ring node ${n.id}: load must be a finite number >= 0, got ${n.load}`)
    }
    if (ids.has(n.id)) throw new GemError('BAD_REQUEST', `duplicate ring node id ${n.id}`)
    ids.add(n.id)
    out.push(Object.freeze(n.load === undefined ? { id: n.id, weight: n.weight } : { id: n.id, weight: n.weight, load: n.load }))
  }
  if (out.length > INDEX_RANGE) throw new GemError('BAD_REQUEST', `a ring holds at most ${INDEX_RANGE} nodes`)
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}
