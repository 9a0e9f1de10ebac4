// One replica of one partition: leader election by epoch, majority commit, fencing, log repair, membership changes
// and leadership transfer (Raft's rules). Sans-I/O: events go in (messages, ticks, durable writes), actions come out.
import { GemError } from '../errors.ts'
import type { AppendReply, AppendRequest, Entry, Membership, ReplicaMeta, ReplicaWrite, ReplicationMessage, SnapshotOffer, TimeoutNow, VoteReply, VoteRequest } from './messages.ts'

/*
 * Membership changes: Raft's single-server changes (Ongaro's thesis 4.1), not joint consensus. Each change adds or
 * removes one voter, so the majorities of the old and the new voter set always intersect and no moment exists at which
 * two disjoint majorities could decide; joint consensus would allow arbitrary changes in one step, but replica moves
 * are one server at a time anyway and the single-server rules need no second quorum anywhere in the code.
 *
 * - A replica that joins is a learner first: it receives the log (and a snapshot install when it needs entries below
 *   the leader's base) but neither votes nor counts toward commit. The leader promotes it to voter on its own once it
 *   holds everything committed and is within one batch of the leader's end; so a new voter never lowers availability
 *   by counting toward a majority it cannot yet help to form.
 * - One change at a time: the next change waits until the current membership is committed, that is held durably by a
 *   majority of its voters in the leader's epoch.
 * - Ongaro's 2015 raft-dev fix: a new leader re-stamps its membership with its own epoch (version + 1) and accepts a
 *   change only after that membership and its whole log as of its election are committed in its epoch. Without it, a
 *   leader could add a change on top of a membership that a competing, uncommitted change of an earlier epoch forked.
 * - The membership is not a log record (offsets stay dense for readers). It sits in the metadata and travels in
 *   appends with `at`, the leader's log end when it was written; a follower takes it only once its log matches the
 *   leader's through `at`. So within an epoch, whoever holds more of the log holds the same or a newer membership,
 *   and a vote requires both the candidate's log and its membership (epoch, version) to be at least the voter's: the
 *   two comparisons together are Raft's up-to-date check on a log that would hold the membership as an entry at `at`.
 * - A newer leader may cut a follower's log below the `at` of the membership it holds (that membership came from a
 *   leader whose log lost): Raft would drop that membership with the entry; here it stays, detached, counts for
 *   nothing in votes, and the replica does not campaign until it takes the current leader's membership.
 * - Every replica uses the newest membership it holds, committed or not (as in Raft). A removed replica is stopped
 *   and its copy dropped by the driver only once the leader reports the membership without it committed; the leader
 *   itself cannot be removed (transfer the leadership first).
 *
 * Leadership transfer (thesis 3.10): the leader stops taking proposals, brings the target up to its log end, then sends
 * TimeoutNow; the target starts an election at once, and voters grant it although they heard from the leader lately.
 * A transfer that has not happened within an election timeout is abandoned and proposals are taken again.
 */

export type Role = 'follower' | 'candidate' | 'leader'

export type ReplicaAction<T> =
  | { type: 'send', to: string, message: ReplicationMessage<T> }
  /**
   * Rebuild everything below `base` from `from`'s applied log (the driver fetches it), then call
   * `installed(token, ...)`; or `installFailed(token)` to let a later offer try again.
   */
  | { type: 'install', token: number, from: string, base: number, baseEpoch: number }
  /** Persist atomically, then call `durable(token)`. Writes must be applied in the order they are issued. */
  | { type: 'write', token: number, write: ReplicaWrite<T> }

export interface ReplicaConfig {
  /** Election timeout, randomised in [min, max) ms per attempt. */
  electionMinMs: number
  electionMaxMs: number
  /** Leader heartbeat interval; keep it well below electionMinMs. */
  heartbeatMs: number
  /** Entries per append message at most. */
  maxBatch: number
  /**
   * Appends in flight to one follower at most. New entries wait for an answer and go together in the next append:
   * under load that turns one write and one message per publish into one per round trip.
   */
  maxInflight: number
  /**
   * If set, the first election timeout after start (in ms, not randomised): the placement's preferred leader uses a
   * short one so that leadership starts where the ring balanced it, not wherever a timer fired first.
   */
  firstElectionMs?: number
}

/** The replica set a replica starts with when its disk holds no membership yet. */
export interface InitialMembership { voters: readonly string[], learners: readonly string[] }

export const DEFAULT_REPLICA_CONFIG: ReplicaConfig = { electionMinMs: 300, electionMaxMs: 600, heartbeatMs: 50, maxBatch: 512, maxInflight: 2 }

/** What a replica recovered from its disk. */
export interface RecoveredState<T> {
  meta: ReplicaMeta
  entries: Array<Entry<T>>
  /** Entries that failed their checksum or were missing: the log was cut there and the replica must repair. */
  damaged: boolean
}

