// Runs this node's partition replicas on the mesh: `/gem/1/replicate` frames in and out, durable writes through the
// replica store, timers from the clock, and committed entries applied to the local broker in offset order.
import type { Broker } from '../broker.ts'
import type { Clock } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { decodeRecord, decodeRecordsInPlace, encodeRecord, encodeRecordFrames } from '../codec.ts'
import { GemError, toGemError } from '../errors.ts'
import type { GemRecord } from '../message.ts'
import { PartitionReplica } from '../replication/replica.ts'
import type { InitialMembership, ReplicaConfig, Role } from '../replication/replica.ts'
import { decodeReplicationFrame, encodeReplicationFrame } from '../replication/replica-codec.ts'
import type { TierReplicaStore } from '../replication/replica-store.ts'
import { streamId } from '../store/tier.ts'
import type { MeshTransport } from './transport.ts'

export const REPLICATE_PROTOCOL = '/gem/1/replicate'
/** A follower rebuilding its copy of a partition (snapshot install) reads the leader's applied log here. */
export const FETCH_PROTOCOL = '/gem/1/fetch'
const FETCH_PAGE = 4096
const te = new TextEncoder()
const td = new TextDecoder()

/** Election and heartbeat timing for real networks: GC pauses of tens of ms must not start elections. */
export const MESH_REPLICA_CONFIG: ReplicaConfig = { electionMinMs: 600, electionMaxMs: 1200, heartbeatMs: 75, maxBatch: 1024, maxInflight: 2 }
const TICK_MS = 10
/**
 * A replica compacts its log once this many entries below what every replica holds are applied locally; it keeps
 * COMPACT_KEEP of them, so that a replica whose disk lost its newest entries can still repair from the leader.
 */
const COMPACT_EVERY = 8192
const COMPACT_KEEP = 1024
const COMPACT_CHECK_TICKS = 50
const PREFERRED_FIRST_ELECTION_MS = 150
const APPLY_BATCH = 2048

export interface PartitionReplicaView {
  topic: string
  partition: number
  replicas: string[]
  role: Role
  leader: string | null
  epoch: number
  commit: number
  end: number
  /** First offset still in the replica log (below it, compacted). */
  start: number
  /** Snapshot installs this replica completed since the node started. */
  installs: number
  applied: number
  repairing: boolean
  /** The replica set as this replica holds it (replicas = voters, then learners: joining replicas catching up). */
  voters: string[]
  learners: string[]
  /** Leader only: its membership is committed (no change under way). */
  membershipCommitted: boolean
  /** Which membership that is: the epoch of the leader that wrote it and its version. */
  membershipEpoch: number
  membershipVersion: number
  /** Leader only: a leadership transfer under way to this peer. */
  transferringTo?: string
}

export interface ReplicationServiceOptions {
  transport: MeshTransport
  store: TierReplicaStore
  broker: Broker
  clock?: Clock
  random?: () => number
  replica?: Partial<ReplicaConfig>
  onError?: (where: string, err: unknown) => void
  /** A replica of this node became leader or follower. */
  onRoleChange?: (view: PartitionReplicaView) => void
  /** A replica's membership changed or, on the leader, committed. */
  onMembershipChange?: (view: PartitionReplicaView) => void
  /**
   * Makes everything applied to the local broker so far durable (one synced write). Given, replica logs are compacted
   * once their entries are applied and held by every replica; absent, they are kept whole.
   */
  syncApplied?: () => Promise<void>
  /**
   * A proposal not committed and applied after this long is answered TIMEOUT (its publisher may retry with the same
   * id: the entry stays in the log and dedup finds it). Without a bound, a commit or apply that stalls would hold a
   * publish, and every publish queued behind it in order, forever. Default 10 s (the mesh publish timeout).
   */
  commitTimeoutMs?: number
}

interface Waiter { offset: number, epoch: number, resolve: (r: GemRecord) => void, reject: (e: unknown) => void, record: GemRecord, at: number }

class Hosted {
  readonly topic: string
  readonly partition: number
  readonly stream: string
  readonly replica: PartitionReplica<Uint8Array>
  applied: number
  applying = false
  closed = false
  role = ''
  /** Proposals waiting for their commit and local apply, in offset order. */
  waiters: Waiter[] = []
  /** Ids of entries this leader holds beyond what the broker applied: retries must find them. */
  tailIds = new Map<string, number>()
  tailEpoch = -1
  /** Snapshot installs this replica completed (rebuilt from a leader's applied log). */
  installs = 0
  /** The membership last reported to onMembershipChange. */
  membershipSeen = ''
  /** transferLeadership calls waiting for the outcome. */
  transfers: Array<{ to: string, resolve: () => void, reject: (e: unknown) => void }> = []

