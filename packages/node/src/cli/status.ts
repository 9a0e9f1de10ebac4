// `gem status`: asks one gateway for /health, /stats, /topics and /cluster (and every node's /cluster for replica lag)
// and prints a short readable summary: counters, topics, groups, the nodes, and each partition's leader and replicas.
import { requestJson, resolveBaseUrl } from './http-client.ts'
import { field, formatDuration, formatRetention, retainedCount, table, topicsOf } from './topics.ts'

export async function statusCommand (flags: { url?: string, json?: boolean }): Promise<number> {
  const base = resolveBaseUrl(flags.url)
  const [health, stats, topicsBody, cluster] = await Promise.all([
    requestJson<unknown>(base, '/health'),
    requestJson<unknown>(base, '/stats'),
    requestJson<unknown>(base, '/topics'),
    requestJson<unknown>(base, '/cluster'),
  ])
  const topics = topicsOf(topicsBody)
  const nodes = field<ClusterNode[]>(cluster, 'nodes') ?? []
  // Each replica reports its own log end; the others' views come from their own /cluster (a node that does not answer shows '?').
  const views = await Promise.all(nodes.map(async n => n.http_url === undefined ? undefined : await requestJson<unknown>(n.http_url, '/cluster').catch(() => undefined)))
  const partitions = meshPartitions(nodes, views)
  if (flags.json === true) {
    process.stdout.write(JSON.stringify({ url: base, health, stats, topics, cluster, partitions }) + '\n')
    return 0
  }
  const out: string[] = []
  const nodeId = field<string>(health, 'node_id')
  const version = field<string>(health, 'version')
  const uptime = field<number>(health, 'uptime_s')
  out.push(`GEM ${nodeId !== undefined ? `node ${nodeId} ` : ''}at ${base}: ${field<string>(health, 'status') ?? 'unknown'}` +
    `${version !== undefined ? `, version ${version}` : ''}${uptime !== undefined ? `, up ${uptime === 0 ? '0s' : formatDuration(uptime * 1000)}` : ''}`)

  const counters = ['published', 'delivered', 'redelivered', 'dead_lettered', 'duplicates']
    .map(k => [k.replace('_', '-'), field<number>(stats, k)] as const)
    .filter(([, v]) => typeof v === 'number')
  out.push(`topics ${topics.length}  ` + counters.map(([k, v]) => `${k} ${v}`).join('  '))
  const gw = field(stats, 'gateway')
  const ws = field<number>(gw, 'ws_connections')
  const sse = field<number>(gw, 'sse_streams')
  if (ws !== undefined || sse !== undefined) out.push(`connections  websocket ${ws ?? '-'}  sse ${sse ?? '-'}`)

  if (topics.length > 0) {
    const rows = [['  TOPIC', 'PARTITIONS', 'MESSAGES', 'RETENTION']]
    for (const t of topics) rows.push([`  ${t.name}`, String(t.partitions), String(retainedCount(t)), formatRetention(t.retention)])
    out.push(table(rows).trimEnd())
  }
  const groups = field<unknown[]>(stats, 'groups') ?? []
  if (groups.length > 0) {
    const rows = [['  GROUP', 'BACKLOG', 'IN FLIGHT', 'CONSUMERS']]
    for (const g of groups) {
      const cell = (k: string) => String(field<number>(g, k) ?? '-')
      rows.push([`  ${field<string>(g, 'topic')}/${field<string>(g, 'group')}`, cell('backlog'), cell('in_flight'), cell('consumers')])
    }
    out.push(table(rows).trimEnd())
  }
  if (nodes.length > 0) {
    const rows = [['  NODE', 'STATE', 'ROLE', 'GATEWAY', 'LOAD']]
    for (const n of nodes) rows.push([`  ${n.id}`, n.state ?? '-', n.role ?? '-', n.http_url ?? '-', typeof n.load === 'number' ? n.load.toFixed(2) : '-'])
    out.push(table(rows).trimEnd())
  }
  if (partitions.length > 0) {
    const moving = partitions.some(p => p.moving !== undefined)
    const rows = [['  PARTITION', 'LEADER', 'EPOCH', 'END', 'REPLICAS (lag behind the leader)', ...(moving ? ['MOVING'] : [])]]
    for (const p of partitions) {
      rows.push([`  ${p.topic}/${p.partition}`, p.leader ?? '(election)', String(p.epoch), p.end === undefined ? '-' : String(p.end),
        p.replicas.map(r => `${r.id}${r.id === p.leader ? '*' : ''}:${r.lag ?? '?'}`).join(' '), ...(moving ? [describeMove(p.moving)] : [])])
    }
    out.push(table(rows).trimEnd())
  }
  process.stdout.write(out.join('\n') + '\n')
  return 0
}