interface FollowerProgress {
  /** Next offset to send. */
  next: number
  /** Highest offset known to match the leader's log and be durable there. */
  match: number
  /** Last time this follower answered in the current epoch, for check-quorum. */
  heardAt: number
  /** The last resume point asked for, and when: later refusals with the same point are echoes. */
  resumedAt: number
  resumedWhen: number
  /** When a snapshot was last offered to it. */
  offeredAt: number
  /** Appends sent and not yet answered, and when the last was sent (an answer lost for long resets the count). */
  inflight: number
  lastSent: number
  /** The commit point the last append to it carried. */
  sentCommit: number
  /** The membership this follower holds durably, as it last said (-1/-1: not one of this epoch). */
  configEpoch: number
  configVersion: number
}

const sameMembership = (a: Membership | undefined, b: Membership | undefined): boolean =>
  a !== undefined && b !== undefined && a.epoch === b.epoch && a.version === b.version
/**
 * How far a replica's log reaches, with its membership counted as an entry at `at` (Raft's up-to-date order on that
 * merged log): the newest epoch written, then the log end, then the membership version within that epoch.
 */
type LogKey = [epoch: number, end: number, version: number]
function logKey (lastEpoch: number, end: number, configEpoch: number | undefined, configVersion: number | undefined): LogKey {
  if (configEpoch === undefined || configVersion === undefined || configEpoch < lastEpoch) return [lastEpoch, end, -1]
  return [configEpoch, end, configVersion]
}
const keyAtLeast = (a: LogKey, b: LogKey): boolean =>
  a[0] !== b[0] ? a[0] > b[0] : a[1] !== b[1] ? a[1] > b[1] : a[2] >= b[2]

export class PartitionReplica<T> {
  readonly id: string
  private readonly cfg: ReplicaConfig
  private readonly random: () => number
  private readonly out: Array<ReplicaAction<T>> = []

  /** Entries from `base` on; below `base` the log was compacted (committed, held by every replica). */
  private log: Array<Entry<T>>
  private base: number
  private baseEpoch: number
  private meta: ReplicaMeta
  /** Followers: the leader's last word on what every replica holds. */
  private leaderCompactable = 0
  /** The latest time seen (ticks and messages), for throttling snapshot offers. */
  private lastTick = 0
  /** A snapshot install under way: its token and what it installs. */
  private installing: { token: number, leader: string, epoch: number, base: number, baseEpoch: number } | undefined
  private installSeq = 0
  /** Log end that is on disk; the leader counts itself only up to here. */
  private durableEnd: number
  private writeSeq = 0
  /** Replies owed once a write is durable. */
  private readonly afterWrite = new Map<number, { end: number, config: Membership, messages: Array<{ to: string, message: ReplicationMessage<T> }> }>()
  /** The membership last written durably (the leader counts itself toward a membership's commit only from then). */
  private durableConfig: Membership
  /** Leader: its current membership is held durably by a majority of its voters in this epoch. */
  private configCommittedFlag = false
  /** Leader: a leadership transfer under way. */
  private transfer: { to: string, until: number, sent: boolean } | undefined

  role: Role = 'follower'
  leader: string | null = null
  private votes = new Set<string>()
  /** The epoch this replica is pre-voting for (0: none), and who would vote for it. */
  private preVoting = 0
  private preVotes = new Set<string>()
  private electionAt = 0
  private heartbeatAt = 0
  private lastLeaderContact = -Infinity
  private readonly progress = new Map<string, FollowerProgress>()
  /** The leader's log end when it won: once its commit reaches it, every entry an earlier leader may have committed is committed again in this epoch. */
  private electedEnd = 0

  /**
   * `initial` (a voter list, or voters and learners) applies only while the disk holds no membership: a replica that
   * joins an existing partition starts as a learner listed in `initial.learners`.
   */
  constructor (id: string, initial: readonly string[] | InitialMembership, recovered: RecoveredState<T>, now: number, random: () => number, config: Partial<ReplicaConfig> = {}) {
    const start = Array.isArray(initial) ? { voters: initial as readonly string[], learners: [] as readonly string[] } : initial as InitialMembership
    if (recovered.meta.config === undefined && !start.voters.includes(id) && !start.learners.includes(id)) throw new GemError('BAD_REQUEST', `replica ${id} is not in its replica set`)
    this.id = id
    this.cfg = { ...DEFAULT_REPLICA_CONFIG, ...config }
    this.random = random
    this.log = recovered.entries
    this.meta = { ...recovered.meta, groups: { ...recovered.meta.groups } }
    this.meta.config ??= { epoch: 0, version: 0, at: 0, voters: [...start.voters], learners: [...start.learners] }
    this.durableConfig = this.meta.config
    this.base = recovered.meta.base ?? 0
    this.baseEpoch = recovered.meta.baseEpoch ?? 0
    this.durableEnd = this.end
    this.meta.commit = Math.max(this.base, Math.min(this.meta.commit, this.end))
    if (recovered.damaged || this.end < recovered.meta.end) {
      // Entries it may have acknowledged are gone: until a leader's log has filled them in again, its
      // vote could help elect a leader that lacks a committed entry.
      this.meta.repairing = true
      this.meta.end = this.end
      this.persist({ truncateFrom: this.end, entries: [] })
    }
    this.resetElection(now)
    if (this.cfg.firstElectionMs !== undefined) this.electionAt = now + this.cfg.firstElectionMs
  }

