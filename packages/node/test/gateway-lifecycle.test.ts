// Gateway shutdown: close() ends WebSocket connections with 1001 after answering in-flight publishes, ends SSE streams
// and long polls, stops accepting, and resolves; everything acked before is stored.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SseClient, WsClient, api, startTestGateway, waitFor } from './gateway-harness.ts'

test('close() answers in-flight publishes, closes sockets and streams, and stops accepting', { timeout: 60_000 }, async () => {
  const g = await startTestGateway()
  const ws: WsClient[] = []
  let sse: SseClient | undefined
  try {
    await api(g.url, 'POST', '/topics', { name: 'bye' })
    const sub = await WsClient.connect(g.wsUrl)
    const pub = await WsClient.connect(g.wsUrl)
    ws.push(sub, pub)
    await sub.request({ type: 'subscribe', topic: 'bye', client_id: 's', request_id: 's' })
    sse = await SseClient.open(g.url, '/topics/bye/events')
    const poll = api(g.url, 'POST', '/topics/bye/groups/g/pull?max=5&wait_ms=30000').catch(err => ({ status: -1, json: String(err), headers: new Headers() }))
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.groups.some((x: any) => x.group === 'g' && x.consumers > 0), 'the long poll to wait')

    const n = 500
    for (let i = 0; i < n; i++) pub.send({ type: 'publish', topic: 'bye', request_id: `b${i}`, message: { id: `b${i}`, payload: `b${i}` } })
    await waitFor(() => pub.frames.some(f => f.type === 'ack'), 'a first ack')
    await g.gateway.close()

    assert.equal((await pub.waitClosed()).code, 1001)
    assert.equal((await sub.waitClosed()).code, 1001)
    // Events written before the close may come first; then the stream ends.
    for (let i = 0; i <= n; i++) if (await sse.next() === undefined) break
    assert.equal(await sse.next(), undefined, 'the event stream ended')
    const polled = await poll
    assert.ok(polled.status === 200 || polled.status === -1, `the long poll ended (${polled.status})`)
    await assert.rejects(fetch(g.url + '/health'), 'no longer accepting')
    await g.gateway.close()

    // Every publish that was acked is stored (the broker is still open).
    const acked = pub.frames.filter(f => f.type === 'ack').map(f => f.request_id as string)
    assert.ok(acked.length > 0)
    const stored = new Set<string>()
    for (let from = 0; ;) {
      const r = await g.broker.read('bye', 0, from, 1000)
      if (r.messages.length === 0) break
      for (const m of r.messages) stored.add(m.id)
      from = r.next
    }
    for (const id of acked) assert.ok(stored.has(id), `${id} was acked and is stored`)
  } finally {
    sse?.close()
    for (const c of ws) c.close()
    await g.stop()
  }
})
