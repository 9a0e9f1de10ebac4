// The replication protocol of one partition: the messages replicas exchange and the storage operations they ask for.
// Plain, JSON-serialisable objects, versioned, so a transport can frame them and a simulator can copy them.
import { GemError } from '../errors.ts'

export const REPLICATION_VERSION = 1

/** One log position: the epoch of the leader that wrote (or re-stamped) it, and the value. */
export interface Entry<T> {
  epoch: number
  value: T
}

/**
 * Who replicates a partition: voters elect the leader and form the commit majority; learners only receive the log
 * (a joining replica catches up as a learner before it is promoted). Membership is not a record of the log, so record
 * offsets stay dense: it travels beside the log in appends and sits in the replica's metadata, stamped with the epoch
 * of the leader that wrote it, a version that rises with every change, and `at`, the leader's log end when it was
 * written. A follower takes it only once its log matches the leader's through `at`, so it is ordered with the records
 * as if it were an entry between offsets at-1 and at (see PartitionReplica for the rules and why they are safe).
 */
export interface Membership {
  epoch: number
  version: number
  at: number
  voters: string[]
  learners: string[]
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
  /**
   * Pre-vote (Raft thesis 9.6): "would you vote for me in `epoch`?" Nobody changes state for it; only a candidate
   * that a majority would elect starts a real election, so a node cut off and back does not depose a working leader.
   */
  pre?: boolean
  /** The candidate's membership (epoch, version): a voter holding a newer one refuses, as Raft's log check would. */
  configEpoch?: number
  configVersion?: number
  /** Sent on the leader's TimeoutNow: voters grant it even though they heard from that leader a moment ago. */
  transfer?: boolean
}

export interface VoteReply {
  v: 1
  type: 'vote-reply'
  epoch: number
  granted: boolean
  /** An answer to a pre-vote; `epoch` is then the proposed epoch, not the voter's. */
  pre?: boolean
  /** With `pre`: the voter's own epoch, so a candidate that is behind catches up instead of asking forever. */
  voterEpoch?: number
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
  /** Every replica holds the log below this offset: followers may drop it from their replica logs too. */
  compactable?: number
  /** Consumer-group floors (everything below is acknowledged by the group) travel with the partition. */
  groups: Record<string, number>
  /** The leader's membership; absent from leaders that predate membership changes. */
  config?: Membership
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
  /** The membership the follower holds durably (epoch, version), so the leader knows when a change committed. */
  configEpoch?: number
  configVersion?: number
}

/** Leadership transfer (Raft's TimeoutNow): the leader says its log and `to`'s match; `to` starts an election now. */
export interface TimeoutNow {
  v: 1
  type: 'timeout-now'
  epoch: number
  leader: string
}

/**
 * The leader's log no longer holds what the follower needs (it was compacted): the follower rebuilds its copy up to
 * `base` from the leader's applied log (outside this protocol), then continues from `base` with appends.
 */
export interface SnapshotOffer {
  v: 1
  type: 'snapshot'
  epoch: number
  leader: string
  /** The leader's log starts here; everything below is committed. */
  base: number
  /** Epoch of the entry at base - 1. */
  baseEpoch: number
  commit: number
}

export type ReplicationMessage<T> = VoteRequest | VoteReply | AppendRequest<T> | AppendReply | SnapshotOffer | TimeoutNow

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
  /** The log starts here: entries below were compacted away (committed, held by every replica). Default 0. */
  base?: number
  /** Epoch of the entry at base - 1. */
  baseEpoch?: number
  /** The latest membership this replica took; absent: the replica set it was created with. */
  config?: Membership
}

/**
 * One durable write: truncate the log at `truncateFrom` (if set), then append `entries` at that point
 * (or at the old end), and replace the metadata. Applied atomically: after a crash all or none of it.
 */
export interface ReplicaWrite<T> {
  /** Drop every entry below this offset (compaction). */
  compactTo?: number
  truncateFrom?: number
  entries: Array<Entry<T>>
  meta: ReplicaMeta
}

// ---- validation of what arrives from the wire ---------------------------------------------------

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0
const isId = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 256
const isIdList = (x: unknown): x is string[] => Array.isArray(x) && x.length <= 64 && x.every(isId) && new Set(x).size === x.length

