// Benchmark clients for the /ws protocol: a pipelined publisher, a paced publisher and subscribers.
// Every loop is bounded in count and in time.
import WebSocket from 'ws'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * Distinct random payloads to cycle through. Constant payloads would let LevelDB's block
 * compression shrink the log and flatter every disk figure; 1024 x 256 B outspans its window.
 */
export function payloadPool (bytes: number, count = 1024): string[] {
  const pool: string[] = []
  for (let i = 0; i < count; i++) {
    let s = ''
    for (let j = 0; j < bytes; j++) s += ALPHABET[Math.floor(Math.random() * 64)]
    pool.push(s)
  }
  return pool
}

export async function connect (httpUrl: string): Promise<WebSocket> {
  const ws = new WebSocket(httpUrl.replace(/^http/, 'ws') + '/ws', { perMessageDeflate: false })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  return ws
}

/** Publishes `count` messages with up to `window` unacknowledged; resolves with acked msg/s. */
export async function pipelinedPublish (httpUrl: string, topic: string, count: number, payloadBytes: number, window: number, timeLimitMs: number): Promise<{ acked: number, seconds: number, rate: number }> {
  const ws = await connect(httpUrl)
  const pool = payloadPool(payloadBytes)
  let sent = 0
  let acked = 0
  const started = performance.now()
  const deadline = started + timeLimitMs
  await new Promise<void>((resolve, reject) => {
    ws.on('message', raw => {
      const s = String(raw)
      if (s.includes('"type":"error"')) { reject(new Error(s)); return }
      if (s.startsWith('{"type":"ack"') || s.includes('"type":"ack"')) {
        acked++
        if (acked >= count || performance.now() > deadline) { resolve(); return }
        fill()
      }
    })
    ws.once('close', () => resolve())
    const fill = (): void => {
      while (sent < count && sent - acked < window) {
        ws.send(`{"type":"publish","topic":"${topic}","request_id":"r${sent}","message":{"payload":"${pool[sent & 1023]}"}}`)
        sent++
      }
    }
    fill()
  })
  const seconds = (performance.now() - started) / 1000
  ws.close()
  return { acked, seconds, rate: acked / seconds }
}

/** Subscribes `n` sockets to `topic`; `onEvent` sees each raw event frame. */
export async function subscribers (httpUrl: string, topic: string, n: number, onEvent: (raw: string, idx: number) => void): Promise<WebSocket[]> {
  return await rawSubscribers(httpUrl, topic, n, (frame, i) => onEvent(String(frame), i))
}

const EVENT_PREFIX = Buffer.from('{"type":"event"')

/**
 * Like subscribers(), for latency measurement: `onEvent` gets each event frame as the Buffer ws read it, with no
 * string made of it. Event frames are recognised by their first bytes, as both GEM and the baseline send them.
 */
export async function rawSubscribers (httpUrl: string, topic: string, n: number, onEvent: (frame: Buffer, idx: number) => void): Promise<WebSocket[]> {
  const out: WebSocket[] = []
  for (let i = 0; i < n; i++) {
    const ws = await connect(httpUrl)
    await new Promise<void>((resolve, reject) => {
      ws.on('message', raw => {
        const b = raw as Buffer
        if (b.length > EVENT_PREFIX.length && b.compare(EVENT_PREFIX, 0, EVENT_PREFIX.length, 0, EVENT_PREFIX.length) === 0) { onEvent(b, i); return }
        const s = String(raw)
        if (s.includes('"type":"event"')) onEvent(b, i)
        else if (s.includes('"request_id":"sub"')) { if (s.includes('"type":"error"')) reject(new Error(s)); else resolve() }
      })
      ws.send(JSON.stringify({ type: 'subscribe', topic, client_id: `bench-${i}`, request_id: 'sub' }))
    })
    out.push(ws)
  }
  return out
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}