  constructor (topic: string, partition: number, replica: PartitionReplica<Uint8Array>, applied: number) {
    this.topic = topic
    this.partition = partition
    this.stream = streamId(topic, partition)
    this.replica = replica
    this.applied = applied
  }
}

export class ReplicationService {
  private readonly transport: MeshTransport
  private readonly store: TierReplicaStore
  private readonly broker: Broker
  private readonly clock: Clock
  private readonly random: () => number
  private readonly config: Partial<ReplicaConfig>
  private readonly onError: (where: string, err: unknown) => void
  private readonly onRoleChange: (view: PartitionReplicaView) => void
  private readonly onMembershipChange: (view: PartitionReplicaView) => void
  private readonly syncApplied: (() => Promise<void>) | undefined
  private readonly commitTimeoutMs: number
  private readonly hosted = new Map<string, Hosted>()
  private timer: unknown
  private ticks = 0
  private closed = false

  constructor (options: ReplicationServiceOptions) {
    this.transport = options.transport
    this.store = options.store
    this.broker = options.broker
    this.clock = options.clock ?? systemClock
    this.random = options.random ?? Math.random
    this.config = { ...MESH_REPLICA_CONFIG, ...options.replica }
    this.onError = options.onError ?? (() => {})
    this.onRoleChange = options.onRoleChange ?? (() => {})
    this.onMembershipChange = options.onMembershipChange ?? (() => {})
    this.syncApplied = options.syncApplied
    this.commitTimeoutMs = options.commitTimeoutMs ?? 10_000
  }

  get self (): string { return this.transport.localPeerId }

  async start (): Promise<void> {
    await this.transport.handle(FETCH_PROTOCOL, (_from, frame) => this.onFetch(frame))
    await this.transport.handle(REPLICATE_PROTOCOL, (from, frame) => {
      const env = decodeReplicationFrame(frame) // a bad frame throws BAD_REQUEST to the transport, which reports it
      const h = this.hosted.get(streamId(env.topic, env.partition))
      if (h === undefined || h.closed) return
      h.replica.receive(from, env.message, this.clock.now())
      this.after(h)
    })
    this.arm()
  }

  /**
   * Starts (or keeps) this node's replica of `topic/partition` among `replicas` (peer ids); a replica joining an
   * existing partition passes the membership it joins, itself among the learners (see addReplica).
   */
  async host (topic: string, partition: number, replicas: readonly string[] | InitialMembership): Promise<void> {
    const stream = streamId(topic, partition)
    if (this.hosted.has(stream)) return
    const recovered = await this.store.recover(stream)
    const applied = this.broker.getTopic(topic).offsets[partition]?.high ?? 0
    // The ring lists the preferred leader first; it stands first, so leaderships spread as the placement balanced them.
    // Only for a new partition: a restarting replica must first hear from the leader it may already have.
    const fresh = recovered.meta.epoch === 0 && recovered.entries.length === 0
    const preferred = Array.isArray(replicas) && (replicas as readonly string[])[0] === this.self
    const config = preferred && fresh ? { ...this.config, firstElectionMs: PREFERRED_FIRST_ELECTION_MS } : this.config
    const replica = new PartitionReplica<Uint8Array>(this.self, replicas, recovered, this.clock.now(), this.random, config)
    const h = new Hosted(topic, partition, replica, applied)
    this.hosted.set(stream, h)
    this.after(h)
  }

  /** Stops the replica; `drop` also deletes its replica log (the topic was deleted, or the replica moved away). */
  async unhost (topic: string, partition: number, drop: boolean): Promise<void> {
    const stream = streamId(topic, partition)
    const h = this.hosted.get(stream)
    this.hosted.delete(stream)
    if (h !== undefined) {
      h.closed = true
      const gone = new GemError('TOPIC_NOT_FOUND', `topic ${topic} was deleted`)
      for (const w of h.waiters.splice(0)) w.reject(gone)
      for (const t of h.transfers.splice(0)) t.reject(gone)
    }
    if (drop) await this.store.drop(stream)
  }

