// This node's load, as membership gossips it (publish and delivery rates, group backlog, event-loop lag and utilization
// since the previous sample), plus what only prediction reads: payload bytes a second and open client connections.
// Node-specific (perf_hooks); the core only sees the numbers.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { Broker } from '@gem-mesh/core'
import type { LoadSample } from '@gem-mesh/core/mesh'

/** A load sample with the features that stay on this node (membership gossips only the LoadSample fields). */
export interface NodeLoadSample extends LoadSample {
  /** Payload bytes published and delivered a second. */
  readonly bytesRate: number
  /** Client connections open now: WebSockets, SSE streams and edge peers on /gem/1/client. */
  readonly connections: number
}

export interface LoadSampler {
  sample(): NodeLoadSample
  stop(): void
}

export function startLoadSampler (broker: Broker, connections: () => number = () => 0, weight = 1): LoadSampler {
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  let elu = performance.eventLoopUtilization()
  const first = broker.stats()
  let last = { at: performance.now(), published: first.published, delivered: first.delivered, bytes: first.publishedBytes + first.deliveredBytes }
  return {
    sample () {
      const now = performance.now()
      const stats = broker.stats()
      const seconds = Math.max(0.001, (now - last.at) / 1000)
      const nextElu = performance.eventLoopUtilization()
      const utilization = performance.eventLoopUtilization(nextElu, elu).utilization
      const lag = delay.count > 0 ? Math.max(0, delay.percentile(99) / 1e6 - 10) : 0
      const bytes = stats.publishedBytes + stats.deliveredBytes
      const report: NodeLoadSample = {
        publishRate: Math.max(0, (stats.published - last.published) / seconds),
        deliveryRate: Math.max(0, (stats.delivered - last.delivered) / seconds),
        backlog: stats.groups.reduce((sum, g) => sum + g.backlog, 0),
        // monitorEventLoopDelay counts the sampling resolution itself as delay; what is above it is lag.
        eventLoopLagMs: Number.isFinite(lag) ? lag : 0,
        utilization: Number.isFinite(utilization) ? utilization : 0,
        weight,
        bytesRate: Math.max(0, (bytes - last.bytes) / seconds),
        connections: Math.max(0, connections()),
      }
      elu = nextElu
      last = { at: now, published: stats.published, delivered: stats.delivered, bytes }
      delay.reset()
      return report
    },
    stop () { delay.disable() },
  }
}
