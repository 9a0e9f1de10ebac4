// Prometheus gauges of the edge peers (browsers) a node serves over /gem/1/client: how many are attached, their
// subscriptions, and how many live subscribers this node handed to a feeding browser instead of serving them itself.
import { Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { ClientService } from '@gem-mesh/core/mesh'

export function registerClientMetrics (registry: Registry, clients: Pick<ClientService, 'stats'>): void {
  const registers = [registry]
  const gauge = (name: string, help: string, value: (s: ReturnType<ClientService['stats']>) => number): void => {
    new Gauge({ name, help, registers, collect () { this.set(value(clients.stats())) } })
  }
  gauge('gem_edge_peers', 'Edge peers (browsers) attached to this node.', s => s.clients)
  gauge('gem_edge_subscriptions', 'Subscriptions of the edge peers attached to this node.', s => s.subscriptions)
  gauge('gem_edge_fed_by_browsers', 'Live subscriptions of attached edge peers fed by another browser instead of by this node.', s => s.fedByBrowsers)
}
