// The decisions taken on load forecasts, as pure functions shared by real nodes and the flash-crowd simulator:
// placement load, leadership and replica moves away from nodes predicted over capacity, publish credit before saturation.
import { HORIZONS_S } from './features.ts'
import type { LoadForecast } from './predictor.ts'

export interface DecisionPolicy {
  /** A node whose max(current, predicted) load is above this is over capacity (fraction of capacity). */
  readonly capacity: number
  /** Moves stop once the node is projected below this, and never push a receiver above it. */
  readonly target: number
  /** Producers get credit below 1 when the node's max(current, predicted) load is above this. */
  readonly admitAbove: number
  /** The lowest credit admission hands out: it slows producers, it never stops them. */
  readonly minCredit: number
  /** What a follower replica costs relative to the leader for the same partition (replication and apply). */
  readonly followerCost: number
  /** Leadership moves per node per decision round. */
  readonly maxMovesPerNode: number
}

export const DEFAULT_POLICY: DecisionPolicy = { capacity: 0.85, target: 0.7, admitAbove: 0.95, minCredit: 0.5, followerCost: 0.2, maxMovesPerNode: 4 }

/** The load placement and decisions use: the higher of what is and what is predicted. */
export function decisionLoad (f: Pick<LoadForecast, 'current' | 'peak'>): number {
  return Math.max(f.current, f.peak)
}

export interface NodeLoad { readonly id: string, readonly forecast: LoadForecast }
export interface PartitionLoad {
  readonly topic: string
  readonly partition: number
  readonly leader: string
  /** Every replica, the leader included. */
  readonly replicas: readonly string[]
  /** The partition's load on its leader (fraction of a node's capacity). */
  readonly forecast: LoadForecast
}

/** What a decision saw: shown with it in logs and GET /cluster. */
export interface DecisionPrediction {
  readonly predictor: string
  readonly current: number
  readonly predicted: number
  readonly horizonS: number
}

export type Decision =
  | { readonly kind: 'move-leader', readonly topic: string, readonly partition: number, readonly from: string, readonly to: string, readonly prediction: DecisionPrediction, readonly partitionLoad: number }
  | { readonly kind: 'move-replica', readonly topic: string, readonly partition: number, readonly from: string, readonly to: string, readonly hot: string, readonly prediction: DecisionPrediction, readonly partitionLoad: number }
  | { readonly kind: 'admission', readonly node: string, readonly credit: number, readonly prediction: DecisionPrediction }
  | { readonly kind: 'placement', readonly topic: string, readonly loads: Readonly<Record<string, number>>, readonly predictor: string }

/**
 * Leadership moves for every node over capacity: its hottest led partitions go to the follower that ends least
 * loaded, while the node stays above target, each move lowering the higher of the two nodes' loads and leaving the
 * receiver at or under target; a receiver takes one partition per round. Deterministic.
 */
export function planLeaderMoves (nodes: readonly NodeLoad[], partitions: readonly PartitionLoad[], policy: DecisionPolicy, predictor: string): Decision[] {
  const projected = new Map(nodes.map(n => [n.id, decisionLoad(n.forecast)]))
  const byId = new Map(nodes.map(n => [n.id, n]))
  const shift = 1 - policy.followerCost
  const out: Decision[] = []
  const receiving = new Set<string>()
  const hot = [...nodes].filter(n => decisionLoad(n.forecast) > policy.capacity)
    .sort((a, b) => decisionLoad(b.forecast) - decisionLoad(a.forecast) || (a.id < b.id ? -1 : 1))
  for (const node of hot) {
    const led = partitions.filter(p => p.leader === node.id)
      .sort((a, b) => decisionLoad(b.forecast) - decisionLoad(a.forecast) || a.topic.localeCompare(b.topic) || a.partition - b.partition)
    let moves = 0
    for (const p of led) {
      if (moves >= policy.maxMovesPerNode || (projected.get(node.id) ?? 0) <= policy.target) break
      const delta = decisionLoad(p.forecast) * shift
      const from = projected.get(node.id) ?? 0
      // The receiver must stay at or under target and take one partition a round (a rising partition's forecast can
      // still be short of its peak), and the move must lower the higher of the two loads.
      let best: string | undefined
      let bestMax = from
      for (const f of p.replicas) {
        if (f === node.id || !projected.has(f) || receiving.has(f)) continue
        const after = (projected.get(f) ?? 0) + delta
        if (after > policy.target) continue
        const worst = Math.max(after, from - delta)
        if (worst < bestMax) { best = f; bestMax = worst }
      }
      if (best === undefined) continue
      receiving.add(best)
      projected.set(best, (projected.get(best) ?? 0) + delta)
      projected.set(node.id, (projected.get(node.id) ?? 0) - delta)
      moves++
      const f = byId.get(node.id)!.forecast
      out.push({ kind: 'move-leader', topic: p.topic, partition: p.partition, from: node.id, to: best, partitionLoad: decisionLoad(p.forecast), prediction: predictionOf(f, predictor) })
    }
  }
  return out
}

/**
 * One replica move for a leader, for when leadership moves are not enough: of the partitions it leads (`led`), the
 * hottest that has a replica on a node predicted over capacity moves that replica to the node with the lowest
 * max(current, predicted) load that does not hold it, if that node stays at or under target. A hot follower's own
 * replica goes (it sheds the follower's share, once the follower is over capacity now); where the hot node is the leader itself and no follower can take the
 * leadership, the most loaded follower's replica goes instead, to a node that could then take the leadership whole
 * (a leader cannot remove itself, and the next round's planLeaderMoves hands the leadership to the newcomer).
 * At most one move a call (the caller keeps one in flight). Deterministic.
 */
