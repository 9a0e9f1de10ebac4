// A node's load prediction loop: once a second it samples this node, its peers' gossiped loads and its partitions into
// the bounded history, forecasts them all in one predictor call and takes the decisions (credit, leadership and
// replica moves).
import type { Clock } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { toGemError } from '../errors.ts'
import { admissionCredit, decisionLoad, DEFAULT_POLICY, planLeaderMoves, planReplicaMove, predictionOf } from './decisions.ts'
import type { Decision, DecisionPolicy, NodeLoad, PartitionLoad } from './decisions.ts'
import type { LoadFeatures } from './features.ts'
import { WINDOW } from './features.ts'
import { LoadHistory } from './load-history.ts'
import type { LoadForecast, LoadPredictor } from './predictor.ts'
import type { PublishAdmission } from './publish-admission.ts'

/** A partition this node holds, as the replication layer sees it now. */
export interface HeldPartition {
  readonly topic: string
  readonly partition: number
  readonly leader: string | null
  readonly replicas: readonly string[]
  /** Replica log end: its growth per second is the partition's publish rate. */
  readonly end: number
}

export interface LoadPredictionOptions {
  readonly self: string
  readonly predictor: LoadPredictor
  /** This node's features now (its load: event-loop utilization 0-1). */
  readonly sampleSelf: () => LoadFeatures
  /** Peers' latest gossiped load (utilization 0-1), undefined while unknown. */
  readonly peers: () => ReadonlyArray<{ id: string, load: number | undefined }>
  readonly partitions: () => readonly HeldPartition[]
  /** Hands leadership of a partition this node leads to `to`; absent where the replication layer cannot. */
  readonly transferLeadership?: (topic: string, partition: number, to: string) => Promise<void>
  /**
   * Starts moving the replica of a partition this node leads from `from` to `to` (learner, catch-up, promotion, then
   * removal); throws if it cannot start now. Absent: no replica moves. Needs `movesUnderWay`.
   */
  readonly moveReplica?: (topic: string, partition: number, from: string, to: string) => void
  /** Replica-set changes under way on partitions this node leads (ring or load): replica moves wait for none. */
  readonly movesUnderWay?: () => number
  readonly admission?: PublishAdmission
  readonly policy?: DecisionPolicy
  readonly clock?: Clock
  readonly everyMs?: number
  /** Every decision, with its prediction, as it is taken (the runtime logs it). */
  readonly onDecision?: (d: TimedDecision) => void
  readonly onError?: (where: string, err: unknown) => void
}

export type TimedDecision = Decision & { readonly at: number }

const KEEP_DECISIONS = 50
/** Samples of its own load a node needs before it decides anything. */
const WARM_UP_SAMPLES = 5
/** A partition whose leadership moved stays put this long (no ping-pong between two nodes that take turns looking hot). */
const MOVE_COOLDOWN_MS = 30_000
/** After starting a replica move (which copies a log), a node waits this long before it starts another. */
export const REPLICA_MOVE_COOLDOWN_MS = 60_000

export class LoadPredictionService {
  private readonly o: LoadPredictionOptions
  private readonly clock: Clock
  private readonly policy: DecisionPolicy
  private readonly history = new LoadHistory({ capacity: WINDOW + 16 })
  private readonly forecasts = new Map<string, LoadForecast>()
  private readonly lastEnd = new Map<string, { end: number, at: number }>()
  private readonly movedAt = new Map<string, number>()
  private replicaMovedAt = -Infinity
  private readonly recent: TimedDecision[] = []
  private timer: unknown
  private running = false
  private stopped = false
  private credit = 1

  constructor (options: LoadPredictionOptions) {
    this.o = options
    this.clock = options.clock ?? systemClock
    this.policy = options.policy ?? DEFAULT_POLICY
  }

  get predictorName (): string { return this.o.predictor.name }

