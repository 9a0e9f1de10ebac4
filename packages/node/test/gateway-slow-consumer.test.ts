// Slow WebSocket subscribers: a client that stops reading is closed with 1013 under `disconnect`, and under
// `drop_oldest` stays connected while its oldest events are dropped and counted. Publishers are never affected.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { WsClient, api, startTestGateway, waitFor } from './gateway-harness.ts'
import type { TestGateway } from './gateway-harness.ts'

const LIMIT = 64 * 1024
const PAYLOAD = 'x'.repeat(4096)

/** The client's TCP socket: pausing it stops reading, so the server's send buffer fills. */
function socketOf (c: WsClient): Socket {
  return (c.ws as unknown as { _socket: Socket })._socket
}

/** Publishes over REST in batches until `done()` holds; bounded in count and time. */
async function publishUntil (g: TestGateway, topic: string, done: () => boolean | Promise<boolean>, what: string): Promise<number> {
  let sent = 0
  const deadline = Date.now() + 30_000
  while (!(await done())) {
    if (Date.now() > deadline || sent > 200_000) throw new Error(`gave up publishing after ${sent} messages waiting for ${what}`)
    // 10 x 4 KiB per request stays below LIMIT: a subscriber that reads never crosses it in one burst.
    const batch = Array.from({ length: 10 }, () => ({ payload: PAYLOAD }))
    assert.equal((await api(g.url, 'POST', `/topics/${topic}/messages`, batch)).status, 201)
    sent += batch.length
  }
  return sent
}

async function metric (g: TestGateway, name: string): Promise<number> {
  const text = await (await fetch(g.url + '/metrics')).text()
  const line = text.split('\n').find(l => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
}

describe('gateway slow consumers', () => {
  test('disconnect: a subscriber that never reads is told SLOW_CONSUMER and closed with 1013', { timeout: 60_000 }, async () => {
    const g = await startTestGateway({ slowConsumer: { policy: 'disconnect', maxBufferedBytes: LIMIT } })
    const clients: WsClient[] = []
    try {
      await api(g.url, 'POST', '/topics', { name: 'firehose' })
      const slow = await WsClient.connect(g.wsUrl)
      const fast = await WsClient.connect(g.wsUrl)
      clients.push(slow, fast)
      await slow.request({ type: 'subscribe', topic: 'firehose', client_id: 'slow', request_id: 's' })
      await fast.request({ type: 'subscribe', topic: 'firehose', client_id: 'fast', request_id: 'f' })
      socketOf(slow).pause()
      const sent = await publishUntil(g, 'firehose', async () => await metric(g, 'gem_slow_consumer_disconnects_total') >= 1, 'the slow-consumer disconnect')

      // The server gave up on it; once the client reads again it finds the error and the 1013 close.
      socketOf(slow).resume()
      const closed = await slow.waitClosed()
      assert.equal(closed.code, 1013)
      const err = slow.frames.find(f => f.type === 'error')
      assert.equal(err?.error.code, 'SLOW_CONSUMER')

      // The reading subscriber got everything, in order; the server keeps serving.
      await waitFor(() => fast.frames.filter(f => f.type === 'event').length === sent, `all ${sent} events at the fast subscriber`, 30_000)
      const offsets = fast.frames.filter(f => f.type === 'event').map(f => f.message.offset)
      offsets.forEach((o, i) => assert.equal(o, i))
      assert.equal(fast.closed, undefined)
      assert.equal((await api(g.url, 'GET', '/health')).status, 200)
      const stored = await api(g.url, 'GET', '/topics/firehose')
      assert.equal(stored.json.offsets[0].high, sent, 'every publish was stored')
    } finally {
      for (const c of clients) c.close()
      await g.stop()
    }
  })

  test('drop_oldest: a subscriber that stops reading stays connected, old events are dropped and counted', { timeout: 60_000 }, async () => {
    const g = await startTestGateway({ slowConsumer: { policy: 'drop_oldest', maxBufferedBytes: LIMIT } })
    const clients: WsClient[] = []
    try {
      await api(g.url, 'POST', '/topics', { name: 'ticker' })
      const slow = await WsClient.connect(g.wsUrl)
      const fast = await WsClient.connect(g.wsUrl)
      clients.push(slow, fast)
      await slow.request({ type: 'subscribe', topic: 'ticker', client_id: 'slow', request_id: 's' })
      await fast.request({ type: 'subscribe', topic: 'ticker', client_id: 'fast', request_id: 'f' })
      socketOf(slow).pause()
      const sent = await publishUntil(g, 'ticker', async () => await metric(g, 'gem_slow_consumer_dropped_events_total') > 0, 'events to be dropped')

      socketOf(slow).resume()
      const info = await slow.next(f => f.type === 'info' && typeof f.dropped === 'number', 'the dropped-events info', 30_000)
      assert.ok(info.dropped > 0)
      assert.match(info.msg, /dropped \d+ events/)
      // Publish one more: it arrives, so the connection is alive and current.
      const last = await api(g.url, 'POST', '/topics/ticker/messages', { payload: 'the last one' })
      const ev = await slow.next(f => f.type === 'event' && f.message.offset === last.json.offset, 'the newest event', 30_000)
      assert.equal(ev.message.payload, 'the last one')
      assert.equal(slow.closed, undefined)

      const events = slow.frames.filter(f => f.type === 'event').length + 1
      const dropped = slow.frames.filter(f => f.type === 'info' && typeof f.dropped === 'number').reduce((n, f) => n + f.dropped, info.dropped)
      assert.ok(events < sent + 1, 'some events were dropped')
      assert.equal(events + dropped, sent + 1, 'every event was either delivered or counted as dropped')
      assert.equal(await metric(g, 'gem_slow_consumer_dropped_events_total'), dropped)
      // The subscriber that kept reading lost nothing.
      await waitFor(() => fast.frames.filter(f => f.type === 'event').length === sent + 1, 'every event at the reading subscriber', 30_000)
      assert.equal(fast.frames.some(f => f.type === 'info' && typeof f.dropped === 'number'), false)
    } finally {
      for (const c of clients) c.close()
      await g.stop()
    }
  })
})