  isHosted (topic: string, partition: number): boolean { return this.hosted.has(streamId(topic, partition)) }

  /** Leader only: `peer` joins the replica set as a learner (it must host the partition as one) and is promoted once caught up. */
  addReplica (topic: string, partition: number, peer: string): void {
    const h = this.leaderHosted(topic, partition)
    h.replica.addReplica(peer, this.clock.now())
    this.after(h)
  }

  /** Leader only: `peer` leaves the replica set; once that commits (onMembershipChange) it may drop its copy. */
  removeReplica (topic: string, partition: number, peer: string): void {
    const h = this.leaderHosted(topic, partition)
    h.replica.removeReplica(peer, this.clock.now())
    this.after(h)
  }

  /**
   * Leader only: hands the leadership of `topic/partition` to the voter `toPeer` (Raft's TimeoutNow). Publishes are
   * refused (NOT_LEADER) meanwhile. Resolves once `toPeer` leads as far as this node knows; rejects with TIMEOUT when
   * the transfer was abandoned (the target did not catch up or win within an election timeout), NOT_LEADER when
   * another node took over, BAD_REQUEST when `toPeer` is not a voter.
   */
  transferLeadership (topic: string, partition: number, toPeer: string): Promise<void> {
    let h: Hosted
    try {
      h = this.leaderHosted(topic, partition)
      if (toPeer === this.self) return Promise.resolve()
      h.replica.transferLeadership(toPeer, this.clock.now())
    } catch (err) { return Promise.reject(err) }
    return new Promise((resolve, reject) => {
      h.transfers.push({ to: toPeer, resolve, reject })
      this.after(h)
    })
  }

  private leaderHosted (topic: string, partition: number): Hosted {
    const h = this.hosted.get(streamId(topic, partition))
    if (h === undefined || h.closed) throw new GemError('NOT_LEADER', `partition ${topic}/${partition} has no replica here`, { leader: null })
    if (h.replica.role !== 'leader') throw new GemError('NOT_LEADER', `not the leader of ${topic}/${partition}`, { leader: h.replica.leader })
    return h
  }

  /** The leader as this node knows it (a peer id), or null during an election or when not hosted here. */
  leaderOf (topic: string, partition: number): string | null {
    return this.hosted.get(streamId(topic, partition))?.replica.leader ?? null
  }

  /** Leader only: where an id already sits in the log beyond what was applied, if it does. */
  findTailId (topic: string, partition: number, id: string): number | undefined {
    const h = this.hosted.get(streamId(topic, partition))
    if (h === undefined || h.replica.role !== 'leader') return undefined
    this.indexTail(h)
    return h.tailIds.get(id)
  }

  /**
   * Leader only: appends records (offset and timestamp assigned here) and resolves each once a majority holds it
   * durably and this node has applied it. Rejects with NOT_LEADER (details.leader) when this node is not the leader
   * or loses leadership before the commit.
   */
  propose (topic: string, partition: number, records: GemRecord[]): Array<Promise<GemRecord>> {
    const h = this.hosted.get(streamId(topic, partition))
    if (h === undefined || h.closed) throw new GemError('NOT_LEADER', `partition ${topic}/${partition} has no replica here`, { leader: null })
    const r = h.replica
    if (r.role !== 'leader') throw new GemError('NOT_LEADER', `not the leader of ${topic}/${partition}`, { leader: r.leader })
    this.indexTail(h)
    const now = this.clock.now()
    const start = r.end
    for (let i = 0; i < records.length; i++) { records[i].offset = start + i; records[i].timestamp = now }
    const values = encodeRecordFrames(records)
    const { epoch } = r.propose(values, now)
    const promises = records.map((record, i) => new Promise<GemRecord>((resolve, reject) => {
      h.waiters.push({ offset: start + i, epoch, resolve, reject, record, at: now })
      h.tailIds.set(record.id, start + i)
    }))
    this.after(h)
    return promises
  }

  /** Waits for an entry already in the leader's log (a retried id) to commit and apply. */
  awaitOffset (topic: string, partition: number, offset: number): Promise<GemRecord> {
    const h = this.hosted.get(streamId(topic, partition))
    if (h === undefined || h.replica.role !== 'leader') return Promise.reject(new GemError('NOT_LEADER', `not the leader of ${topic}/${partition}`, { leader: h?.replica.leader ?? null }))
    const record = decodeRecord(h.replica.entry(offset)!.value)
    if (offset < h.applied) return Promise.resolve(record)
    return new Promise((resolve, reject) => {
      h.waiters.push({ offset, epoch: h.replica.epoch, resolve, reject, record, at: this.clock.now() })
      h.waiters.sort((a, b) => a.offset - b.offset)
    })
  }