interface ClusterNode { id: string, state?: string, role?: string, http_url?: string, load?: number | null }
interface ClusterPartition { topic: string, partition: number, leader: string | null, replicas: string[], epoch: number, offsets?: { high?: number, end?: number }, moving?: PartitionMoveStatus }

/** A replica move under way, as the partition's leader reports it in /cluster. */
export interface PartitionMoveStatus {
  step?: string
  peer?: string | null
  target?: Array<string | null>
  cause?: string
  learners: string[]
}

/** One cell: what the move does now (step and peer), why, and the replicas still catching up. */
export function describeMove (m: PartitionMoveStatus | undefined): string {
  if (m === undefined) return '-'
  const parts: string[] = []
  if (m.step !== undefined) parts.push(`${m.step}${m.peer != null ? ` ${m.peer}` : ''}${m.cause !== undefined ? ` (${m.cause})` : ''}`)
  if (m.learners.length > 0) parts.push(`learners ${m.learners.join(',')}`)
  return parts.join('; ') || '-'
}

export interface PartitionStatus {
  topic: string
  partition: number
  leader: string | null
  epoch: number
  /** The leader's log end. */
  end?: number
  replicas: Array<{ id: string, end?: number, lag?: number }>
  /** A replica move under way (the leader's view), absent when none. */
  moving?: PartitionMoveStatus
}

/** Joins every node's view of every partition: the leader's log end, and how far each replica's log end is behind it. */
export function meshPartitions (nodes: ClusterNode[], views: unknown[]): PartitionStatus[] {
  const byNode = new Map<string, Map<string, ClusterPartition>>()
  nodes.forEach((n, i) => {
    const ps = field<ClusterPartition[]>(views[i], 'partitions') ?? []
    byNode.set(n.id, new Map(ps.map(p => [`${p.topic}/${p.partition}`, p])))
  })
  const keys = new Map<string, ClusterPartition>()
  for (const m of byNode.values()) for (const [k, p] of m) if (!keys.has(k) || (p.leader !== null && keys.get(k)!.leader === null)) keys.set(k, p)
  return [...keys.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, p]) => {
    const endOf = (id: string): number | undefined => { const v = byNode.get(id)?.get(k); return v?.offsets?.end ?? v?.offsets?.high }
    const end = p.leader !== null ? endOf(p.leader) : undefined
    const moving = p.leader !== null ? byNode.get(p.leader)?.get(k)?.moving : undefined
    return {
      topic: p.topic,
      partition: p.partition,
      leader: p.leader,
      epoch: Math.max(...p.replicas.map(id => byNode.get(id)?.get(k)?.epoch ?? 0), p.epoch),
      ...(end !== undefined ? { end } : {}),
      replicas: p.replicas.map(id => { const e = endOf(id); return { id, ...(e !== undefined ? { end: e } : {}), ...(e !== undefined && end !== undefined ? { lag: Math.max(0, end - e) } : {}) } }),
      ...(moving !== undefined ? { moving: { ...moving, learners: moving.learners ?? [] } } : {}),
    }
  })
}
