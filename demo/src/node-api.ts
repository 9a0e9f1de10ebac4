// What the dashboard reads from server nodes over HTTP: GET /cluster, /stats and /info, typed as the gateway sends them.
// Only reads; message traffic goes through the mesh client (mesh-client.ts), never through here.

export interface LoadReport {
  publish_rate: number
  delivery_rate: number
  backlog: number
  event_loop_lag_ms: number
  utilization?: number
  weight: number
  /** Set by the load-prediction engine when it runs; absent until then. */
  predicted?: number | null
}

export interface ClusterNode {
  id: string
  peer_id: string | null
  role: 'server' | 'browser'
  http_url: string | null
  multiaddrs: string[]
  state: string
  load: number | null
  /** max(current, predicted within 30 s) as the node's prediction engine forecasts it; null while unknown. */
  predicted?: number | null
  /** The older name of `predicted`. */
  predicted_load?: number | null
  load_report?: LoadReport | null
}

export interface PartitionView {
  topic: string
  partition: number
  leader: string | null
  replicas: Array<string | null>
  epoch: number
  role?: string
  offsets: { low: number, high: number, commit?: number, end?: number }
}

/** One decision of the serving node's load-prediction engine, as GET /cluster lists them. */
export interface LoadDecision {
  at: string
  kind: 'move-leader' | 'move-replica' | 'admission' | 'placement' | string
  topic?: string
  partition?: number
  from?: string
  to?: string
  /** move-replica: the node predicted over capacity that the move relieves. */
  hot?: string
  node?: string
  credit?: number
  predictor?: string
  loads?: Record<string, number>
  prediction?: { predictor: string, current: number, predicted: number, horizon_s: number }
}

export interface ClusterView {
  nodes: ClusterNode[]
  partitions: PartitionView[]
  /** Absent on nodes without the prediction engine. */
  decisions?: LoadDecision[]
}

export interface GroupStats {
  topic: string
  group: string
  backlog: number
  in_flight: number
  consumers: number
}

export interface NodeStats {
  published: number
  delivered: number
  groups: GroupStats[]
}

export interface NodeInfo {
  node_id: string
  peer_id: string | null
  http_url: string
  ws_url: string
  multiaddrs: string[]
  config: { max_payload_bytes: number }
}

async function getJson<T> (base: string, path: string, timeoutMs = 4_000): Promise<T> {
  const res = await fetch(new URL(path, base), { signal: AbortSignal.timeout(timeoutMs), cache: 'no-store' })
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`)
  return await res.json() as T
}

export const fetchCluster = (base: string): Promise<ClusterView> => getJson(base, '/cluster')
export const fetchStats = (base: string): Promise<NodeStats> => getJson(base, '/stats')
export const fetchInfo = (base: string): Promise<NodeInfo> => getJson(base, '/info')

/** The predicted load of a node, under whichever name the gateway reports it. */
export function predictedLoad (n: ClusterNode): number | null {
  return n.predicted ?? n.predicted_load ?? n.load_report?.predicted ?? null
}