  // ---- reading the state ---------------------------------------------------------------------

  get epoch (): number { return this.meta.epoch }
  /** Voters, then learners. */
  get replicas (): string[] { return [...this.membership.voters, ...this.membership.learners] }
  get voters (): readonly string[] { return this.membership.voters }
  get learners (): readonly string[] { return this.membership.learners }
  /** The newest membership this replica holds (committed or not). */
  get membership (): Membership { return this.meta.config! }
  /** Leader: its membership is committed in its epoch, with its whole log as of its election: a change may follow. */
  get changeable (): boolean { return this.role === 'leader' && this.configCommittedFlag && this.meta.commit >= this.electedEnd && this.transfer === undefined }
  /** Leader: its current membership is committed (a removed replica may now be stopped and dropped). */
  get configCommitted (): boolean { return this.role === 'leader' && this.configCommittedFlag }
  /** The membership sits beyond the log end (a newer leader cut the log it came with): see the note at the top. */
  private get detached (): boolean { return this.membership.at > this.end }
  private get ownKey (): LogKey {
    return this.detached ? [this.lastEpoch, this.end, -1] : logKey(this.lastEpoch, this.end, this.membership.epoch, this.membership.version)
  }

  /** Leader: the target of a leadership transfer under way. */
  get transferringTo (): string | undefined { return this.transfer?.to }
  get commit (): number { return this.meta.commit }
  get end (): number { return this.base + this.log.length }
  /** The first offset still in the replica log. */
  get start (): number { return this.base }
  get repairing (): boolean { return this.meta.repairing }
  get groups (): Readonly<Record<string, number>> { return this.meta.groups }
  entry (offset: number): Entry<T> | undefined { return offset < this.base ? undefined : this.log[offset - this.base] }
  /** Committed entries from `from` (at least `start`), at most `max`. */
  committed (from: number, max: number): Array<Entry<T>> {
    const first = Math.max(from, this.base)
    return this.log.slice(first - this.base, Math.max(first, Math.min(this.meta.commit, from + max)) - this.base)
  }
  get lastEpoch (): number { return this.log.length === 0 ? this.baseEpoch : this.log[this.log.length - 1].epoch }

  /**
   * Below this offset every live replica holds the log (leader: from their answers; follower: what the leader said):
   * what may be compacted. A replica not heard from for two election timeouts does not hold compaction back; when
   * it returns it is rebuilt by a snapshot install.
   */
  get compactable (): number {
    if (this.role !== 'leader') return Math.min(this.leaderCompactable, this.meta.commit)
    let low = Math.min(this.meta.commit, this.durableEnd)
    for (const p of this.progress.values()) if (this.lastTick - p.heardAt < 2 * this.cfg.electionMaxMs) low = Math.min(low, p.match)
    return low
  }

  /** Drops committed entries below `upTo` (capped at what is committed and durable) from memory and disk; false if nothing was. */
  compact (upTo: number): boolean {
    const to = Math.min(upTo, this.meta.commit, this.durableEnd)
    if (to <= this.base) return false
    this.baseEpoch = this.epochAt(to - 1)
    this.log.splice(0, to - this.base)
    this.base = to
    this.meta.base = to
    this.meta.baseEpoch = this.baseEpoch
    this.persist({ compactTo: to, entries: [] })
    return true
  }

  /** Epoch of the entry at `offset` (base - 1 included; -1 below that, where the log was compacted). */
  private epochAt (offset: number): number {
    if (offset < 0) return 0
    if (offset === this.base - 1) return this.baseEpoch
    if (offset < this.base) return -1
    return this.log[offset - this.base].epoch
  }
  /** Earliest time `tick` has something to do. */
  get nextTimer (): number { return this.role === 'leader' ? this.heartbeatAt : this.electionAt }

  /** Takes the actions produced since the last call. */
  drain (): Array<ReplicaAction<T>> { return this.out.splice(0) }

  // ---- leader API ----------------------------------------------------------------------------

  /** Appends values to the leader's log; they commit once a majority has them. Throws NOT_LEADER. */
  propose (values: readonly T[], now: number): { epoch: number, start: number } {
    if (this.role !== 'leader') throw new GemError('NOT_LEADER', `replica ${this.id} is not the leader`, { leader: this.leader })
    // During a transfer the log must stop growing, or the target never catches up with it.
    if (this.transfer !== undefined) throw new GemError('NOT_LEADER', `replica ${this.id} is handing the leadership to ${this.transfer.to}`, { leader: null, transferringTo: this.transfer.to })
    this.lastTick = Math.max(this.lastTick, now)
    const start = this.end
    const entries = values.map(value => ({ epoch: this.meta.epoch, value }))
    this.log.push(...entries)
    this.persist({ entries })
    this.broadcast(now, false)
    return { epoch: this.meta.epoch, start }
  }

