// Partition reassignment: each partition's leader moves its replica set as the ring moves it when servers come and go,
// or one replica on a load decision, one step at a time (Kafka's order: add the new replica, let it catch up, remove the old).
import type { Clock } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { GemError } from '../errors.ts'
import { HashRing } from '../ring/hash-ring.ts'
import { assignPartitions } from '../ring/assign-partitions.ts'
import type { MeshTopic } from './mesh-broker.ts'
import type { PartitionReplicaView, ReplicationService } from './replication-service.ts'
import type { MeshTransport } from './transport.ts'

/** The leader asks a peer to host a partition as a learner, or tells a removed replica to drop its copy. */
export const MOVE_PROTOCOL = '/gem/1/move'

const te = new TextEncoder()
const td = new TextDecoder()

export interface PartitionMoverOptions {
  transport: MeshTransport
  service: ReplicationService
  /** Topic definitions (partition count, replication factor). */
  definitions: () => MeshTopic[]
  /**
   * Server peers that count for placement, this node excluded: alive ones, and dead ones still within their grace
   * period (a node that restarts quickly keeps its partitions; one gone for longer has them re-replicated).
   */
  servers: () => string[]
  /**
   * A replica set change committed on a partition this node leads: record it in the topic definition, with the server
   * set the ring placement it reached was computed over (absent: the move is not finished, keep the recorded one).
   */
  onPlaced: (topic: string, partition: number, replicas: string[], epoch: number, version: number, placedOn?: string[]) => void
  clock?: Clock
  /** On close with a hand-off: how many of the leaderships this node held moved to another voter in time. */
  onHandOff?: (handedOff: number, led: number) => void
  /** How often the leader looks for a step to take. Default 500 ms. */
  stepMs?: number
  onError?: (where: string, err: unknown) => void
}

/** One move under way, for /cluster. */
export interface PartitionMove {
  topic: string
  partition: number
  /** Where the ring wants the replicas. */
  target: string[]
  /** What this leader is doing now. */
  step: 'adding' | 'catching-up' | 'transferring' | 'removing'
  peer: string
  /** Why: the ring moved (servers came or went), or a decision on predicted load (moveReplica). */
  cause: 'ring' | 'load'
}

/** A replica move on a load decision that has not reached its target after this long is given up. */
export const LOAD_MOVE_TIMEOUT_MS = 120_000

interface HostRequest { op: 'host', topic: string, partition: number, voters: string[], learners: string[] }
interface DropRequest { op: 'drop', topic: string, partition: number }

export class PartitionMover {
  private readonly opts: PartitionMoverOptions
  private readonly clock: Clock
  private readonly onError: (where: string, err: unknown) => void
  private readonly moving = new Map<string, PartitionMove>()
  /** Partitions with a step in flight (a host request, a transfer): no second step until it ends. */
  private readonly busy = new Set<string>()
  /** Removed replicas still to be told to drop their copy: `topic/partition` -> peers. */
  private readonly drops = new Map<string, Set<string>>()
  /** Replica moves on load decisions under way (at most one): `topic/partition` -> the set they lead to. */
  private readonly loadMoves = new Map<string, { target: string[], at: number }>()
  private timer: unknown
  private closed = false

  constructor (options: PartitionMoverOptions) {
    this.opts = options
    this.clock = options.clock ?? systemClock
    this.onError = options.onError ?? (() => {})
  }

  async start (): Promise<void> {
    await this.opts.transport.handle(MOVE_PROTOCOL, (from, frame) => this.onRequest(from, frame))
    this.arm()
  }