  views (): PartitionReplicaView[] {
    return [...this.hosted.values()].map(h => this.view(h))
  }

  private view (h: Hosted): PartitionReplicaView {
    const r = h.replica
    return {
      topic: h.topic, partition: h.partition, replicas: [...r.replicas], role: r.role, leader: r.leader, epoch: r.epoch, commit: r.commit, end: r.end, start: r.start, installs: h.installs, applied: h.applied, repairing: r.repairing,
      voters: [...r.voters], learners: [...r.learners], membershipCommitted: r.configCommitted, membershipEpoch: r.membership.epoch, membershipVersion: r.membership.version, ...(r.transferringTo !== undefined ? { transferringTo: r.transferringTo } : {}),
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) this.clock.clearTimer(this.timer)
    const closing = new GemError('CLOSED', 'the node is shutting down')
    for (const h of this.hosted.values()) { h.closed = true; for (const w of h.waiters.splice(0)) w.reject(closing); for (const t of h.transfers.splice(0)) t.reject(closing) }
    this.hosted.clear()
    await this.transport.unhandle(REPLICATE_PROTOCOL).catch(() => {})
    await this.transport.unhandle(FETCH_PROTOCOL).catch(() => {})
  }

  // ---- driving the replicas ------------------------------------------------------------------

  private arm (): void {
    if (this.closed) return
    this.timer = this.clock.setTimer(TICK_MS, () => {
      const now = this.clock.now()
      // Compaction also waits for replicas that went silent to stop counting: look again now and then, not only
      // when something is applied.
      const compactNow = ++this.ticks % COMPACT_CHECK_TICKS === 0
      for (const h of this.hosted.values()) {
        if (now >= h.replica.nextTimer) { h.replica.tick(now); this.after(h) }
        if (h.waiters.length > 0 && now - h.waiters[0].at > this.commitTimeoutMs) this.expireWaiters(h, now)
        if (compactNow && !h.applying && !h.closed) {
          h.applying = true
          this.maybeCompact(h).catch(err => this.onError('compact', err)).finally(() => { h.applying = false })
        }
      }
      this.arm()
    })
  }

  /** Carries out what the replica asked for, then settles proposals and applies what committed. */
  private after (h: Hosted): void {
    if (h.closed) return
    const r = h.replica
    for (const a of r.drain()) {
      if (a.type === 'send') {
        this.transport.send(a.to, REPLICATE_PROTOCOL, encodeReplicationFrame({ topic: h.topic, partition: h.partition, message: a.message }))
          .catch(() => { /* at most once by design: the replica resends what is not acknowledged */ })
      } else if (a.type === 'install') {
        this.install(h, a.from, a.base).then(
          () => { if (!h.closed) { h.installs++; r.installed(a.token, this.clock.now()); this.after(h) } },
          err => { r.installFailed(a.token); this.onError('snapshot-install', err) },
        )
      } else {
        this.store.write(h.stream, a.write).then(
          () => { if (!h.closed) { r.durable(a.token, this.clock.now()); this.after(h) } },
          // A write still queued when the node shut down fails on the closed store: expected, nothing was acknowledged on it.
          err => { if (!h.closed) this.onError('replica-write', err) },
        )
      }
    }
    const role = `${r.role}@${r.epoch}`
    if (role !== h.role) {
      h.role = role
      if (r.role !== 'leader') this.failWaiters(h)
      try { this.onRoleChange(this.view(h)) } catch (err) { this.onError('role-change', err) }
    }
    if (h.transfers.length > 0) this.settleTransfers(h)
    const m = r.membership
    const membership = `${m.epoch}/${m.version}/${r.configCommitted}`
    if (membership !== h.membershipSeen) {
      h.membershipSeen = membership
      try { this.onMembershipChange(this.view(h)) } catch (err) { this.onError('membership-change', err) }
    }
    if (!h.applying && h.applied < r.commit) void this.apply(h)
  }