  /** Records a consumer group's acknowledged floor; it travels with the next appends. */
  setGroupFloor (group: string, floor: number): void {
    if (this.role !== 'leader') throw new GemError('NOT_LEADER', `replica ${this.id} is not the leader`, { leader: this.leader })
    if (floor > this.meta.commit) throw new GemError('BAD_REQUEST', `group floor ${floor} is past the commit point ${this.meta.commit}`)
    if ((this.meta.groups[group] ?? 0) >= floor) return
    this.meta.groups[group] = floor
    this.persist({ entries: [] })
  }

  /** Leader: adds `id` as a learner; it is promoted to voter once caught up. Throws unless `changeable`. */
  addReplica (id: string, now: number): void {
    this.requireChangeable()
    if (this.replicas.includes(id)) throw new GemError('BAD_REQUEST', `${id} already replicates this partition`)
    this.changeMembership([...this.membership.voters], [...this.membership.learners, id], now)
  }

  /** Leader: removes a learner or a voter other than itself (transfer the leadership first). Throws unless `changeable`. */
  removeReplica (id: string, now: number): void {
    this.requireChangeable()
    if (id === this.id) throw new GemError('BAD_REQUEST', `the leader ${id} cannot remove itself: transfer the leadership first`)
    if (!this.replicas.includes(id)) throw new GemError('BAD_REQUEST', `${id} does not replicate this partition`)
    this.changeMembership(this.membership.voters.filter(v => v !== id), this.membership.learners.filter(l => l !== id), now)
  }

  /** Leader: hands the leadership to voter `to` (Raft's TimeoutNow). Proposals are refused until it happens or is abandoned. */
  transferLeadership (to: string, now: number): void {
    if (this.role !== 'leader') throw new GemError('NOT_LEADER', `replica ${this.id} is not the leader`, { leader: this.leader })
    if (to === this.id) return
    if (!this.membership.voters.includes(to)) throw new GemError('BAD_REQUEST', `${to} is not a voter of this partition`)
    this.lastTick = Math.max(this.lastTick, now)
    this.transfer = { to, until: now + this.cfg.electionMaxMs, sent: false }
    this.maybeSendTimeoutNow()
    const p = this.progress.get(to)
    if (p !== undefined && !this.transfer.sent) this.sendAppend(to, p, true)
  }

  private requireChangeable (): void {
    if (this.role !== 'leader') throw new GemError('NOT_LEADER', `replica ${this.id} is not the leader`, { leader: this.leader })
    if (!this.changeable) throw new GemError('UNAVAILABLE', 'a membership change, a leadership transfer or the new leader\'s own commit is still under way', { reason: 'CHANGE_IN_PROGRESS' })
  }

  private changeMembership (voters: string[], learners: string[], now: number): void {
    const next: Membership = { epoch: this.meta.epoch, version: this.membership.version + 1, at: this.end, voters, learners }
    this.meta.config = next
    this.configCommittedFlag = false
    for (const id of this.progress.keys()) if (!voters.includes(id) && !learners.includes(id)) this.progress.delete(id)
    for (const id of [...voters, ...learners]) if (id !== this.id && !this.progress.has(id)) this.progress.set(id, this.newProgress(now))
    this.persist({ entries: [] })
    this.broadcast(now, true)
  }

  private newProgress (now: number): FollowerProgress {
    return { next: this.end, match: 0, heardAt: now, resumedAt: -1, resumedWhen: -Infinity, offeredAt: -Infinity, inflight: 0, lastSent: -Infinity, sentCommit: -1, configEpoch: -1, configVersion: -1 }
  }

  /** Leader: the membership commits once a majority of its voters hold it durably (the leader from its own write). */
  private advanceConfig (): void {
    if (this.role !== 'leader' || this.configCommittedFlag) return
    const c = this.membership
    let holders = c.voters.includes(this.id) && sameMembership(this.durableConfig, c) ? 1 : 0
    for (const [id, p] of this.progress) if (c.voters.includes(id) && p.configEpoch === c.epoch && p.configVersion === c.version) holders++
    if (holders >= this.majority()) this.configCommittedFlag = true
  }

  /** Leader: promotes a learner that holds everything committed and is within one batch of the log end. */
  private maybePromote (now: number): void {
    if (!this.changeable) return
    for (const l of this.membership.learners) {
      const p = this.progress.get(l)
      if (p === undefined || p.match < this.meta.commit || this.end - p.match > this.cfg.maxBatch) continue
      this.changeMembership([...this.membership.voters, l], this.membership.learners.filter(x => x !== l), now)
      return
    }
  }

  private maybeSendTimeoutNow (): void {
    const t = this.transfer
    if (t === undefined || t.sent) return
    const p = this.progress.get(t.to)
    if (p === undefined || p.match < this.end) return
    t.sent = true
    const message: TimeoutNow = { v: 1, type: 'timeout-now', epoch: this.meta.epoch, leader: this.id }
    this.out.push({ type: 'send', to: t.to, message })
  }

  // ---- events --------------------------------------------------------------------------------