  start (): void { this.arm() }

  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) this.clock.clearTimer(this.timer)
  }

  /** max(current, predicted) of a node (this one or a peer), undefined before its first forecast. */
  predictedLoad (nodeId: string): number | undefined {
    const f = this.forecasts.get(`node:${nodeId}`)
    return f === undefined ? undefined : decisionLoad(f)
  }

  forecastOf (key: string): LoadForecast | undefined { return this.forecasts.get(key) }

  /** The newest decisions, oldest first. */
  decisions (): readonly TimedDecision[] { return this.recent }

  /** One round: sample, forecast, decide. Public so tests and the simulator can step it. */
  async tick (): Promise<void> {
    const now = this.clock.now()
    const self = this.o.sampleSelf()
    this.history.add(`node:${this.o.self}`, self, now)
    for (const p of this.o.peers()) if (p.load !== undefined && p.id !== this.o.self) this.history.add(`node:${p.id}`, { ...ZERO, load: p.load }, now)
    const held = this.o.partitions()
    const rates = held.map(p => this.partitionRate(p, now))
    const totalRate = rates.reduce((a, r) => a + r, 0)
    held.forEach((p, i) => {
      // A partition's load: this node's load in proportion to the partition's share of the publishes it sees.
      const load = totalRate > 0 ? self.load * rates[i] / totalRate : 0
      this.history.add(`partition:${p.topic}/${p.partition}`, { ...ZERO, publishRate: rates[i], load }, now)
    })
    this.history.prune(now)
    const keys = this.history.keys()
    const forecasts = await this.o.predictor.predict(keys.map(k => this.history.loads(k, WINDOW)))
    this.forecasts.clear()
    keys.forEach((k, i) => this.forecasts.set(k, forecasts[i]))
    this.decide(held, self.publishRate, now)
  }

  private decide (held: readonly HeldPartition[], publishRate: number, now: number): void {
    const selfForecast = this.forecasts.get(`node:${this.o.self}`)
    // A node that just started is busy loading itself: its first seconds say nothing about its producers.
    if (selfForecast === undefined || this.history.loads(`node:${this.o.self}`, WARM_UP_SAMPLES).length < WARM_UP_SAMPLES) return
    const name = this.o.predictor.name
    const credit = admissionCredit(selfForecast, this.policy, this.credit)
    if (this.o.admission !== undefined) {
      this.o.admission.setCredit(credit, publishRate)
      if (credit !== this.credit && (credit < 1 || this.credit < 1)) this.record({ kind: 'admission', node: this.o.self, credit, prediction: predictionOf(selfForecast, name), at: now })
    }
    this.credit = credit
    if (this.o.transferLeadership === undefined) return
    const nodes: NodeLoad[] = []
    for (const [k, f] of this.forecasts) if (k.startsWith('node:')) nodes.push({ id: k.slice(5), forecast: f })
    // Only partitions this node leads and that did not move lately: every node decides for its own leaderships.
    const mine: PartitionLoad[] = held
      .filter(p => p.leader === this.o.self && now - (this.movedAt.get(`${p.topic}/${p.partition}`) ?? -Infinity) >= MOVE_COOLDOWN_MS)
      .flatMap(p => {
        const f = this.forecasts.get(`partition:${p.topic}/${p.partition}`)
        return f === undefined ? [] : [{ topic: p.topic, partition: p.partition, leader: this.o.self, replicas: p.replicas, forecast: f }]
      })
    const moves = planLeaderMoves(nodes, mine, this.policy, name)
    for (const d of moves) {
      if (d.kind !== 'move-leader') continue
      this.movedAt.set(`${d.topic}/${d.partition}`, now)
      this.record({ ...d, at: now })
      this.o.transferLeadership(d.topic, d.partition, d.to).catch(err => this.o.onError?.('transfer-leadership', toGemError(err)))
    }
    // Leadership first (no copy); a replica move only in a round with none, one in flight, then a cooldown.
    if (moves.length > 0 || this.o.moveReplica === undefined || now - this.replicaMovedAt < REPLICA_MOVE_COOLDOWN_MS || (this.o.movesUnderWay?.() ?? 0) > 0) return
    const d = planReplicaMove(this.o.self, nodes, mine, this.policy, name)
    if (d === undefined || d.kind !== 'move-replica') return
    try {
      this.o.moveReplica(d.topic, d.partition, d.from, d.to)
    } catch (err) {
      this.o.onError?.('move-replica', toGemError(err))
      return
    }
    this.replicaMovedAt = now
    this.movedAt.set(`${d.topic}/${d.partition}`, now)
    this.record({ ...d, at: now })
  }

  /** Records a placement taken on these loads (the mesh broker calls it when it places a topic). */
  recordPlacement (topic: string, loads: Readonly<Record<string, number>>): void {
    this.record({ kind: 'placement', topic, loads, predictor: this.o.predictor.name, at: this.clock.now() })
  }

  private record (d: TimedDecision): void {
    this.recent.push(d)
    if (this.recent.length > KEEP_DECISIONS) this.recent.shift()
    this.o.onDecision?.(d)
  }

  private partitionRate (p: HeldPartition, now: number): number {
    const key = `${p.topic}/${p.partition}`
    const last = this.lastEnd.get(key)
    this.lastEnd.set(key, { end: p.end, at: now })
    if (last === undefined || now <= last.at) return 0
    return Math.max(0, (p.end - last.end) / ((now - last.at) / 1000))
  }

  private arm (): void {
    if (this.stopped) return
    this.timer = this.clock.setTimer(this.o.everyMs ?? 1_000, () => {
      if (this.running) { this.arm(); return }
      this.running = true
      this.tick().catch(err => this.o.onError?.('predict', err)).finally(() => { this.running = false; this.arm() })
    })
  }
}

const ZERO: LoadFeatures = { publishRate: 0, deliveryRate: 0, bytesRate: 0, backlog: 0, consumerLag: 0, eventLoopLagMs: 0, connections: 0, load: 0 }