  private settleTransfers (h: Hosted): void {
    const r = h.replica
    const keep: Hosted['transfers'] = []
    for (const t of h.transfers) {
      if (r.role !== 'leader' && r.leader === t.to) t.resolve()
      else if (r.role !== 'leader' && r.leader !== null) t.reject(new GemError('NOT_LEADER', `${r.leader} took over ${h.topic}/${h.partition}, not ${t.to}`, { leader: r.leader }))
      else if (r.role === 'leader' && r.transferringTo === undefined) t.reject(new GemError('TIMEOUT', `the leadership of ${h.topic}/${h.partition} did not move to ${t.to} within an election timeout`))
      else keep.push(t)
    }
    h.transfers = keep
  }

  /** Copies committed records [applied, base) from `peer`'s applied log into the local broker, in pages. */
  private async install (h: Hosted, peer: string, base: number): Promise<void> {
    // Applying and installing both append to the local broker at h.applied: one at a time.
    while (h.applying) await new Promise<void>(resolve => this.clock.setTimer(5, resolve))
    h.applying = true
    try {
      await this.copyApplied(h, peer, base)
      // The replica log restarts at `base` once installed: below it the applied log is the only copy, so it must be on disk.
      await this.syncApplied?.()
    } finally {
      h.applying = false
    }
  }

  /**
   * Records a PartitionMirror copied into the local log while this node became a replica are committed records,
   * the same ones: applying resumes after them instead of failing on an offset that no longer follows the log.
   */
  private skipCopied (h: Hosted): void {
    const high = this.broker.hasTopic(h.topic) ? this.broker.getTopic(h.topic).offsets[h.partition]?.high ?? 0 : 0
    if (high > h.applied) h.applied = high
  }

  private async copyApplied (h: Hosted, peer: string, base: number): Promise<void> {
    this.skipCopied(h)
    while (!h.closed && h.applied < base) {
      const answer = await this.transport.request(peer, FETCH_PROTOCOL, te.encode(JSON.stringify({ topic: h.topic, partition: h.partition, from: h.applied, to: base })), { timeoutMs: 30_000 })
      const frames = splitFrames(answer)
      if (frames.length === 0) throw new GemError('UNAVAILABLE', `${peer} has no records of ${h.stream} from ${h.applied} (retention removed them?)`)
      const records = frames.map(f => decodeRecord(f))
      if (records[0].offset !== h.applied) throw new GemError('UNAVAILABLE', `${peer}'s applied log of ${h.stream} starts at ${records[0].offset}, not at ${h.applied}`)
      await this.broker.appendSequenced(h.topic, h.partition, records, frames)
      h.applied += records.length
    }
  }

  /** Serves a follower's snapshot install: committed records of the local applied log, one page per request. */
  private async onFetch (frame: Uint8Array): Promise<Uint8Array> {
    let req: { topic?: unknown, partition?: unknown, from?: unknown, to?: unknown }
    try { req = JSON.parse(td.decode(frame)) } catch { throw new GemError('BAD_REQUEST', 'fetch: not JSON') }
    const { topic, partition, from, to } = req
    if (typeof topic !== 'string' || !Number.isInteger(partition) || !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || (from as number) < 0 || (to as number) < (from as number)) {
      throw new GemError('BAD_REQUEST', 'fetch: needs topic, partition, from <= to')
    }
    const limit = Math.min(FETCH_PAGE, (to as number) - (from as number))
    if (limit === 0) return new Uint8Array(0)
    const { messages } = await this.broker.read(topic, partition as number, from as number, limit)
    return joinFrames(messages.filter(m => m.offset < (to as number)).map(m => encodeRecord(m)))
  }

  /** Compacts the replica log when enough of it is applied here and held by every live replica. */
  private async maybeCompact (h: Hosted): Promise<void> {
    const to = Math.min(h.applied, h.replica.compactable - COMPACT_KEEP)
    if (this.syncApplied === undefined || to - h.replica.start < COMPACT_EVERY) return
    // Applied records were written without fsync; before the replica log forgets them they must be on disk.
    await this.syncApplied()
    if (!h.closed && h.replica.compact(to)) this.after(h)
  }