  tick (now: number): void {
    this.lastTick = now
    if (this.role === 'leader') {
      if (this.transfer !== undefined && now >= this.transfer.until) this.transfer = undefined // abandoned: take proposals again
      this.maybePromote(now)
      if (now >= this.heartbeatAt) {
        if (!this.quorumHeard(now)) { this.stepDown(this.meta.epoch, null, now); return }
        this.broadcast(now, true)
      }
      return
    }
    if (now >= this.electionAt) {
      // A learner (or a replica removed from the membership) never campaigns.
      if (this.meta.repairing || !this.isVoter(this.id) || this.detached) { this.resetElection(now); return }
      if (this.majority() === 1) this.startElection(now); else this.startPreVote(now)
    }
  }

  /** A write issued earlier is durable. */
  durable (token: number, now: number): void {
    const done = this.afterWrite.get(token)
    if (done === undefined) return
    this.afterWrite.delete(token)
    this.durableEnd = Math.max(this.durableEnd, done.end)
    this.durableConfig = done.config
    for (const m of done.messages) this.out.push({ type: 'send', ...m })
    if (this.role === 'leader') { this.advanceCommit(now); this.advanceConfig() }
  }

  receive (from: string, message: ReplicationMessage<T>, now: number): void {
    // Anyone may ask for a vote or lead (Raft: a server outside a voter's membership may be in a newer one); only voters'
    // votes are counted and only members' answers are tracked.
    if (from === this.id) return
    this.lastTick = Math.max(this.lastTick, now)
    const pre = (message.type === 'vote' || message.type === 'vote-reply') && message.pre === true
    if (message.epoch > this.meta.epoch && !pre) {
      // A vote request from a node that cannot reach the leader must not depose a leader we hear from; unless that
      // leader itself asked for the election (a transfer).
      if (message.type === 'vote' && message.transfer !== true && (this.role === 'leader' || now - this.lastLeaderContact < this.cfg.electionMinMs)) return
      this.stepDown(message.epoch, null, now)
    }
    switch (message.type) {
      case 'vote': this.onVote(from, message, now); break
      case 'vote-reply': this.onVoteReply(from, message, now); break
      case 'append': this.onAppend(from, message, now); break
      case 'append-reply': this.onAppendReply(from, message, now); break
      case 'snapshot': this.onSnapshot(from, message, now); break
      case 'timeout-now': this.onTimeoutNow(from, message, now); break
    }
  }

  private onTimeoutNow (from: string, m: TimeoutNow, now: number): void {
    if (m.epoch !== this.meta.epoch || this.leader !== from || this.role !== 'follower' || this.meta.repairing || !this.isVoter(this.id) || this.detached) return
    this.startElection(now, true)
  }

  // ---- elections -----------------------------------------------------------------------------

  private startPreVote (now: number): void {
    this.preVoting = this.meta.epoch + 1
    this.preVotes = new Set([this.id])
    this.resetElection(now)
    const request: VoteRequest = { v: 1, type: 'vote', epoch: this.preVoting, candidate: this.id, lastEpoch: this.lastEpoch, end: this.end, pre: true, ...this.keyFields() }
    for (const to of this.others()) this.out.push({ type: 'send', to, message: request })
  }

  private startElection (now: number, transfer = false): void {
    this.preVoting = 0
    this.role = 'candidate'
    this.leader = null
    this.meta.epoch++
    this.meta.votedFor = this.id
    this.votes = new Set([this.id])
    this.resetElection(now)
    const request: VoteRequest = { v: 1, type: 'vote', epoch: this.meta.epoch, candidate: this.id, lastEpoch: this.lastEpoch, end: this.end, ...this.keyFields() }
    if (transfer) request.transfer = true
    // The vote for itself must be on disk before it asks, or a restart could vote twice in one epoch.
    this.persist({ entries: [] }, this.others().map(to => ({ to, message: request })))
    if (this.majority() === 1) this.becomeLeader(now)
  }

  private onVote (from: string, m: VoteRequest, now: number): void {
    // The log with the membership as an entry must reach at least as far as ours (see the note at the top).
    const upToDate = keyAtLeast(logKey(m.lastEpoch, m.end, m.configEpoch, m.configVersion), this.ownKey)
    if (m.pre === true) {
      // Would vote: the proposed epoch is newer, the log complete enough, and no leader heard from lately.
      const would = m.epoch > this.meta.epoch && !this.meta.repairing && this.role !== 'leader' && upToDate &&
        now - this.lastLeaderContact >= this.cfg.electionMinMs
      this.out.push({ type: 'send', to: from, message: { v: 1, type: 'vote-reply', epoch: m.epoch, granted: would, pre: true, voterEpoch: this.meta.epoch } })
      return
    }
    const grant = m.epoch === this.meta.epoch && !this.meta.repairing && this.role !== 'leader' &&
      (this.meta.votedFor === null || this.meta.votedFor === m.candidate) && upToDate
    const reply: VoteReply = { v: 1, type: 'vote-reply', epoch: this.meta.epoch, granted: grant }
    if (!grant) { this.out.push({ type: 'send', to: from, message: reply }); return }
    this.meta.votedFor = m.candidate
    this.resetElection(now)
    this.persist({ entries: [] }, [{ to: from, message: reply }])
  }

