// The mesh as a graph: server nodes and browser peers from /cluster, this page's own links from its mesh client
// (with the transport each one uses), and the server-to-server TCP mesh. Pure data; views/mesh-graph.ts draws it.
import type { LinkKind } from './colors.ts'
import type { ClusterView } from './node-api.ts'
import type { LinkTransport, PeerLink } from './mesh-client.ts'

export interface GraphNode {
  /** libp2p peer id when known (links are keyed by it), else the node id. */
  key: string
  label: string
  kind: 'server' | 'browser' | 'self'
  /** SWIM state for members of /cluster; 'connected' for peers only this page knows. */
  state: string
  load: number | null
  nodeId?: string
}

export interface GraphLink {
  source: string
  target: string
  kind: LinkKind
  /** Every transport the connection uses, for the tooltip. */
  transports: string[]
  /** The link this page's requests and deliveries from servers go over. */
  attached?: boolean
}

export interface MeshGraph { nodes: GraphNode[], links: GraphLink[] }

/** When one peer is reached over several transports, the link is drawn as the most direct one. */
const PREFERENCE: LinkTransport[] = ['webrtc', 'webrtc-direct', 'websockets', 'relayed']

export function meshGraph (cluster: ClusterView | undefined, selfId: string, peers: PeerLink[], attachedTo?: string): MeshGraph {
  const nodes = new Map<string, GraphNode>()
  nodes.set(selfId, { key: selfId, label: 'this dashboard', kind: 'self', state: 'alive', load: null })
  for (const n of cluster?.nodes ?? []) {
    const key = n.peer_id ?? n.id
    if (key === selfId) continue
    nodes.set(key, { key, label: n.id, kind: n.role === 'browser' ? 'browser' : 'server', state: n.state, load: n.load, nodeId: n.id })
  }
  const links: GraphLink[] = []
  const servers = [...nodes.values()].filter(n => n.kind === 'server' && n.state === 'alive')
  for (let i = 0; i < servers.length; i++) {
    for (let j = i + 1; j < servers.length; j++) links.push({ source: servers[i].key, target: servers[j].key, kind: 'tcp', transports: ['tcp'] })
  }
  for (const p of peers) {
    if (!nodes.has(p.id)) nodes.set(p.id, { key: p.id, label: p.id, kind: p.role, state: 'connected', load: null })
    const kind = PREFERENCE.find(t => p.transports.includes(t)) ?? 'relayed'
    links.push({ source: selfId, target: p.id, kind, transports: p.transports, ...(p.id === attachedTo ? { attached: true } : {}) })
  }
  return { nodes: [...nodes.values()], links }
}
