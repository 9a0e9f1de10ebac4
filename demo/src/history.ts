// A bounded time series of what the charts plot: per-topic publish rate and per-node load (measured and predicted),
// derived from consecutive snapshots. Keeps the last `capacity` samples; older ones fall off.
import type { MeshSnapshot } from './cluster-poller.ts'
import { predictedLoad } from './node-api.ts'

export interface TopicSummary {
  name: string
  partitions: number
  /** Messages in the topic's logs (sum of each partition's high offset). */
  messages: number
  /** Messages per second since the previous snapshot. */
  rate: number
  /** Unconsumed messages summed over the topic's consumer groups. */
  backlog: number
  groups: number
}

export class MeshHistory {
  readonly capacity: number
  /** Seconds since the epoch, one per sample (uPlot's x axis). */
  readonly times: number[] = []
  readonly topicRates = new Map<string, Array<number | null>>()
  readonly nodeLoad = new Map<string, Array<number | null>>()
  readonly nodePredicted = new Map<string, Array<number | null>>()
  private previous: { at: number, messages: Map<string, number> } | undefined
  private lastAt = 0
  topics: TopicSummary[] = []

  constructor (capacity = 120) {
    this.capacity = capacity
  }

  /** Adds a sample for a fresh snapshot; a repeated (stale) snapshot adds nothing. */
  add (s: MeshSnapshot): boolean {
    if (!s.fresh || s.at === this.lastAt) return false
    this.lastAt = s.at
    const messages = new Map<string, number>()
    const partitions = new Map<string, number>()
    for (const p of s.cluster.partitions) {
      messages.set(p.topic, (messages.get(p.topic) ?? 0) + p.offsets.high)
      partitions.set(p.topic, (partitions.get(p.topic) ?? 0) + 1)
    }
    // One group's state lives on several nodes; count each (topic, group) once, at its largest backlog.
    const backlogs = new Map<string, { backlog: number, topic: string }>()
    for (const stats of s.stats.values()) {
      for (const g of stats.groups) {
        const key = `${g.topic}\u0000${g.group}`
        if ((backlogs.get(key)?.backlog ?? -1) < g.backlog) backlogs.set(key, { backlog: g.backlog, topic: g.topic })
      }
    }
    const dt = this.previous === undefined ? 0 : (s.at - this.previous.at) / 1000
    this.topics = [...messages.keys()].sort().map(name => {
      const before = this.previous?.messages.get(name)
      // A different answering node may hold fewer records: never report a negative rate.
      const rate = before === undefined || dt <= 0 ? 0 : Math.max(0, (messages.get(name)! - before) / dt)
      const groups = [...backlogs.values()].filter(b => b.topic === name)
      return { name, partitions: partitions.get(name)!, messages: messages.get(name)!, rate, backlog: groups.reduce((n, g) => n + g.backlog, 0), groups: groups.length }
    })
    this.previous = { at: s.at, messages }

    this.times.push(s.at / 1000)
    const rates = new Map(this.topics.map(t => [t.name, t.rate]))
    this.push(this.topicRates, rates)
    const servers = s.cluster.nodes.filter(n => n.role === 'server')
    this.push(this.nodeLoad, new Map(servers.map(n => [n.id, n.load])))
    this.push(this.nodePredicted, new Map(servers.map(n => [n.id, predictedLoad(n)])))
    if (this.times.length > this.capacity) {
      this.times.shift()
      for (const series of [this.topicRates, this.nodeLoad, this.nodePredicted]) for (const v of series.values()) v.shift()
    }
    return true
  }

  /** Appends this sample's value to each series, opening new series with gaps and padding absent keys with null. */
  private push (series: Map<string, Array<number | null>>, values: Map<string, number | null>): void {
    const length = this.times.length
    for (const key of values.keys()) if (!series.has(key)) series.set(key, new Array<number | null>(length - 1).fill(null))
    for (const [key, v] of series) v.push(values.get(key) ?? null)
  }
}