  private onVoteReply (from: string, m: VoteReply, now: number): void {
    if (m.pre === true) {
      // A voter already in our proposed epoch or later: adopt its epoch (no leader known) and ask again next time.
      if (m.voterEpoch !== undefined && m.voterEpoch > this.meta.epoch) { this.stepDown(m.voterEpoch, null, now); return }
      if (this.role === 'leader' || this.preVoting === 0 || m.epoch !== this.preVoting || !m.granted || !this.isVoter(from)) return
      this.preVotes.add(from)
      if (this.preVotes.size >= this.majority() && this.preVoting === this.meta.epoch + 1) this.startElection(now)
      return
    }
    if (this.role !== 'candidate' || m.epoch !== this.meta.epoch || !m.granted || !this.isVoter(from)) return
    this.votes.add(from)
    if (this.votes.size >= this.majority()) this.becomeLeader(now)
  }

  private becomeLeader (now: number): void {
    this.role = 'leader'
    this.leader = this.id
    // Re-stamp the tail this leader cannot prove committed with its own epoch: those entries then commit
    // by Raft's current-epoch rule as soon as a majority holds them, with no marker entry taking an offset
    // (offsets stay dense). Only this leader writes entries of this epoch, so logs still match by (offset, epoch).
    const from = this.meta.commit
    this.electedEnd = this.end
    // The membership is re-stamped too, placed after the whole log: no change is accepted before it commits in this
    // epoch (Ongaro's fix), and it commits only where the re-stamped log reached a majority.
    this.meta.config = { ...this.membership, epoch: this.meta.epoch, version: this.membership.version + 1, at: this.end }
    this.configCommittedFlag = false
    this.transfer = undefined
    if (from < this.end) {
      for (let i = from - this.base; i < this.log.length; i++) this.log[i] = { epoch: this.meta.epoch, value: this.log[i].value }
      this.persist({ truncateFrom: from, entries: this.log.slice(from - this.base) })
    } else this.persist({ entries: [] })
    this.progress.clear()
    for (const p of this.replicas) if (p !== this.id) this.progress.set(p, this.newProgress(now))
    this.broadcast(now, true)
  }

  private stepDown (epoch: number, leader: string | null, now: number): void {
    this.preVoting = 0
    const changed = epoch > this.meta.epoch
    if (changed) { this.meta.epoch = epoch; this.meta.votedFor = null }
    if (this.role !== 'follower' || changed) {
      this.role = 'follower'
      this.transfer = undefined
      this.configCommittedFlag = false
      this.progress.clear()
      this.resetElection(now)
    }
    this.leader = leader
    if (changed) this.persist({ entries: [] })
  }

  // ---- replication ---------------------------------------------------------------------------

  private onAppend (from: string, m: AppendRequest<T>, now: number): void {
    const reject = (end: number): void => {
      const reply: AppendReply = { v: 1, type: 'append-reply', epoch: this.meta.epoch, from: this.id, ok: false, end }
      this.out.push({ type: 'send', to: from, message: reply })
    }
    if (m.epoch < this.meta.epoch) { reject(this.end); return } // fenced: tells the stale leader the newer epoch
    if (this.role !== 'follower' || this.leader !== from) this.stepDown(m.epoch, from, now)
    this.lastLeaderContact = now
    this.resetElection(now)
    if (m.prev > this.end) { reject(this.end); return }
    if (this.leaderCompactable < (m.compactable ?? 0)) this.leaderCompactable = m.compactable ?? 0
    // At or below our base the log is committed and the same on every replica (its epochs may have been re-stamped
    // since, its content not): nothing to check there.
    if (m.prev > this.base && this.epochAt(m.prev - 1) !== m.prevEpoch) {
      // Back off to the start of our epoch at that point: the leader's log diverges somewhere after it.
      const e = this.epochAt(m.prev - 1)
      let i = m.prev - 1
      while (i > this.base && this.epochAt(i - 1) === e) i--
      reject(i)
      return
    }
    // Skip what we already hold with the same epoch (and what we compacted); a delayed, shorter batch must never
    // cut entries we acknowledged to this leader.
    let i = Math.max(0, this.base - m.prev)
    while (i < m.entries.length && m.prev + i < this.end && this.epochAt(m.prev + i) === m.entries[i].epoch) i++
    const matched = m.prev + m.entries.length
    let write: Omit<ReplicaWrite<T>, 'meta'> | undefined
    if (i < m.entries.length) {
      const at = m.prev + i
      const fresh = m.entries.slice(i)
      if (at < this.end) this.log.length = at - this.base
      this.log.push(...fresh)
      write = { truncateFrom: at, entries: fresh }
    }
    const commit = Math.max(this.meta.commit, Math.min(m.commit, matched))
    const groupsChanged = Object.entries(m.groups).some(([g, f]) => this.meta.groups[g] !== f)
    // The leader's membership, once our log matches its log through the point where it was written.
    const configChanged = m.config !== undefined && matched >= m.config.at && !sameMembership(m.config, this.membership)
    // Repaired once it holds the leader's commit point, and that point covers everything the leader held
    // when elected: that is every entry any earlier leader could have acknowledged.
    const repaired = this.meta.repairing && m.stable && matched >= m.commit
    if (configChanged) {
      this.meta.config = m.config
      // Entries we hold past `at` from an older epoch are not in this leader's log (it wrote everything after `at`
      // itself): Raft would cut them when the membership entry arrived at `at`, and so do we.
      if (write === undefined && this.end > matched && matched >= this.base && this.epochAt(matched) < m.config!.epoch) {
        this.log.length = matched - this.base
        write = { truncateFrom: matched, entries: [] }
      }
    }
    const reply: AppendReply = { v: 1, type: 'append-reply', epoch: this.meta.epoch, from: this.id, ok: true, end: matched, configEpoch: this.membership.epoch, configVersion: this.membership.version }
    if (write === undefined && !groupsChanged && !repaired && !configChanged && matched <= this.durableEnd) {
      // Nothing new to write. A new commit point alone is not written either: on disk it is only a hint (a recovered
      // replica relearns it from the leader), and it rides along with the next write. That spares a follower one
      // synced write per leader commit, which at a steady rate was every other write it made.
      this.meta.commit = commit
      // The membership named in the reply must be durable, or we say the previous durable one.
      if (!sameMembership(this.durableConfig, this.membership)) { reply.configEpoch = this.durableConfig.epoch; reply.configVersion = this.durableConfig.version }
      this.out.push({ type: 'send', to: from, message: reply })
      return
    }
    this.meta.commit = commit
    if (groupsChanged) this.meta.groups = { ...m.groups }
    if (repaired) this.meta.repairing = false
    this.persist(write ?? { entries: [] }, [{ to: from, message: reply }])
  }

