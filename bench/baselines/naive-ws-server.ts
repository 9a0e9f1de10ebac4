// Baseline for the gateway benchmarks: the naive single-process Node WebSocket broker
// (JSON, in-memory append, no fsync) that TOOLCHAIN.md measured. Same protocol subset as /ws.
import { WebSocketServer } from 'ws'
import type { WebSocket } from 'ws'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
const log = new Map<string, unknown[]>()
const subs = new Map<string, Set<WebSocket>>()

wss.on('connection', ws => {
  ws.on('message', raw => {
    const m = JSON.parse(String(raw))
    const ts = new Date().toISOString()
    if (m.type === 'publish') {
      let l = log.get(m.topic)
      if (l === undefined) { l = []; log.set(m.topic, l) }
      l.push(m.message)
      ws.send(JSON.stringify({ type: 'ack', request_id: m.request_id, topic: m.topic, status: 'ok', offset: l.length - 1, ts }))
      const event = JSON.stringify({ type: 'event', topic: m.topic, message: m.message, ts })
      for (const s of subs.get(m.topic) ?? []) s.send(event)
    } else if (m.type === 'subscribe') {
      let s = subs.get(m.topic)
      if (s === undefined) { s = new Set(); subs.set(m.topic, s) }
      s.add(ws)
      ws.once('close', () => s!.delete(ws))
      ws.send(JSON.stringify({ type: 'ack', request_id: m.request_id, topic: m.topic, status: 'ok', ts }))
    }
  })
})
wss.on('listening', () => {
  const addr = wss.address() as { port: number }
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${addr.port}` }) + '\n')
})
process.on('SIGTERM', () => process.exit(0))
