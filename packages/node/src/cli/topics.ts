// `gem topics [list | create NAME | delete NAME]`: topic administration through the gateway's REST surface.
// It formats what the gateway returns; validation of names and counts stays on the server.
import { UsageError } from './errors.ts'
import { requestJson, resolveBaseUrl, topicPath } from './http-client.ts'

export interface TopicView {
  name: string
  partitions: number
  replication?: number
  /** The gateway's JSON is snake_case; camelCase is accepted too. */
  retention?: { maxAgeMs?: number, maxBytes?: number, max_age_ms?: number, max_bytes?: number }
  offsets?: Array<{ partition: number, low: number, high: number }>
}

/** A field by its snake_case name (the gateway's JSON) or its camelCase name. */
export function field<T = unknown> (obj: unknown, snake: string): T | undefined {
  if (typeof obj !== 'object' || obj === null) return undefined
  const o = obj as Record<string, unknown>
  const camel = snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
  return (o[snake] ?? o[camel]) as T | undefined
}

export function topicsOf (body: unknown): TopicView[] {
  if (Array.isArray(body)) return body as TopicView[]
  const list = (body as { topics?: unknown } | undefined)?.topics
  return Array.isArray(list) ? list as TopicView[] : []
}

/** Messages retained (high - low summed over partitions). */
export function retainedCount (t: TopicView): number {
  return (t.offsets ?? []).reduce((n, o) => n + Math.max(0, o.high - o.low), 0)
}

export async function listTopicsCommand (flags: { url?: string, json?: boolean }): Promise<number> {
  const topics = topicsOf(await requestJson(resolveBaseUrl(flags.url), '/topics'))
  if (flags.json === true) {
    process.stdout.write(JSON.stringify(topics) + '\n')
    return 0
  }
  if (topics.length === 0) {
    process.stdout.write('no topics\n')
    return 0
  }
  const rows = [['TOPIC', 'PARTITIONS', 'MESSAGES', 'RETENTION']]
  for (const t of topics) rows.push([t.name, String(t.partitions), String(retainedCount(t)), formatRetention(t.retention)])
  process.stdout.write(table(rows))
  return 0
}

export interface CreateTopicFlags {
  partitions?: string
  replication?: string
  retentionMaxAgeMs?: string
  retentionMaxBytes?: string
  url?: string
}

export async function createTopicCommand (name: string, flags: CreateTopicFlags): Promise<number> {
  const body: Record<string, unknown> = { name }
  if (flags.partitions !== undefined) body.partitions = intFlag('--partitions', flags.partitions, 1)
  if (flags.replication !== undefined) body.replication = intFlag('--replication', flags.replication, 1)
  const retention: Record<string, number> = {}
  if (flags.retentionMaxAgeMs !== undefined) retention.maxAgeMs = intFlag('--retention-max-age-ms', flags.retentionMaxAgeMs, 0)
  if (flags.retentionMaxBytes !== undefined) retention.maxBytes = intFlag('--retention-max-bytes', flags.retentionMaxBytes, 0)
  if (Object.keys(retention).length > 0) body.retention = retention
  const created = await requestJson(resolveBaseUrl(flags.url), '/topics', { method: 'POST', body })
  process.stdout.write(JSON.stringify(created) + '\n')
  return 0
}

export async function deleteTopicCommand (name: string, flags: { url?: string }): Promise<number> {
  await requestJson(resolveBaseUrl(flags.url), topicPath(name), { method: 'DELETE' })
  process.stdout.write(JSON.stringify({ deleted: name }) + '\n')
  return 0
}

function intFlag (flag: string, raw: string, min: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    throw new UsageError(`${flag} expects an integer >= ${min}, got ${JSON.stringify(raw)}`)
  }
  return Number(raw)
}

export function formatRetention (r: TopicView['retention']): string {
  if (r === undefined) return '-'
  const maxAge = field<number>(r, 'max_age_ms')
  const maxBytes = field<number>(r, 'max_bytes')
  const age = maxAge === undefined || maxAge === 0 ? 'forever' : formatDuration(maxAge)
  return maxBytes !== undefined && maxBytes > 0 ? `${age}, ${formatBytes(maxBytes)}/partition` : age
}

export function formatDuration (ms: number): string {
  const units: Array<[string, number]> = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]]
  for (const [u, size] of units) if (ms >= size && ms % size === 0) return `${ms / size}${u}`
  for (const [u, size] of units) if (ms >= size) return `${(ms / size).toFixed(1)}${u}`
  return `${ms}ms`
}

export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`
}

export function table (rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map(r => (r[c] ?? '').length)))
  return rows.map(r => r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c]!)).join('  ')).join('\n') + '\n'
}
