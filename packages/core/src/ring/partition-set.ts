// PartitionSet: the keys to place, validated, hashed once and sorted into the order assignment visits them.
// Build it once per topic layout and reuse it across membership changes; it never looks at nodes.
import { GemError } from '../errors.ts'
import { hashKey } from './hash.ts'

export interface PartitionSpec {
  /** What gets placed, e.g. `${topic}/${partition}`. Unique within a set. */
  readonly key: string
  /** Replica-slot cost of one replica (e.g. predicted msg/s). Default 1. 0 = free, placed but never refused. */
  readonly weight?: number
}

export class PartitionSet {
  /** Keys in visiting order: by ring position, then by key, so the order depends only on the set. */
  readonly keys: readonly string[]
  /** Ring position and weight of each key, parallel to `keys`. Never mutate. */
  readonly hashes: Uint32Array
  readonly weights: Float64Array
  readonly totalWeight: number
  readonly maxWeight: number

  private constructor (keys: string[], hashes: Uint32Array, weights: Float64Array) {
    this.keys = keys
    this.hashes = hashes
    this.weights = weights
    let total = 0
    let max = 0
    for (const w of weights) { total += w; if (w > max) max = w }
    this.totalWeight = total
    this.maxWeight = max
  }

  /** Throws BAD_REQUEST on a missing or duplicate key or a weight that is not a finite number >= 0. */
  static from (specs: Iterable<PartitionSpec>): PartitionSet {
    const keys: string[] = []
    const weights: number[] = []
    for (const s of specs) {
      if (typeof s?.key !== 'string') throw new GemError('BAD_REQUEST', 'partition key must be a string')
      const weight = s.weight ?? 1
      if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
        throw new GemError('BAD_REQUEST', `partition ${s.key}: weight must be a finite number >= 0, got ${weight}`)
      }
      keys.push(s.key)
      weights.push(weight)
    }
    const n = keys.length
    const hashes = new Uint32Array(n)
    for (let i = 0; i < n; i++) hashes[i] = hashKey(keys[i])
    const order = Array.from({ length: n }, (_, i) => i)
      .sort((a, b) => hashes[a] - hashes[b] || (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : 0))
    // Equal keys hash equally, so after the sort any duplicate sits next to its twin.
    for (let i = 1; i < n; i++) {
      if (keys[order[i]] === keys[order[i - 1]]) throw new GemError('BAD_REQUEST', `duplicate partition key ${keys[order[i]]}`)
    }
    return new PartitionSet(
      order.map(i => keys[i]),
      Uint32Array.from(order, i => hashes[i]),
      Float64Array.from(order, i => weights[i]),
    )
  }

  get size (): number { return this.keys.length }
}
