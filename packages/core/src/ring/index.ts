// The ring's public surface: consistent-hash placement of partitions on weighted nodes with bounded loads.
// Pure functions and immutable values only; membership, transport and handover live elsewhere.
//
//   const ring = HashRing.from([{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'edge', weight: 0 }])
//   const parts = PartitionSet.from(keys.map(key => ({ key })))        // hash once, reuse per change
//   const placement = assignPartitions(ring, parts, { replication: 3 }) // key -> [leader, ...followers]
//   const next = assignPartitions(ring.withNode({ id: 'c', weight: 1 }), parts, { replication: 3 })
//   movedKeys(placement, next)                                          // { keys, primary, replicaSets, slots }
export { hashKey } from './hash.ts'
export { HashRing, DEFAULT_VNODES_PER_UNIT_WEIGHT } from './hash-ring.ts'
export type { RingNode, HashRingOptions } from './hash-ring.ts'
export { PartitionSet } from './partition-set.ts'
export type { PartitionSpec } from './partition-set.ts'
export { assignPartitions, DEFAULT_EPSILON } from './assign-partitions.ts'
export type { AssignOptions, Placement } from './assign-partitions.ts'
export { movedKeys } from './moved-keys.ts'
export type { MovedKeys } from './moved-keys.ts'
