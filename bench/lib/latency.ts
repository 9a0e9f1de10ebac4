// Publish-to-delivery latency at a steady rate over /ws: the publisher and the subscriber on separate sockets,
// possibly on different nodes. The send time travels in the payload; the receiver's clock is the same machine's.
import { pacedSend, waitForCount } from './paced.ts'
import { connect, payloadPool, percentile, subscribers } from './ws-client.ts'

export async function steadyLatency (pubUrl: string, subUrl: string, topic: string, rate: number, seconds: number, payloadBytes: number): Promise<{ p50: number, p99: number, received: number }> {
  const lat: number[] = []
  const subs = await subscribers(subUrl, topic, 1, raw => {
    const i = raw.indexOf('"payload":"')
    const sentAt = Number(raw.slice(i + 11, raw.indexOf('|', i)))
    lat.push(performance.now() - sentAt)
  })
  const pub = await connect(pubUrl)
  const total = rate * seconds
  const pool = payloadPool(payloadBytes - 24)
  await pacedSend(rate, total, seq => {
    pub.send(`{"type":"publish","topic":"${topic}","request_id":"l${seq}","message":{"payload":"${performance.now().toFixed(3)}|${pool[seq & 1023]}"}}`)
  })
  await waitForCount(() => lat.length, total, 10_000)
  pub.close()
  for (const s of subs) s.close()
  lat.sort((a, b) => a - b)
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), received: lat.length }
}
