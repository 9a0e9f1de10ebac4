// Publish-to-delivery latency at a steady rate over /ws: the publisher and the subscriber on separate sockets,
// possibly on different nodes. The send time travels in the payload; the receiver's clock is the same machine's.
//
// The stream starts with `warmupSeconds` at the same rate whose messages are delivered but not counted (JIT
// compilation and the first young-generation growth of both processes happen there), then runs on without a
// pause for `seconds` of measured messages. Each measured message is stamped with performance.now() just before
// it is handed to the socket, and its latency is taken the moment its event frame reaches the subscriber's
// handler. The receive side reads the stamp straight from the frame's bytes (no string per event), so the
// client's own allocations, which its GC pauses would add to every figure, stay small.
import type WebSocket from 'ws'
import { pacedSend, waitForCount } from './paced.ts'
import { connect, payloadPool, percentile, rawSubscribers } from './ws-client.ts'

const PAYLOAD_KEY = Buffer.from('"payload":"')
const WARMUP_MARK = 0x77 // 'w'
const PIPE = 0x7c // '|'
const DOT = 0x2e

export interface LatencyResult {
  p50: number
  p99: number
  p999: number
  max: number
  received: number
  /** Warm-up messages delivered (sent before the measured ones, not counted). */
  warmup: number
}

export async function steadyLatency (pubUrl: string, subUrl: string, topic: string, rate: number, seconds: number, payloadBytes: number, warmupSeconds = 1): Promise<LatencyResult> {
  const total = Math.round(rate * seconds)
  const warm = Math.round(rate * warmupSeconds)
  const lat = new Float64Array(total)
  let received = 0
  let warmed = 0
  const subs: WebSocket[] = await rawSubscribers(subUrl, topic, 1, frame => {
    const now = performance.now()
    const i = frame.indexOf(PAYLOAD_KEY)
    if (i < 0) return
    const at = i + PAYLOAD_KEY.length
    if (frame[at] === WARMUP_MARK) { warmed++; return }
    if (received < total) lat[received++] = now - stampAt(frame, at)
  })
  const pub = await connect(pubUrl)
  const pool = payloadPool(payloadBytes - 24)
  const head = `{"type":"publish","topic":"${topic}","request_id":"l`
  await pacedSend(rate, warm + total, seq => {
    const stamp = seq < warm ? 'w' : performance.now().toFixed(3)
    pub.send(`${head}${seq}","message":{"payload":"${stamp}|${pool[seq & 1023]}"}}`)
  })
  await waitForCount(() => received, total, 10_000)
  pub.close()
  for (const s of subs) s.close()
  const sorted = Array.from(lat.subarray(0, received)).sort((a, b) => a - b)
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9), max: sorted.at(-1) ?? NaN, received, warmup: warmed }
}

/** The decimal send stamp (digits, '.', digits) at `at`, up to the '|' that ends it. */
function stampAt (b: Buffer, at: number): number {
  let int = 0
  let frac = 0
  let scale = 1
  let i = at
  for (; b[i] !== DOT && b[i] !== PIPE; i++) int = int * 10 + (b[i] - 48)
  if (b[i] === DOT) for (i++; b[i] !== PIPE; i++) { frac = frac * 10 + (b[i] - 48); scale *= 10 }
  return int + frac / scale
}