  /**
   * Stops moving. With `handOffMs`, this node is leaving: it first hands the leadership of every partition it leads
   * to another voter (TimeoutNow), waiting at most that long, so publishes do not wait out an election timeout.
   */
  async close (handOffMs = 0): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) this.clock.clearTimer(this.timer)
    if (handOffMs > 0) await this.handOffLeaderships(handOffMs)
    await this.opts.transport.unhandle(MOVE_PROTOCOL).catch(() => {})
  }

  private async handOffLeaderships (timeoutMs: number): Promise<void> {
    const self = this.opts.transport.localPeerId
    const plans = this.plans()
    let handedOff = 0
    const handOffs = this.opts.service.views().filter(v => v.role === 'leader' && v.voters.length > 1).map(v => {
      // Prefer a voter the ring keeps for the partition; any other voter will do.
      const wanted = plans.get(`${v.topic}/${v.partition}`)?.target ?? []
      const to = wanted.find(p => p !== self && v.voters.includes(p)) ?? v.voters.find(p => p !== self)!
      return this.opts.service.transferLeadership(v.topic, v.partition, to).then(() => { handedOff++ }, err => this.onError('hand-off', err))
    })
    if (handOffs.length === 0) return
    let timer: unknown
    await Promise.race([Promise.all(handOffs), new Promise<void>(resolve => { timer = this.clock.setTimer(timeoutMs, resolve) })])
    this.clock.clearTimer(timer)
    this.opts.onHandOff?.(handedOff, handOffs.length)
  }

  /** Moves under way on partitions this node leads. */
  moves (): PartitionMove[] { return [...this.moving.values()] }

  /**
   * Moves the replica of a partition this node leads from follower `from` to `to`, on a decision on predicted load,
   * through the ring's own steps: `to` joins as a learner, catches up, is promoted, then `from` is removed; nothing
   * acknowledged is lost because a learner does not count for the majority until it has the log. One such move at a
   * time on this node; it throws UNAVAILABLE while one (or a ring move of this partition) is under way.
   *
   * An override of one partition, rather than a lower ring weight for the hot node: planPartitions applies only the
   * ring's own movement between server sets, so once this move commits the ring keeps it (it does not move the replica
   * back), and nothing else moves. A weight would move a share of every partition on the node at once, and move them
   * back when its forecast cools: two log copies per partition per crowd, for a node that had to shed one.
   */
  moveReplica (topic: string, partition: number, from: string, to: string): void {
    const key = `${topic}/${partition}`
    const self = this.opts.transport.localPeerId
    const v = this.opts.service.views().find(x => x.topic === topic && x.partition === partition)
    if (v === undefined || v.role !== 'leader') throw new GemError('NOT_LEADER', `move: this node does not lead ${key}`)
    if (this.loadMoves.size > 0) throw new GemError('UNAVAILABLE', `move: a replica move on load is under way (${[...this.loadMoves.keys()][0]})`)
    if (this.moving.has(key) || this.busy.has(key) || !v.membershipCommitted || v.learners.length > 0 || v.transferringTo !== undefined) throw new GemError('UNAVAILABLE', `move: ${key} is changing already`)
    if (from === self || !v.voters.includes(from)) throw new GemError('BAD_REQUEST', `move: ${from} is not a follower of ${key}`)
    if (v.replicas.includes(to) || !this.opts.servers().includes(to)) throw new GemError('BAD_REQUEST', `move: ${to} is not a server without a replica of ${key}`)
    this.loadMoves.set(key, { target: [...v.replicas.filter(r => r !== from), to], at: this.clock.now() })
    this.round()
  }

  /** Called with every membership change the replication service reports. */
  onMembershipChange (v: PartitionReplicaView): void {
    if (v.role !== 'leader' || !v.membershipCommitted) return
    const self = this.opts.transport.localPeerId
    const plan = this.plans().get(`${v.topic}/${v.partition}`)
    const done = plan !== undefined && sameSet(plan.target, v.replicas)
    // The leader first, so the definition names the preferred leader as the ring's lists do.
    this.opts.onPlaced(v.topic, v.partition, [self, ...v.voters.filter(x => x !== self), ...v.learners], v.membershipEpoch, v.membershipVersion, done ? plan.servers : undefined)
  }

  // ---- the leader's loop -----------------------------------------------------------------------

  private arm (): void {
    if (this.closed) return
    this.timer = this.clock.setTimer(this.opts.stepMs ?? 500, () => {
      try { this.round() } catch (err) { this.onError('move', err) }
      this.arm()
    })
  }

  private plans (): Map<string, PartitionPlan> {
    const views = new Map(this.opts.service.views().map(v => [`${v.topic}/${v.partition}`, v.replicas]))
    return planPartitions(this.opts.definitions(), [this.opts.transport.localPeerId, ...this.opts.servers()], key => views.get(key))
  }

  private round (): void {
    const plans = this.plans()
    const leading = new Set<string>()
    const defs = new Map(this.opts.definitions().map(d => [d.name, d]))
    for (const v of this.opts.service.views()) {
      const key = `${v.topic}/${v.partition}`
      if (v.role !== 'leader') { this.moving.delete(key); this.dropIfRemoved(key, v, defs.get(v.topic)); continue }
      leading.add(key)
      const target = this.loadMove(key, v) ?? plans.get(key)?.target
      if (target === undefined) continue
      this.tellDrops(key, v)
      if (this.busy.has(key)) continue
      this.step(key, v, target)
    }
    for (const key of this.moving.keys()) if (!leading.has(key)) this.moving.delete(key)
    // A leadership lost mid-move ends it: the new leader's ring plan trims the extra replica, if one was added.
    for (const key of this.loadMoves.keys()) if (!leading.has(key)) this.loadMoves.delete(key)
  }

  /** The target of the load move under way on `key`, if any; a move that landed, stalled or lost its peer ends. */
  private loadMove (key: string, v: PartitionReplicaView): string[] | undefined {
    const m = this.loadMoves.get(key)
    if (m === undefined) return undefined
    const landed = sameSet(m.target, v.replicas) && v.learners.length === 0 && v.membershipCommitted
    const gone = m.target.some(p => p !== this.opts.transport.localPeerId && !this.opts.servers().includes(p))
    if (landed || gone || this.clock.now() - m.at > LOAD_MOVE_TIMEOUT_MS) {
      this.loadMoves.delete(key)
      if (!landed) this.onError('move-load', new GemError('TIMEOUT', `move: the replica move of ${key} to ${m.target.join(',')} did not land; the ring's plan applies again`))
      return undefined
    }
    return m.target
  }

  /** Takes the next step toward `target`, if one may be taken now. */
  private step (key: string, v: PartitionReplicaView, target: string[]): void {
    const self = this.opts.transport.localPeerId
    const missing = target.filter(p => !v.replicas.includes(p))
    const extra = v.replicas.filter(p => !target.includes(p))
    if (missing.length === 0 && extra.length === 0) { this.moving.delete(key); return }
    const cause = this.loadMoves.has(key) ? 'load' : 'ring'
    const note = (step: PartitionMove['step'], peer: string): void => { this.moving.set(key, { topic: v.topic, partition: v.partition, target, step, peer, cause }) }
    if (v.transferringTo !== undefined) { note('transferring', v.transferringTo); return }
    if (!v.membershipCommitted) return
    // A learner the ring no longer wants (its node left while it caught up) goes first; the others finish catching up.
    const staleLearner = v.learners.find(l => extra.includes(l))
    if (staleLearner !== undefined) { this.remove(key, v, staleLearner); note('removing', staleLearner); return }
    if (v.learners.length > 0) { note('catching-up', v.learners[0]); return }
    if (missing.length > 0) {
      const peer = missing[0]
      note('adding', peer)
      this.busy.add(key)
      this.askToHost(peer, { op: 'host', topic: v.topic, partition: v.partition, voters: v.voters, learners: [...v.learners, peer] })
        .then(() => { this.opts.service.addReplica(v.topic, v.partition, peer) })
        .catch(err => this.onError('move-add', err))
        .finally(() => this.busy.delete(key))
      return
    }
    const leaving = extra[0]
    if (leaving === self) {
      // The leader cannot remove itself: it hands the leadership to a voter that stays, which carries on.
      const to = target.find(p => v.voters.includes(p) && p !== self)
      if (to === undefined) return
      note('transferring', to)
      this.busy.add(key)
      this.opts.service.transferLeadership(v.topic, v.partition, to)
        .catch(err => this.onError('move-transfer', err))
        .finally(() => this.busy.delete(key))
      return
    }
    this.remove(key, v, leaving)
    note('removing', leaving)
  }

  private remove (key: string, v: PartitionReplicaView, peer: string): void {
    this.opts.service.removeReplica(v.topic, v.partition, peer)
    let pending = this.drops.get(key)
    if (pending === undefined) this.drops.set(key, pending = new Set())
    pending.add(peer)
  }

  /** A removed replica drops its copy only once the membership without it has committed. */
  private tellDrops (key: string, v: PartitionReplicaView): void {
    const pending = this.drops.get(key)
    if (pending === undefined || !v.membershipCommitted) return
    for (const peer of [...pending]) {
      if (v.replicas.includes(peer)) continue // re-added meanwhile, or the removal did not take
      pending.delete(peer)
      const req: DropRequest = { op: 'drop', topic: v.topic, partition: v.partition }
      // Best effort: a replica that is down keeps its stopped copy on disk until an operator clears it.
      this.opts.transport.request(peer, MOVE_PROTOCOL, te.encode(JSON.stringify(req)), { timeoutMs: 5_000 }).catch(err => this.onError('move-drop', err))
    }
    if (pending.size === 0) this.drops.delete(key)
  }

  /**
   * A replica whose partition's committed placement (recorded by the leader once the change committed) no longer
   * lists it stops and drops its copy, in case the leader's drop request never arrived (it changed, or this node was
   * down). The placement must be at least as new as the membership this replica holds, so a replica added again
   * after that placement stays.
   */
  private dropIfRemoved (key: string, v: PartitionReplicaView, def: MeshTopic | undefined): void {
    const placed = def?.placed?.[v.partition]
    // Epoch 0: a joining replica that has not heard from the leader yet; it is not yet in any placement.
    if (placed == null || v.membershipEpoch === 0 || def!.replicas[v.partition].includes(this.opts.transport.localPeerId) || this.busy.has(key)) return
    if (placed[0] < v.membershipEpoch || (placed[0] === v.membershipEpoch && placed[1] < v.membershipVersion)) return
    this.busy.add(key)
    this.opts.service.unhost(v.topic, v.partition, true).catch(err => this.onError('move-drop', err)).finally(() => this.busy.delete(key))
  }

  private async askToHost (peer: string, req: HostRequest): Promise<void> {
    await this.opts.transport.request(peer, MOVE_PROTOCOL, te.encode(JSON.stringify(req)), { timeoutMs: 10_000 })
  }

  // ---- the other side ----------------------------------------------------------------------------

  /** Serves host and drop requests; bad input gets BAD_REQUEST and changes nothing. */
  private async onRequest (from: string, frame: Uint8Array): Promise<Uint8Array> {
    const req = parseMoveRequest(frame)
    const { service } = this.opts
    if (req.op === 'host') {
      if (!req.learners.includes(this.opts.transport.localPeerId)) throw new GemError('BAD_REQUEST', 'move: host asks this node to join, so it must be among the learners')
      const def = this.opts.definitions().find(d => d.name === req.topic)
      if (def === undefined || req.partition >= def.partitions) throw new GemError('TOPIC_NOT_FOUND', `move: ${req.topic}/${req.partition} is not known here yet`)
      await service.host(req.topic, req.partition, { voters: req.voters, learners: req.learners })
      return te.encode('{}')
    }
    // Drop: only on the word of the leader this replica knows, and only if it is not a voter there any more.
    const view = service.views().find(v => v.topic === req.topic && v.partition === req.partition)
    if (view === undefined) return te.encode('{}')
    if (view.role === 'leader' || (view.leader !== null && view.leader !== from)) throw new GemError('NOT_LEADER', `move: ${from} does not lead ${req.topic}/${req.partition} here`)
    await service.unhost(req.topic, req.partition, true)
    return te.encode('{}')
  }
}

