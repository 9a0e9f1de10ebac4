// The flash-crowd simulator: a mesh of nodes with load, in virtual time (one step a second) from a seed. Placement
// by the core ring; leadership moves, replica moves and publish credit by predict/decisions.ts, fed by the given predictor.
import { HashRing } from '../ring/hash-ring.ts'
import { assignPartitions } from '../ring/assign-partitions.ts'
import { decisionLoad, DEFAULT_POLICY, admissionCredit, nodeForecastFromPartitions, planLeaderMoves, planReplicaMove } from '../predict/decisions.ts'
import type { DecisionPolicy, NodeLoad, PartitionLoad } from '../predict/decisions.ts'
import { WINDOW } from '../predict/features.ts'
import { LoadHistory } from '../predict/load-history.ts'
import type { LoadForecast, LoadPredictor } from '../predict/predictor.ts'
import { Prng } from './prng.ts'

export interface FlashCrowdOptions {
  readonly seed: number
  readonly predictor: LoadPredictor
  readonly nodes?: number
  readonly seconds?: number
  readonly policy?: DecisionPolicy
  /** Seconds from a leadership move's decision to the new leader serving (election, catch-up). */
  readonly moveDelayS?: number
  /** Seconds a node waits after starting a move before it starts another. */
  readonly moveCooldownS?: number
  /** Seconds from a replica move's decision to the old replica's removal (the new one caught up and promoted). */
  readonly replicaMoveS?: number
  /** Seconds a leader waits after a replica move landed before it starts another (one in flight per node). */
  readonly replicaCooldownS?: number
  /** False: leadership moves only (the figures before replica moves existed). */
  readonly replicaMoves?: boolean
}

export interface FlashCrowdResult {
  readonly predictor: string
  /** Sum over seconds of nodes whose demand was above policy.capacity (the operating limit). */
  readonly overloadNodeSeconds: number
  /** The same above 1 (the node cannot keep up; its queue grows). */
  readonly saturatedNodeSeconds: number
  /** Publish-to-delivery latency percentiles over every message (producer credit wait + queues + base), ms. */
  readonly p50LatencyMs: number
  readonly p99LatencyMs: number
  readonly leaderMoves: number
  readonly replicaMoves: number
  readonly admissionSeconds: number
  readonly messages: number
  readonly peakNodeLoad: number
  /** [latency ms, messages] pairs, sorted by latency: for percentiles over several runs. */
  readonly latencySamples: ReadonlyArray<readonly [number, number]>
}

interface SimPartition { topic: string, partition: number, replicas: string[], leader: string, base: number, crowd: number, queue: number, pendingLeader?: { to: string, at: number }, pendingReplica?: { from: string, to: string, at: number }, movedAt: number }

const SERVICE_S = 0.001
// A partition that just moved stays put for 30 s: no ping-pong between two nodes that take turns looking hot.
const PARTITION_MOVE_COOLDOWN_S = 30
const CREATE_TOPICS_AT_S = [150, 200]

/**
 * Runs the same seeded workload (steady topics with noise; four flash crowds on hot keys; two topics created while it
 * builds) and returns what the predictor's decisions made of it. Everything random comes from `seed`.
 */