  private onSnapshot (from: string, m: SnapshotOffer, now: number): void {
    const reply = (ok: boolean, end: number): void => {
      this.out.push({ type: 'send', to: from, message: { v: 1, type: 'append-reply', epoch: this.meta.epoch, from: this.id, ok, end } })
    }
    if (m.epoch < this.meta.epoch) { reply(false, this.end); return }
    if (this.role !== 'follower' || this.leader !== from) this.stepDown(m.epoch, from, now)
    this.lastLeaderContact = now
    this.resetElection(now)
    // Already holding everything up to the offered base: nothing to install.
    if (m.base <= this.base || (m.base <= this.end && this.epochAt(m.base - 1) === m.baseEpoch)) { reply(true, Math.min(m.base, this.durableEnd)); return }
    if (this.installing !== undefined) return
    this.installing = { token: ++this.installSeq, leader: from, epoch: m.epoch, base: m.base, baseEpoch: m.baseEpoch }
    this.out.push({ type: 'install', token: this.installing.token, from, base: m.base, baseEpoch: m.baseEpoch })
  }

  /**
   * The driver rebuilt everything below `base` (the applied log holds it now): the replica log restarts empty at
   * `base`, and the leader hears that this replica matches it there.
   */
  installed (token: number, now: number): void {
    const job = this.installing
    if (job === undefined || job.token !== token) return
    this.installing = undefined
    if (job.epoch !== this.meta.epoch) return // a newer leader came meanwhile; it will offer again if need be
    this.log = []
    this.base = job.base
    this.baseEpoch = job.baseEpoch
    this.meta.base = job.base
    this.meta.baseEpoch = job.baseEpoch
    if (this.meta.commit < job.base) this.meta.commit = job.base
    this.durableEnd = Math.min(this.durableEnd, job.base)
    const reply: AppendReply = { v: 1, type: 'append-reply', epoch: this.meta.epoch, from: this.id, ok: true, end: job.base }
    this.persist({ compactTo: job.base, truncateFrom: job.base, entries: [] }, [{ to: job.leader, message: reply }])
    this.resetElection(now)
  }

  /** The driver could not fetch the snapshot: the next offer starts again. */
  installFailed (token: number): void {
    if (this.installing?.token === token) this.installing = undefined
  }

  private onAppendReply (from: string, m: AppendReply, now: number): void {
    if (this.role !== 'leader' || m.epoch !== this.meta.epoch) return
    const p = this.progress.get(from)
    if (p === undefined) return
    p.heardAt = now
    if (p.inflight > 0) p.inflight--
    if (m.ok) {
      if (m.end > p.match) p.match = m.end
      if (p.next < p.match) p.next = p.match
      if (m.configEpoch !== undefined && m.configVersion !== undefined) { p.configEpoch = m.configEpoch; p.configVersion = m.configVersion }
      this.advanceCommit(now)
      this.advanceConfig()
      this.maybeSendTimeoutNow()
      if (this.role !== 'leader') return
      this.maybePromote(now)
      // New entries, or a commit point it has not been told (the broadcast at commit found its window full).
      if (p.next < this.end || p.sentCommit < this.meta.commit) this.sendAppend(from, p)
    } else {
      // Every pipelined batch behind a gap is refused with the same resume point: resend once per point.
      // A follower that answers below what it once matched lost entries to its disk: believe it.
      if (m.end < p.match) p.match = m.end
      const resume = Math.min(m.end, this.end)
      if (resume === p.resumedAt && now - p.resumedWhen < this.cfg.heartbeatMs) return
      p.resumedAt = resume
      p.resumedWhen = now
      p.next = resume
      this.sendAppend(from, p)
    }
  }