/** Where a partition should be, and the server set that was computed over. */
export interface PartitionPlan { target: string[], servers: string[] }

/**
 * Where each partition of each replicated topic should be, given the servers that count now: its current replicas
 * (the leader's membership where `current` knows it, else the definition's), minus servers that are gone and those the
 * ring moved away since the server set its placement was made (or last moved) over, plus those the ring moved in;
 * sized to the replication factor in the ring's order. Only the ring's own movement is applied, so minimal movement
 * carries over and a placement made on load is kept. With fewer servers than the replication factor nothing is
 * planned (a replica set never shrinks). Keys are `topic/partition`.
 */
export function planPartitions (defs: readonly MeshTopic[], servers: readonly string[], current: (key: string) => readonly string[] | undefined): Map<string, PartitionPlan> {
  const now = [...new Set(servers)].sort()
  const alive = new Set(now)
  const out = new Map<string, PartitionPlan>()
  for (const def of defs) {
    if (def.replication <= 1 || now.length < def.replication) continue // single-replica topics stay where they were made
    const cache = new Map<string, Map<string, string[]>>()
    const placementOver = (over: readonly string[]): Map<string, string[]> => {
      const id = over.join(',')
      let placed = cache.get(id)
      if (placed === undefined) {
        const ring = HashRing.from(over.map(s => ({ id: s, weight: 1 })))
        const keys = Array.from({ length: def.partitions }, (_, p) => ({ key: `${def.name}/${p}` }))
        cache.set(id, placed = assignPartitions(ring, keys, { replication: Math.min(def.replication, over.length) }))
      }
      return placed
    }
    for (let p = 0; p < def.partitions; p++) {
      const key = `${def.name}/${p}`
      const replicas = current(key) ?? def.replicas[p]
      const base = def.placedOn?.[p] ?? def.servers
      const wanted = placementOver(now).get(key)!
      // An older definition without a base: only replicas on servers that are gone are replaced.
      const before = base === undefined ? wanted : placementOver([...new Set(base)].sort()).get(key)!
      const target = replicas.filter(r => alive.has(r) && !(before.includes(r) && !wanted.includes(r)))
      for (const r of wanted) if (!before.includes(r) && !target.includes(r)) target.push(r)
      while (target.length > def.replication) {
        const unwanted = target.findIndex(r => !wanted.includes(r))
        target.splice(unwanted >= 0 ? unwanted : target.length - 1, 1)
      }
      for (const r of wanted) if (target.length < def.replication && !target.includes(r)) target.push(r)
      out.set(key, { target, servers: now })
    }
  }
  return out
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every(x => b.includes(x))

function parseMoveRequest (frame: Uint8Array): HostRequest | DropRequest {
  const bad = (why: string): never => { throw new GemError('BAD_REQUEST', `move: ${why}`) }
  let o: Record<string, unknown>
  try { o = JSON.parse(td.decode(frame)) } catch { return bad('not JSON') }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return bad('not an object')
  if (typeof o.topic !== 'string' || o.topic === '' || !Number.isInteger(o.partition) || (o.partition as number) < 0) return bad('needs a topic and a partition')
  const ids = (x: unknown): x is string[] => Array.isArray(x) && x.length <= 64 && x.every(i => typeof i === 'string' && i.length > 0 && i.length <= 256)
  if (o.op === 'host') {
    if (!ids(o.voters) || o.voters.length === 0 || !ids(o.learners)) return bad('host needs voters and learners (peer ids)')
    return { op: 'host', topic: o.topic, partition: o.partition as number, voters: o.voters, learners: o.learners }
  }
  if (o.op === 'drop') return { op: 'drop', topic: o.topic, partition: o.partition as number }
  return bad('op must be host or drop')
}