export async function runFlashCrowdSim (options: FlashCrowdOptions): Promise<FlashCrowdResult> {
  const { seed, predictor } = options
  const policy = options.policy ?? DEFAULT_POLICY
  const nodeCount = options.nodes ?? 6
  const seconds = options.seconds ?? 800
  const moveDelay = options.moveDelayS ?? 5
  const cooldown = options.moveCooldownS ?? 5
  const replicaMoveS = options.replicaMoveS ?? 10
  const replicaCooldown = options.replicaCooldownS ?? 20
  const rng = new Prng(seed)
  const nodes = Array.from({ length: nodeCount }, (_, i) => `node-${i + 1}`)
  const history = new LoadHistory({ capacity: WINDOW + 8 })
  const partitions: SimPartition[] = []
  const nodeQueue = new Map(nodes.map(n => [n, 0]))
  const nextMoveAt = new Map(nodes.map(n => [n, 0]))
  const nextReplicaMoveAt = new Map(nodes.map(n => [n, 0]))
  const credit = new Map(nodes.map(n => [n, 1]))
  let lastForecast = new Map<string, LoadForecast>()

  const place = (topic: string, count: number, loads: Map<string, number>): void => {
    // Background load on the ring is in replica slots: a node's load (0-1) counts as that share of the topic's slots.
    const slots = count * 3
    const ring = HashRing.from(nodes.map(id => ({ id, weight: 1, load: (loads.get(id) ?? 0) * slots })))
    const placement = assignPartitions(ring, Array.from({ length: count }, (_, p) => ({ key: `${topic}/${p}` })), { replication: 3 })
    for (let p = 0; p < count; p++) {
      const replicas = placement.get(`${topic}/${p}`)!
      partitions.push({ topic, partition: p, replicas, leader: replicas[0], base: 0.01 + 0.03 * rng.next(), crowd: 0, queue: 0, movedAt: -Infinity })
    }
  }
  for (let t = 0; t < 12; t++) place(`topic-${t}`, 4, new Map())

  // Crowds: four times in the run one hot key's partition ramps up (logistic, 8-20 s) to 0.4-0.55 of a node, holds
  // for 1-2 minutes, then drains. A hot partition fits on a node; where its leader sits, and when it moves, decides.
  const crowds = [90, 270, 450, 630].map(at => ({
    topic: `topic-${rng.int(0, 11)}`, partition: rng.int(0, 3), start: at + rng.int(0, 30), rise: 8 + rng.int(0, 12), hold: 60 + rng.int(0, 60),
    height: 0.4 + 0.15 * rng.next(),
  }))
  const crowdAt = (t: number, p: SimPartition): number => {
    let sum = 0
    for (const c of crowds) {
      if (c.topic !== p.topic || c.partition !== p.partition) continue
      const dt = t - c.start
      if (dt < -c.rise) continue
      const up = 1 / (1 + Math.exp(-10 * (dt / c.rise - 0.5)))
      const down = dt <= c.rise + c.hold ? 1 : Math.exp(-(dt - c.rise - c.hold) / 40)
      sum += c.height * up * down
    }
    return sum
  }

  let overload = 0
  let saturated = 0
  let moves = 0
  let replicaMoves = 0
  let admissionSeconds = 0
  let peak = 0
  const latencies: Array<[number, number]> = []
  let messages = 0

  for (let t = 0; t < seconds; t++) {
    if (CREATE_TOPICS_AT_S.includes(t)) {
      const loads = new Map(nodes.map(n => [n, lastForecast.has(`node:${n}`) ? decisionLoad(lastForecast.get(`node:${n}`)!) : 0]))
      place(`new-topic-${t}`, 4, loads)
    }
    for (const p of partitions) if (p.pendingLeader !== undefined && p.pendingLeader.at <= t) { p.leader = p.pendingLeader.to; p.pendingLeader = undefined }
    for (const p of partitions) {
      const m = p.pendingReplica
      if (m === undefined || m.at > t) continue
      p.replicas = [...p.replicas.filter(r => r !== m.from), m.to]
      p.pendingReplica = undefined
    }

    // Offered load per partition: a slow wave, noise, the crowd. Credit of the leader's node caps what is admitted.
    const demand = new Map(nodes.map(n => [n, 0]))
    const admitted = new Float64Array(partitions.length)
    const wanted = new Float64Array(partitions.length)
    partitions.forEach((p, i) => {
      const wave = 1 + 0.2 * Math.sin(2 * Math.PI * (t / 300 + i / 7))
      const offered = Math.max(0, p.base * wave * (1 + 0.05 * (rng.next() - 0.5)) + crowdAt(t, p))
      // Producers retry what was refused with backoff: a fifth of what they hold back comes again each second.
      const a = (credit.get(p.leader) ?? 1) * (offered + 0.2 * p.queue)
      p.queue += offered - a
      wanted[i] = offered
      admitted[i] = a
      demand.set(p.leader, demand.get(p.leader)! + a)
      for (const r of p.replicas) if (r !== p.leader) demand.set(r, demand.get(r)! + a * policy.followerCost)
      // A learner catching up applies what the followers apply (its catch-up reads come from the leader's log).
      if (p.pendingReplica !== undefined) demand.set(p.pendingReplica.to, demand.get(p.pendingReplica.to)! + a * policy.followerCost)
    })

    // Each node serves 1.0 a second; what is above waits in its queue.
    const hop = new Map<string, number>()
    for (const n of nodes) {
      const d = demand.get(n)!
      // Over capacity = above the operating limit the decisions defend (policy.capacity); above 1 = saturated.
      if (d > policy.capacity) overload++
      if (d > 1) saturated++
      peak = Math.max(peak, d)
      const q = Math.max(0, nodeQueue.get(n)! + d - 1)
      nodeQueue.set(n, q)
      // One hop through a node: an M/M/1 sojourn (service time over 1 - utilization) plus its backlog's drain time.
      hop.set(n, SERVICE_S / (1 - Math.min(d, 0.98)) + q)
      history.add(`node:${n}`, { publishRate: d, deliveryRate: d, bytesRate: 0, backlog: q, consumerLag: 0, eventLoopLagMs: 0, connections: 0, load: d }, t * 1000)
    }
    partitions.forEach((p, i) => {
      const a = admitted[i]
      if (a <= 0) return
      // A publish is acknowledged once the leader and one follower (a majority of 3) have it: the faster follower counts.
      const followerHop = Math.min(...p.replicas.filter(r => r !== p.leader).map(r => hop.get(r)!))
      const producerWait = p.queue / Math.max(a, 1e-3)
      const latency = producerWait + hop.get(p.leader)! + followerHop
      const count = Math.round(a * 1000)
      latencies.push([latency, count])
      messages += count
      // The partition's series is what producers offer, refused publishes included: credit must not read as a drop.
      history.add(`partition:${p.topic}/${p.partition}`, { publishRate: a, deliveryRate: a, bytesRate: 0, backlog: p.queue, consumerLag: 0, eventLoopLagMs: 0, connections: 0, load: wanted[i] }, t * 1000)
    })

    // Decisions for the next second, on this predictor's forecasts of every node and partition.
    const keys = partitions.map(p => `partition:${p.topic}/${p.partition}`)
    const forecasts = await predictor.predict(keys.map(k => history.loads(k, WINDOW)))
    lastForecast = new Map(keys.map((k, i) => [k, forecasts[i]]))
    const allParts: PartitionLoad[] = partitions.map(p => ({ topic: p.topic, partition: p.partition, leader: p.pendingLeader?.to ?? p.leader, replicas: p.replicas, forecast: lastForecast.get(`partition:${p.topic}/${p.partition}`)! }))
    const nodeLoads: NodeLoad[] = nodes.map(n => ({ id: n, forecast: nodeForecastFromPartitions(n, demand.get(n)!, allParts, policy) }))
    for (const n of nodeLoads) lastForecast.set(`node:${n.id}`, n.forecast)
    // Partitions in a move, or led by a node that just started moves, wait for those to land.
    const settled = (i: number): boolean => partitions[i].pendingLeader === undefined && partitions[i].pendingReplica === undefined && t - partitions[i].movedAt >= PARTITION_MOVE_COOLDOWN_S
    const partLoads = allParts.filter((p, i) => settled(i) && t >= (nextMoveAt.get(p.leader) ?? 0))
    for (const d of planLeaderMoves(nodeLoads, partLoads, policy, predictor.name)) {
      if (d.kind !== 'move-leader') continue
      const p = partitions.find(x => x.topic === d.topic && x.partition === d.partition)!
      p.pendingLeader = { to: d.to, at: t + moveDelay }
      p.movedAt = t
      nextMoveAt.set(d.from, t + cooldown)
      moves++
    }
    // Each leader then decides one replica move for the partitions it leads, on the same forecasts, as a real node does
    // (prediction-service.ts): one in flight per node, then a cooldown.
    for (const n of options.replicaMoves === false ? [] : nodes) {
      if (t < nextReplicaMoveAt.get(n)!) continue
      const led = allParts.filter((p, i) => p.leader === n && settled(i))
      const d = planReplicaMove(n, nodeLoads, led, policy, predictor.name)
      if (d === undefined || d.kind !== 'move-replica') continue
      const p = partitions.find(x => x.topic === d.topic && x.partition === d.partition)!
      p.pendingReplica = { from: d.from, to: d.to, at: t + replicaMoveS }
      nextReplicaMoveAt.set(n, t + replicaMoveS + replicaCooldown)
      replicaMoves++
    }
    for (const n of nodeLoads) {
      const c = admissionCredit(n.forecast, policy, credit.get(n.id))
      credit.set(n.id, c)
      if (c < 1) admissionSeconds++
    }
  }

  latencies.sort((a, b) => a[0] - b[0])
  const pct = (q: number): number => {
    let seen = 0
    for (const [l, c] of latencies) { seen += c; if (seen >= q * messages) return l * 1000 }
    return latencies.length === 0 ? 0 : latencies[latencies.length - 1][0] * 1000
  }
  return { predictor: predictor.name, overloadNodeSeconds: overload, saturatedNodeSeconds: saturated, p50LatencyMs: pct(0.5), p99LatencyMs: pct(0.99), leaderMoves: moves, replicaMoves, admissionSeconds, messages, peakNodeLoad: peak, latencySamples: latencies.map(([l, c]) => [l * 1000, c] as const) }
}
