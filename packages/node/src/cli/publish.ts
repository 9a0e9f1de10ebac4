// `gem publish TOPIC [PAYLOAD]`: one message from the argument, or one per stdin line; prints each ack as a JSON line.
// Publishes one at a time so stdin order is the log order; throughput is `gem bench`'s job.
import { createInterface } from 'node:readline'
import { UsageError } from './errors.ts'
import { requestJson, resolveBaseUrl, topicPath } from './http-client.ts'

export interface PublishFlags {
  key?: string
  id?: string
  header?: string[]
  priority?: string
  json?: boolean
  url?: string
}

export async function publishCommand (topic: string, payload: string | undefined, flags: PublishFlags): Promise<number> {
  const base = resolveBaseUrl(flags.url)
  const headers = parseHeaders(flags.header ?? [])
  const priority = flags.priority === undefined ? undefined : parsePriority(flags.priority)
  const toBody = (text: string, id: string | undefined) => {
    const body: Record<string, unknown> = { payload: flags.json === true ? parseJsonPayload(text) : text }
    if (id !== undefined) body.id = id
    if (flags.key !== undefined) body.key = flags.key
    if (headers !== undefined) body.headers = headers
    if (priority !== undefined) body.priority = priority
    return body
  }
  const publish = async (body: Record<string, unknown>) => {
    const ack = await requestJson(base, `${topicPath(topic)}/messages`, { method: 'POST', body })
    process.stdout.write(JSON.stringify(ack) + '\n')
  }

  if (payload !== undefined) {
    await publish(toBody(payload, flags.id))
    return 0
  }
  // One message per non-empty line. With --id, line n gets `<id>-<n>` so a re-run of the same input is deduplicated.
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  let n = 0
  for await (const line of lines) {
    if (line.trim() === '') continue
    n++
    await publish(toBody(line, flags.id === undefined ? undefined : `${flags.id}-${n}`))
  }
  return 0
}

function parseHeaders (items: string[]): Record<string, string> | undefined {
  if (items.length === 0) return undefined
  const out: Record<string, string> = {}
  for (const item of items) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new UsageError(`--header expects key=value, got ${JSON.stringify(item)}`)
    out[item.slice(0, eq)] = item.slice(eq + 1)
  }
  return out
}

function parsePriority (raw: string): number {
  const n = Number(raw)
  if (!/^\d+$/.test(raw) || n < 1 || n > 10) throw new UsageError(`--priority expects an integer from 1 to 10, got ${JSON.stringify(raw)}`)
  return n
}

function parseJsonPayload (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new UsageError(`--json: payload is not valid JSON (${(err as Error).message})`)
  }
}