  /** Answers TIMEOUT to the proposals waiting longer than the commit timeout (oldest first: they are in offset order). */
  private expireWaiters (h: Hosted, now: number): void {
    let n = 0
    while (n < h.waiters.length && now - h.waiters[n].at > this.commitTimeoutMs) n++
    const r = h.replica
    const err = new GemError('TIMEOUT', `${h.topic}/${h.partition}: not committed and applied within ${this.commitTimeoutMs} ms`)
    this.onError('commit-timeout', new GemError('TIMEOUT', `${n} proposals of ${h.topic}/${h.partition} timed out`, { role: r.role, epoch: r.epoch, commit: r.commit, applied: h.applied, end: r.end, applying: h.applying }))
    for (const w of h.waiters.splice(0, n)) w.reject(err)
  }

  private failWaiters (h: Hosted): void {
    if (h.waiters.length === 0) return
    const err = new GemError('NOT_LEADER', `lost the leadership of ${h.topic}/${h.partition} before the commit`, { leader: h.replica.leader })
    for (const w of h.waiters.splice(0)) w.reject(err)
  }

  private async apply (h: Hosted): Promise<void> {
    h.applying = true
    try {
      this.skipCopied(h)
      while (!h.closed && h.applied < h.replica.commit) {
        const from = h.applied
        const entries = h.replica.committed(from, APPLY_BATCH)
        const records = this.recordsOf(h, from, entries)
        await this.broker.appendSequenced(h.topic, h.partition, records, entries.map(e => e.value))
        h.applied = from + records.length
        for (const rec of records) h.tailIds.delete(rec.id)
        this.settle(h)
        await this.maybeCompact(h)
      }
    } catch (err) {
      this.onError('apply', toGemError(err))
    } finally {
      h.applying = false
    }
  }

  /**
   * The records of committed entries from `from`: on the leader, those it proposed itself are still held by their
   * waiters (no decoding what it just encoded); the rest are decoded in place (entry values are private buffers: the
   * batch proposed here, a copy of the frame they arrived in, or a run read from disk).
   */
  private recordsOf (h: Hosted, from: number, entries: ReadonlyArray<{ value: Uint8Array }>): GemRecord[] {
    const waiters = h.waiters
    if (waiters.length === 0) return decodeRecordsInPlace(entries.map(e => e.value))
    let w = 0
    const out = new Array<GemRecord>(entries.length)
    const missing: number[] = []
    for (let i = 0; i < entries.length; i++) {
      const offset = from + i
      while (w < waiters.length && waiters[w].offset < offset) w++
      if (w < waiters.length && waiters[w].offset === offset) out[i] = waiters[w].record
      else missing.push(i)
    }
    if (missing.length > 0) {
      const decoded = decodeRecordsInPlace(missing.map(i => entries[i].value))
      for (let k = 0; k < missing.length; k++) out[missing[k]] = decoded[k]
    }
    return out
  }

  private settle (h: Hosted): void {
    const r = h.replica
    while (h.waiters.length > 0 && h.waiters[0].offset < h.applied) {
      const w = h.waiters.shift()!
      // Only the leader that proposed it in this epoch may acknowledge it (one acking leader per epoch).
      if (r.role === 'leader' && r.epoch === w.epoch) w.resolve(w.record)
      else w.reject(new GemError('NOT_LEADER', `lost the leadership of ${h.topic}/${h.partition}`, { leader: r.leader }))
    }
  }

  private indexTail (h: Hosted): void {
    const r = h.replica
    if (h.tailEpoch === r.epoch) return
    h.tailEpoch = r.epoch
    h.tailIds = new Map()
    for (let o = h.applied; o < r.end; o++) h.tailIds.set(decodeRecord(r.entry(o)!.value).id, o)
  }
}

/** Record frames back to back, each behind its u32 length (frames are self-delimiting, but this needs no parsing). */
function joinFrames (frames: Uint8Array[]): Uint8Array {
  let n = 0
  for (const f of frames) n += 4 + f.byteLength
  const out = new Uint8Array(n)
  const view = new DataView(out.buffer)
  let at = 0
  for (const f of frames) { view.setUint32(at, f.byteLength); out.set(f, at + 4); at += 4 + f.byteLength }
  return out
}

function splitFrames (bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out: Uint8Array[] = []
  let at = 0
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength) throw new GemError('BAD_REQUEST', 'fetch answer: truncated length')
    const n = view.getUint32(at)
    if (at + 4 + n > bytes.byteLength) throw new GemError('BAD_REQUEST', 'fetch answer: truncated frame')
    out.push(bytes.slice(at + 4, at + 4 + n))
    at += 4 + n
  }
  return out
}
