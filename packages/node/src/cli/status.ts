// `gem status`: asks one gateway for /health, /stats and /topics and prints a short readable summary.
// Read-only; `--json` prints the three answers as they came, for scripts.
import { requestJson, resolveBaseUrl } from './http-client.ts'
import { field, formatDuration, formatRetention, retainedCount, table, topicsOf } from './topics.ts'

export async function statusCommand (flags: { url?: string, json?: boolean }): Promise<number> {
  const base = resolveBaseUrl(flags.url)
  const [health, stats, topicsBody] = await Promise.all([
    requestJson<unknown>(base, '/health'),
    requestJson<unknown>(base, '/stats'),
    requestJson<unknown>(base, '/topics'),
  ])
  const topics = topicsOf(topicsBody)
  if (flags.json === true) {
    process.stdout.write(JSON.stringify({ url: base, health, stats, topics }) + '\n')
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
  process.stdout.write(out.join('\n') + '\n')
  return 0
}