/** Checks a membership from the wire; returns why it is bad, or undefined. */
function badMembership (c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'config must be an object'
  const o = c as Record<string, unknown>
  if (!isCount(o.epoch) || !isCount(o.version) || !isCount(o.at)) return 'config epoch, version and at must be non-negative integers'
  if (!isIdList(o.voters) || o.voters.length === 0) return 'config voters must be a non-empty list of distinct node ids'
  if (!isIdList(o.learners)) return 'config learners must be a list of distinct node ids'
  if (o.learners.some(l => (o.voters as string[]).includes(l))) return 'config: a node is both voter and learner'
  return undefined
}
const optionalCount = (x: unknown): boolean => x === undefined || isCount(x)

/**
 * Checks a decoded message field by field and returns it typed; throws BAD_REQUEST naming the first bad field.
 * Entry values are left to the caller (they are opaque here).
 */
export function parseReplicationMessage (m: unknown): ReplicationMessage<unknown> {
  const bad = (why: string): never => { throw new GemError('BAD_REQUEST', `replication message: ${why}`) }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return bad('not an object')
  const o = m as Record<string, unknown>
  if (o.v !== REPLICATION_VERSION) return bad(`version ${String(o.v)} is not ${REPLICATION_VERSION}`)
  if (!isCount(o.epoch)) return bad('epoch must be a non-negative integer')
  switch (o.type) {
    case 'vote':
      if (o.pre !== undefined && typeof o.pre !== 'boolean') bad('pre must be a boolean')
      if (!isId(o.candidate)) bad('candidate must be a node id')
      if (!isCount(o.lastEpoch) || !isCount(o.end)) bad('lastEpoch and end must be non-negative integers')
      if (!optionalCount(o.configEpoch) || !optionalCount(o.configVersion)) bad('configEpoch and configVersion must be non-negative integers')
      if (o.transfer !== undefined && typeof o.transfer !== 'boolean') bad('transfer must be a boolean')
      break
    case 'vote-reply':
      if (o.pre !== undefined && typeof o.pre !== 'boolean') bad('pre must be a boolean')
      if (o.voterEpoch !== undefined && !isCount(o.voterEpoch)) bad('voterEpoch must be a non-negative integer')
      if (typeof o.granted !== 'boolean') bad('granted must be a boolean')
      break
    case 'append': {
      if (!isId(o.leader)) bad('leader must be a node id')
      if (!isCount(o.prev) || !isCount(o.prevEpoch) || !isCount(o.commit)) bad('prev, prevEpoch and commit must be non-negative integers')
      if (typeof o.stable !== 'boolean') bad('stable must be a boolean')
      if (o.compactable !== undefined && !isCount(o.compactable)) bad('compactable must be a non-negative integer')
      if (!Array.isArray(o.entries)) return bad('entries must be an array')
      for (const e of o.entries as unknown[]) {
        if (typeof e !== 'object' || e === null || !isCount((e as { epoch?: unknown }).epoch) || !('value' in e)) bad('each entry needs an epoch and a value')
      }
      if (typeof o.groups !== 'object' || o.groups === null || Array.isArray(o.groups)) return bad('groups must be an object')
      for (const [g, floor] of Object.entries(o.groups as Record<string, unknown>)) if (!isCount(floor)) bad(`group ${g}: floor must be a non-negative integer`)
      if (o.config !== undefined) { const why = badMembership(o.config); if (why !== undefined) bad(why) }
      break
    }
    case 'snapshot':
      if (!isId(o.leader)) bad('leader must be a node id')
      if (!isCount(o.base) || !isCount(o.baseEpoch) || !isCount(o.commit)) bad('base, baseEpoch and commit must be non-negative integers')
      break
    case 'append-reply':
      if (!isId(o.from)) bad('from must be a node id')
      if (typeof o.ok !== 'boolean') bad('ok must be a boolean')
      if (!isCount(o.end)) bad('end must be a non-negative integer')
      if (!optionalCount(o.configEpoch) || !optionalCount(o.configVersion)) bad('configEpoch and configVersion must be non-negative integers')
      break
    case 'timeout-now':
      if (!isId(o.leader)) bad('leader must be a node id')
      break
    default:
      bad(`unknown type ${JSON.stringify(o.type)}`)
  }
  return m as ReplicationMessage<unknown>
}
