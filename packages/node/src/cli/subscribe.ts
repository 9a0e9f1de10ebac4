// `gem subscribe TOPIC`: follows the gateway's SSE stream and prints one JSON line per message until stopped.
// It only reads; acknowledgement and redelivery are the gateway's side of the SSE contract.
import { GemError } from '@gem-mesh/core'
import { UsageError } from './errors.ts'
import { errorFromResponse, resolveBaseUrl, send, topicPath } from './http-client.ts'
import { readSse } from './sse.ts'

export interface SubscribeFlags {
  group?: string
  from?: string
  count?: string
  url?: string
}

/** Event types that carry no message: the stream's own bookkeeping. */
const CONTROL_EVENTS = new Set(['ready', 'ping', 'heartbeat', 'info', 'open'])

export async function subscribeCommand (topic: string, flags: SubscribeFlags, signal: AbortSignal): Promise<number> {
  const base = resolveBaseUrl(flags.url)
  const from = flags.from
  if (from !== undefined && from !== 'earliest' && from !== 'latest' && !/^\d+$/.test(from)) {
    throw new UsageError(`--from expects earliest, latest or an offset, got ${JSON.stringify(from)}`)
  }
  let remaining = Infinity
  if (flags.count !== undefined) {
    if (!/^\d+$/.test(flags.count) || Number(flags.count) < 1) throw new UsageError(`--count expects a positive integer, got ${JSON.stringify(flags.count)}`)
    remaining = Number(flags.count)
  }
  const qs = new URLSearchParams()
  if (flags.group !== undefined) qs.set('group', flags.group)
  if (from !== undefined) qs.set('from', from)
  const path = `${topicPath(topic)}/events${qs.size > 0 ? `?${qs}` : ''}`

  const stop = new AbortController()
  const onAbort = () => stop.abort()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    // A stream lives as long as the user wants it: no request timeout beyond the connect.
    const res = await send(base, path, { signal: stop.signal, timeoutMs: 2 ** 31 - 1 })
    if (!res.ok || res.body === null) throw errorFromResponse(res, await res.text())
    for await (const ev of readSse(res.body)) {
      if (ev.event === 'error') throw sseError(ev.data)
      if (CONTROL_EVENTS.has(ev.event)) continue
      process.stdout.write(normalizeLine(ev.data) + '\n')
      if (--remaining <= 0) return 0
    }
    if (signal.aborted) return 0
    throw new GemError('UNAVAILABLE', `the event stream from ${base} ended`)
  } catch (err) {
    if (signal.aborted) return 0
    throw err
  } finally {
    signal.removeEventListener('abort', onAbort)
    stop.abort()
  }
}

/** One line per message even if the server pretty-printed it. */
function normalizeLine (data: string): string {
  try {
    return JSON.stringify(JSON.parse(data))
  } catch {
    return JSON.stringify({ data })
  }
}

function sseError (data: string): GemError {
  try {
    const body = JSON.parse(data) as { error?: unknown, code?: string, message?: string }
    const code = typeof body.error === 'string' ? body.error : typeof body.code === 'string' ? body.code : 'INTERNAL'
    return new GemError(code as 'INTERNAL', body.message ?? data)
  } catch {
    return new GemError('INTERNAL', data)
  }
}
