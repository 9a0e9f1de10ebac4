// The replication protocol of one partition: the messages replicas exchange and the storage operations they ask for.
// Plain, JSON-serialisable objects, versioned, so a transport can frame them and a simulator can copy them.

export const REPLICATION_VERSION = 1

/** One log position: the epoch of the leader that wrote (or re-stamped) it, and the value. */
export interface Entry<T> {
  epoch: number
  value: T
}

/** A candidate asks for a vote: its epoch and how far its log reaches. */
export interface VoteRequest {
  v: 1
  type: 'vote'
  epoch: number
  candidate: string
  /** Epoch of the candidate's last entry (0 for an empty log). */
  lastEpoch: number
  /** The candidate's log end (next offset). */
  end: number
}

export interface VoteReply {
  v: 1
  type: 'vote-reply'
  epoch: number
  granted: boolean
}

/**
 * The leader's batch (or heartbeat when `entries` is empty): entries start at offset `prev`, and the
 * entry before them must have epoch `prevEpoch` for the follower to accept them.
 */
export interface AppendRequest<T> {
  v: 1
  type: 'append'
  epoch: number
  leader: string
  prev: number
  prevEpoch: number
  entries: Array<Entry<T>>
  /** The leader's commit point: every offset below it is acknowledged by a majority. */
  commit: number
  /** `commit` covers the leader's whole log as of its election (see PartitionReplica.electedEnd). */
  stable: boolean
  /** Consumer-group floors (everything below is acknowledged by the group) travel with the partition. */
  groups: Record<string, number>
}

export interface AppendReply {
  v: 1
  type: 'append-reply'
  epoch: number
  from: string
  ok: boolean
  /** ok: the follower's log matches the leader's through `end` (exclusive) and that prefix is durable.
   *  not ok: the offset the leader should retry from. */
  end: number
}

export type ReplicationMessage<T> = VoteRequest | VoteReply | AppendRequest<T> | AppendReply

/** The metadata a replica persists beside its log; all of it is written atomically with log changes. */
export interface ReplicaMeta {
  /** The newest epoch this replica has seen. */
  epoch: number
  /** Whom it voted for in `epoch`, if anyone. */
  votedFor: string | null
  /** Log end as of the last write: a shorter log on recovery means the disk lost acknowledged entries. */
  end: number
  /** The replica lost or found corrupt entries it may have acknowledged: it must not vote until repaired. */
  repairing: boolean
  commit: number
  groups: Record<string, number>
}

/**
 * One durable write: truncate the log at `truncateFrom` (if set), then append `entries` at that point
 * (or at the old end), and replace the metadata. Applied atomically: after a crash all or none of it.
 */
export interface ReplicaWrite<T> {
  truncateFrom?: number
  entries: Array<Entry<T>>
  meta: ReplicaMeta
}