export function planReplicaMove (leader: string, nodes: readonly NodeLoad[], led: readonly PartitionLoad[], policy: DecisionPolicy, predictor: string): Decision | undefined {
  const load = new Map(nodes.map(n => [n.id, decisionLoad(n.forecast)]))
  const byId = new Map(nodes.map(n => [n.id, n]))
  const hot = (id: string): boolean => (load.get(id) ?? 0) > policy.capacity
  const candidates: Array<{ p: PartitionLoad, from: string, hot: string, cost: number }> = []
  for (const p of led) {
    if (p.leader !== leader) continue
    const pl = decisionLoad(p.forecast)
    const followers = p.replicas.filter(r => r !== leader && load.has(r))
    // A hot follower's replica goes only once the follower is over capacity now, not just predicted to be: its own
    // leadership hand-offs act on the forecast first and cost no copy; a replica move copies a log (simulator: moving
    // on the forecast alone took 6x the replica moves for more overloaded node-seconds, 8 against 6).
    for (const f of followers) if (hot(f) && byId.get(f)!.forecast.current > policy.capacity) candidates.push({ p, from: f, hot: f, cost: pl * policy.followerCost })
    if (hot(leader) && followers.length > 0 && followers.every(f => (load.get(f) ?? 0) + pl * (1 - policy.followerCost) > policy.target)) {
      const from = [...followers].sort((a, b) => (load.get(b) ?? 0) - (load.get(a) ?? 0) || (a < b ? -1 : 1))[0]
      if (!hot(from)) candidates.push({ p, from, hot: leader, cost: pl })
    }
  }
  candidates.sort((a, b) => (load.get(b.hot) ?? 0) - (load.get(a.hot) ?? 0) || decisionLoad(b.p.forecast) - decisionLoad(a.p.forecast) ||
    a.p.topic.localeCompare(b.p.topic) || a.p.partition - b.p.partition || (a.from < b.from ? -1 : 1))
  for (const c of candidates) {
    let to: string | undefined
    for (const n of [...load.keys()].sort()) {
      if (c.p.replicas.includes(n) || (load.get(n) ?? 0) + c.cost > policy.target) continue
      if (to === undefined || (load.get(n) ?? 0) < (load.get(to) ?? 0)) to = n
    }
    if (to === undefined) continue
    return { kind: 'move-replica', topic: c.p.topic, partition: c.p.partition, from: c.from, to, hot: c.hot, partitionLoad: decisionLoad(c.p.forecast), prediction: predictionOf(byId.get(c.hot)!.forecast, predictor) }
  }
  return undefined
}

/**
 * A node's forecast as the sum of its partitions' forecasts (the leader's share in full, followers' at followerCost),
 * with `current` its measured load. Partition series do not jump when leadership moves, a node's own series does:
 * a node that just received a partition looks, to a model reading its series, like the start of a crowd.
 */
export function nodeForecastFromPartitions (nodeId: string, current: number, partitions: readonly PartitionLoad[], policy: DecisionPolicy): LoadForecast {
  const ahead = new Array<number>(HORIZONS_S.length).fill(0)
  let now = 0
  for (const p of partitions) {
    const share = p.leader === nodeId ? 1 : p.replicas.includes(nodeId) ? policy.followerCost : 0
    if (share === 0) continue
    now += share * p.forecast.current
    for (let h = 0; h < ahead.length; h++) ahead[h] += share * p.forecast.ahead[h]
  }
  // Load the partitions do not explain (the node's own work) is carried forward as it is now.
  const rest = Math.max(0, current - now)
  let peak = current
  for (let h = 0; h < ahead.length; h++) { ahead[h] += rest; if (ahead[h] > peak) peak = ahead[h] }
  return { current, ahead, peak }
}

/**
 * Producer credit (0-1: the fraction of their rate a node admits) for a node with this forecast, after `previous`.
 * Credit looks only ADMISSION_HORIZON_S ahead: slowing producers costs latency now, so it waits until saturation
 * is near, while leadership moves (which take seconds to land) act on the whole forecast. Cut at once to what
 * keeps the node at admitAbove, given back CREDIT_STEP a second (AIMD): handing all credit back at once lets the
 * producers' held-back publishes arrive together and overload the node again.
 */
export function admissionCredit (f: LoadForecast, policy: DecisionPolicy, previous = 1): number {
  let load = f.current
  // Only a node already over capacity gets a brake from its forecast: below that, moves have time to work.
  if (f.current > policy.capacity) HORIZONS_S.forEach((h, k) => { if (h <= ADMISSION_HORIZON_S && f.ahead[k] > load) load = f.ahead[k] })
  const wanted = load <= policy.admitAbove ? 1 : Math.max(policy.minCredit, Math.min(1, policy.admitAbove / load))
  return wanted < previous ? wanted : Math.min(wanted, previous + CREDIT_STEP)
}

export const ADMISSION_HORIZON_S = 5
export const CREDIT_STEP = 0.1

/** The forecast as a decision records it: the current load, the peak predicted and when (seconds ahead). */
export function predictionOf (f: LoadForecast, predictor: string): DecisionPrediction {
  let at = 0
  for (let h = 0; h < f.ahead.length; h++) if (f.ahead[h] >= f.ahead[at]) at = h
  return { predictor, current: f.current, predicted: f.peak, horizonS: f.peak > f.current ? HORIZONS_S[at] : 0 }
}
