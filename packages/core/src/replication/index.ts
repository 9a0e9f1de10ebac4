// @gem-mesh/core replication: one partition's replica state machine and its protocol messages.
// Sans-I/O; the node runtime and the simulator drive it with messages, timers and durable writes.
export { PartitionReplica, DEFAULT_REPLICA_CONFIG } from './replica.ts'
export type { ReplicaAction, ReplicaConfig, RecoveredState, Role } from './replica.ts'
export { REPLICATION_VERSION } from './messages.ts'
export type * from './messages.ts'
export { parseReplicationMessage } from './messages.ts'
