// Polls the mesh's control view: /cluster from the serving node (or, while it is down, any other server node it
// listed) and /stats from every alive server node. Keeps the last good snapshot, so the views stay up while offline.
import { fetchCluster, fetchStats } from './node-api.ts'
import type { ClusterView, NodeStats } from './node-api.ts'

export interface MeshSnapshot {
  /** Date.now() of the poll that produced it. */
  at: number
  cluster: ClusterView
  /** /stats per node id, for the nodes that answered. */
  stats: Map<string, NodeStats>
  /** The gateway that answered /cluster. */
  source: string
  /** False when the latest poll reached no node: this is the last snapshot that did. */
  fresh: boolean
}

export type SnapshotListener = (s: MeshSnapshot) => void

export class ClusterPoller {
  private readonly home: string
  private readonly intervalMs: number
  private readonly listeners = new Set<SnapshotListener>()
  private known: string[] = []
  private last: MeshSnapshot | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private stopped = false

  constructor (home: string, intervalMs = 1_000) {
    this.home = home
    this.intervalMs = intervalMs
  }

  get snapshot (): MeshSnapshot | undefined { return this.last }

  onSnapshot (fn: SnapshotListener): () => void {
    this.listeners.add(fn)
    if (this.last !== undefined) fn(this.last)
    return () => this.listeners.delete(fn)
  }

  start (): void { void this.tick() }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private async tick (): Promise<void> {
    const next = await this.poll()
    if (next !== undefined) this.last = next
    else if (this.last !== undefined) this.last = { ...this.last, fresh: false }
    if (this.last !== undefined) for (const fn of this.listeners) fn(this.last)
    if (!this.stopped) this.timer = setTimeout(() => { void this.tick() }, this.intervalMs)
  }

  /** The serving node first, then the other server nodes it listed last time. */
  private async poll (): Promise<MeshSnapshot | undefined> {
    for (const source of [this.home, ...this.known.filter(u => u !== this.home)]) {
      const cluster = await fetchCluster(source).catch(() => undefined)
      if (cluster === undefined) continue
      const servers = cluster.nodes.filter(n => n.role === 'server' && n.state === 'alive' && n.http_url !== null)
      this.known = cluster.nodes.flatMap(n => n.role === 'server' && n.http_url !== null ? [n.http_url] : [])
      const stats = new Map<string, NodeStats>()
      await Promise.all(servers.map(async n => {
        const s = await fetchStats(n.http_url!).catch(() => undefined)
        if (s !== undefined) stats.set(n.id, s)
      }))
      return { at: Date.now(), cluster, stats, source, fresh: true }
    }
    return undefined
  }
}