  private advanceCommit (now: number): void {
    // Only voters count; the leader always is one (it cannot remove itself).
    const ends = [this.durableEnd]
    for (const [id, p] of this.progress) if (this.isVoter(id)) ends.push(p.match)
    ends.sort((a, b) => b - a)
    const n = ends[this.majority() - 1]
    if (n > this.meta.commit && this.epochAt(n - 1) === this.meta.epoch) {
      this.meta.commit = n
      // The commit point is only a hint on disk (followers relearn it); it rides along with the next write.
      this.broadcast(now, false)
    }
  }

  private broadcast (now: number, heartbeat: boolean): void {
    if (this.role !== 'leader') return
    for (const [to, p] of this.progress) {
      // A heartbeat always goes; answers missing for two heartbeats were lost, so they stop holding the window.
      if (heartbeat && now - p.lastSent > 2 * this.cfg.heartbeatMs) p.inflight = 0
      this.sendAppend(to, p, heartbeat)
    }
    if (heartbeat) this.heartbeatAt = now + this.cfg.heartbeatMs
  }

  private sendAppend (to: string, p: FollowerProgress, force = false): void {
    // A follower that needs entries below the base (it was away while every other replica moved on, or its disk lost
    // them) cannot be caught up from this log: it is offered a snapshot, once per heartbeat at most.
    if (p.next < this.base) {
      if (this.lastTick - p.offeredAt < this.cfg.heartbeatMs) return
      p.offeredAt = this.lastTick
      this.out.push({ type: 'send', to, message: { v: 1, type: 'snapshot', epoch: this.meta.epoch, leader: this.id, base: this.base, baseEpoch: this.baseEpoch, commit: this.meta.commit } })
      return
    }
    if (!force && p.inflight >= this.cfg.maxInflight) return
    p.inflight++
    p.lastSent = this.lastTick
    p.sentCommit = this.meta.commit
    const entries = this.log.slice(p.next - this.base, p.next - this.base + this.cfg.maxBatch)
    const message: AppendRequest<T> = {
      v: 1,
      type: 'append',
      epoch: this.meta.epoch,
      leader: this.id,
      prev: p.next,
      prevEpoch: this.epochAt(p.next - 1),
      entries,
      commit: this.meta.commit,
      stable: this.meta.commit >= this.electedEnd,
      compactable: this.compactable,
      groups: { ...this.meta.groups },
    }
    // The membership rides along until the follower says it holds it.
    const c = this.membership
    if (p.configEpoch !== c.epoch || p.configVersion !== c.version) message.config = c
    // Pipelined: assume it arrives; a gap makes the follower answer with where to resume.
    p.next += entries.length
    this.out.push({ type: 'send', to, message })
  }

  // ---- helpers -------------------------------------------------------------------------------

  private persist (change: Omit<ReplicaWrite<T>, 'meta'>, then: Array<{ to: string, message: ReplicationMessage<T> }> = []): void {
    this.meta.end = this.end
    if (change.truncateFrom !== undefined) {
      if (change.truncateFrom < this.base) throw new GemError('INTERNAL', `replica ${this.id}: truncation at ${change.truncateFrom} below the compacted base ${this.base}`)
      // Entries from there on are replaced: earlier writes still in flight no longer vouch for them.
      this.durableEnd = Math.min(this.durableEnd, change.truncateFrom)
      for (const w of this.afterWrite.values()) w.end = Math.min(w.end, change.truncateFrom)
    }
    const token = ++this.writeSeq
    const write: ReplicaWrite<T> = { ...change, meta: { ...this.meta, groups: { ...this.meta.groups } } }
    this.afterWrite.set(token, { end: this.end, config: this.membership, messages: then })
    this.out.push({ type: 'write', token, write })
  }

  private quorumHeard (now: number): boolean {
    let heard = 1
    for (const [id, p] of this.progress) if (this.isVoter(id) && now - p.heardAt < this.cfg.electionMaxMs) heard++
    return heard >= this.majority()
  }

  private resetElection (now: number): void {
    this.electionAt = now + this.cfg.electionMinMs + Math.floor(this.random() * (this.cfg.electionMaxMs - this.cfg.electionMinMs))
  }

  /** The membership fields of a vote request: absent when it is detached (it then counts for nothing). */
  private keyFields (): { configEpoch?: number, configVersion?: number } {
    return this.detached ? {} : { configEpoch: this.membership.epoch, configVersion: this.membership.version }
  }

  private majority (): number { return Math.floor(this.membership.voters.length / 2) + 1 }
  private isVoter (id: string): boolean { return this.membership.voters.includes(id) }
  /** The voters to ask in an election. */
  private others (): string[] { return this.membership.voters.filter(r => r !== this.id) }
}
