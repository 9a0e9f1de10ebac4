// This node's load, as membership gossips it: publish and delivery rates, group backlog, event-loop lag and
// utilization since the previous sample. Node-specific (perf_hooks); the core only sees the numbers.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { Broker } from '@gem-mesh/core'
import type { LoadSample } from '@gem-mesh/core/mesh'

export interface LoadSampler {
  sample(): LoadSample
  stop(): void
}

export function startLoadSampler (broker: Broker, weight = 1): LoadSampler {
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  let elu = performance.eventLoopUtilization()
  let last = { at: performance.now(), published: broker.stats().published, delivered: broker.stats().delivered }
  return {
    sample () {
      const now = performance.now()
      const stats = broker.stats()
      const seconds = Math.max(0.001, (now - last.at) / 1000)
      const nextElu = performance.eventLoopUtilization()
      const utilization = performance.eventLoopUtilization(nextElu, elu).utilization
      const lag = delay.count > 0 ? Math.max(0, delay.percentile(99) / 1e6 - 10) : 0
      const report: LoadSample = {
        publishRate: Math.max(0, (stats.published - last.published) / seconds),
        deliveryRate: Math.max(0, (stats.delivered - last.delivered) / seconds),
        backlog: stats.groups.reduce((sum, g) => sum + g.backlog, 0),
        // monitorEventLoopDelay counts the sampling resolution itself as delay; what is above it is lag.
        eventLoopLagMs: Number.isFinite(lag) ? lag : 0,
        utilization: Number.isFinite(utilization) ? utilization : 0,
        weight,
      }
      elu = nextElu
      last = { at: now, published: stats.published, delivered: stats.delivered }
      delay.reset()
      return report
    },
    stop () { delay.disable() },
  }
}
