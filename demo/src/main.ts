// The dashboard page: finds its serving node, joins the mesh as a browser peer (window.gem), falls back to the
// node's WebSocket gateway when it cannot, and wires the views to the mesh client and the cluster poller.
import { createBrowserPeer } from '@gem-mesh/browser'
import type { BrowserPeer } from '@gem-mesh/browser'
import './style.css'
import { ClusterPoller } from './cluster-poller.ts'
import { MeshHistory } from './history.ts'
import type { MeshClient } from './mesh-client.ts'
import { meshGraph } from './mesh-graph-model.ts'
import { fetchCluster, fetchInfo } from './node-api.ts'
import { BrowserPeerClient } from './peer-client.ts'
import { DeliverySummaryView } from './views/delivery-summary.ts'
import { LiveTailView } from './views/live-tail.ts'
import { LoadView } from './views/load-view.ts'
import { DecisionsView } from './views/decisions-view.ts'
import { MeshGraphView } from './views/mesh-graph.ts'
import { PublishFormView } from './views/publish-form.ts'
import { RingView } from './views/ring-view.ts'
import { StatusBarView } from './views/status-bar.ts'
import { TopicsView } from './views/topics-view.ts'
import { WsGatewayClient } from './ws-client.ts'
import type { NodeInfo } from './node-api.ts'

declare global {
  interface Window { gem?: BrowserPeer, dashboardReady?: boolean }
}

const section = (id: string): HTMLElement => document.getElementById(id)!

/**
 * The node this page talks to: the one that served it, or `?node=http://host:port` (for the Vite dev server).
 * `?transport=gateway` skips the browser peer and uses the node's /ws.
 */
const params = new URLSearchParams(location.search)
const home = params.get('node') ?? location.origin

/** One IndexedDB cache per tab that survives its reloads: two tabs must not share one peer's journal and outbox. */
function cacheName (): string {
  let tab = sessionStorage.getItem('gem-dashboard-tab')
  if (tab === null) { tab = crypto.randomUUID().slice(0, 8); sessionStorage.setItem('gem-dashboard-tab', tab) }
  return `gem-dashboard-${tab}`
}

async function connect (info: NodeInfo): Promise<{ client: MeshClient, note?: string }> {
  if (params.get('transport') !== 'gateway') {
    try {
      // Every server node the serving node knows, so that the peer can fail over from the first moment.
      const cluster = await fetchCluster(home).catch(() => undefined)
      const others = (cluster?.nodes ?? []).flatMap(n => n.role === 'server' && n.state === 'alive' && n.http_url !== null && n.http_url !== info.http_url ? [n.http_url] : [])
      const peer = await createBrowserPeer({ bootstrap: [home, ...others], storage: 'indexeddb', name: cacheName() })
      window.gem = peer
      return { client: new BrowserPeerClient(peer) }
    } catch (err) {
      console.warn('the browser peer could not start; using the WebSocket gateway', err)
      return { client: new WsGatewayClient(info.ws_url, info.peer_id ?? info.node_id), note: `peer failed: ${(err as Error).message}` }
    }
  }
  return { client: new WsGatewayClient(info.ws_url, info.peer_id ?? info.node_id) }
}

async function main (): Promise<void> {
  const info = await fetchInfo(home)
  const { client, note } = await connect(info)
  const status = new StatusBarView(section('status'), client, note)
  const graph = new MeshGraphView(section('mesh'))
  const deliveries = new DeliverySummaryView(section('mesh'))
  const ring = new RingView(section('ring'))
  const load = new LoadView(section('load'))
  const decisions = new DecisionsView(section('load'))
  const tail = new LiveTailView(section('tail'), client)
  const publish = new PublishFormView(section('publish'), client, info.config.max_payload_bytes)
  const topics = new TopicsView(section('topics'), name => { tail.follow(name); publish.setTopic(name, true) })
  const history = new MeshHistory()
  const poller = new ClusterPoller(home)

  const redrawGraph = (): void => graph.update(meshGraph(poller.snapshot?.cluster, client.id, client.peers(), client.server))
  client.onChange(redrawGraph)
  poller.onSnapshot(s => {
    history.add(s)
    status.setSnapshot(s)
    // The cluster cards show a remembered view while no node answers: dim them so that it reads as one.
    document.body.classList.toggle('stale', !s.fresh)
    redrawGraph()
    deliveries.update(client.deliveries())
    ring.update(s.cluster)
    load.update(s.cluster, history)
    decisions.update(s.cluster.decisions)
    topics.update(history)
    const names = history.topics.map(t => t.name).filter(n => !n.endsWith('.dlq'))
    tail.setTopics(names)
    if (names.length > 0) publish.setTopic(names[0])
    window.dashboardReady = true
  })
  poller.start()
}

main().catch(err => {
  console.error(err)
  document.body.prepend(Object.assign(document.createElement('div'), { className: 'fatal', textContent: `The dashboard could not start: ${(err as Error).message}` }))
})
