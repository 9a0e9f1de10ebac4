// WebSocket /ws on a real broker and LevelDB: the documented frames (subscribe, last_n, publish, ping, unsubscribe),
// pipelined publishes, bad input that keeps the connection, oversize frames, and clients that vanish mid-flight.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { WsClient, api, startTestGateway, waitFor } from './gateway-harness.ts'
import type { TestGateway } from './gateway-harness.ts'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const MAX_PAYLOAD = 16 * 1024

async function readAll (g: TestGateway, topic: string): Promise<any[]> {
  const out: any[] = []
  let from = 0
  for (;;) {
    const r = await api(g.url, 'GET', `/topics/${topic}/messages?from=${from}&limit=1000`)
    assert.equal(r.status, 200)
    if (r.json.messages.length === 0) return out
    out.push(...r.json.messages)
    from = r.json.next
  }
}

describe('gateway WebSocket', () => {
  let g: TestGateway
  const clients: WsClient[] = []
  const connect = async (): Promise<WsClient> => {
    const c = await WsClient.connect(g.wsUrl)
    clients.push(c)
    return c
  }
  before(async () => { g = await startTestGateway({ maxPayloadBytes: MAX_PAYLOAD }) })
  after(async () => {
    for (const c of clients) c.close()
    await g?.stop()
  })

  test('connect says hello; ping answers pong with the request id', async () => {
    const c = await connect()
    const pong = await c.request({ type: 'ping', request_id: 'p1' })
    assert.deepEqual(Object.keys(pong), ['type', 'request_id', 'ts'])
    assert.equal(pong.type, 'pong')
    assert.equal(pong.request_id, 'p1')
    assert.match(pong.ts, ISO)
    const numeric = await c.request({ type: 'ping', request_id: 7 })
    assert.equal(numeric.request_id, 7)
  })

  test('subscribe acks, then events arrive; publish acks after durability with id, partition and offset', async () => {
    await api(g.url, 'POST', '/topics', { name: 'chat' })
    const sub = await connect()
    const pub = await connect()
    const ack = await sub.request({ type: 'subscribe', topic: 'chat', client_id: 'sub-1', request_id: 's1' })
    assert.equal(ack.type, 'ack')
    assert.equal(ack.topic, 'chat')
    assert.equal(ack.status, 'ok')
    assert.match(ack.ts, ISO)

    const pa = await pub.request({ type: 'publish', topic: 'chat', request_id: 'm1', message: { id: 'hello-1', payload: 'hello' } })
    assert.deepEqual({ ...pa, ts: undefined }, { type: 'ack', request_id: 'm1', topic: 'chat', status: 'ok', id: 'hello-1', partition: 0, offset: 0, ts: undefined })
    const ev = await sub.next(f => f.type === 'event')
    assert.equal(ev.topic, 'chat')
    assert.match(ev.ts, ISO)
    assert.equal(ev.message.id, 'hello-1')
    assert.equal(ev.message.payload, 'hello')
    assert.equal(ev.message.offset, 0)

    const dup = await pub.request({ type: 'publish', topic: 'chat', request_id: 'm2', message: { id: 'hello-1', payload: 'hello' } })
    assert.equal(dup.duplicate, true)
    assert.equal(dup.offset, 0)

    const json = await pub.request({ type: 'publish', topic: 'chat', request_id: 'm3', message: { payload: { temp: 21.5 }, key: 'room-1', headers: { unit: 'C' }, priority: 9 } })
    assert.equal(json.offset, 1)
    const ev2 = await sub.next(f => f.type === 'event')
    assert.deepEqual(ev2.message.payload, { temp: 21.5 })
    assert.equal(ev2.message.key, 'room-1')
    assert.deepEqual(ev2.message.headers, { unit: 'C' })
    assert.equal(ev2.message.priority, 9)
  })

  test('last_n replays the newest records before live ones, after the ack', async () => {
    await api(g.url, 'POST', '/topics', { name: 'hist' })
    for (let i = 0; i < 5; i++) await api(g.url, 'POST', '/topics/hist/messages', { payload: `h${i}` })
    const c = await connect()
    c.send({ type: 'subscribe', topic: 'hist', client_id: 'c', last_n: 2, request_id: 'sub' })
    const first = await c.next(f => f.request_id === 'sub' || f.type === 'event')
    assert.equal(first.type, 'ack', 'the ack comes before the replayed events')
    assert.equal((await c.next(f => f.type === 'event')).message.payload, 'h3')
    assert.equal((await c.next(f => f.type === 'event')).message.payload, 'h4')
    await api(g.url, 'POST', '/topics/hist/messages', { payload: 'h5' })
    assert.equal((await c.next(f => f.type === 'event')).message.payload, 'h5')
  })

  test('unsubscribe stops events; subscribing twice is one subscription', async () => {
    await api(g.url, 'POST', '/topics', { name: 'unsub' })
    const c = await connect()
    await c.request({ type: 'subscribe', topic: 'unsub', client_id: 'c', request_id: 'a' })
    await c.request({ type: 'subscribe', topic: 'unsub', client_id: 'c', request_id: 'b' })
    await api(g.url, 'POST', '/topics/unsub/messages', { payload: 'one' })
    await c.next(f => f.type === 'event')
    const u = await c.request({ type: 'unsubscribe', topic: 'unsub', client_id: 'c', request_id: 'u' })
    assert.equal(u.type, 'ack')
    await api(g.url, 'POST', '/topics/unsub/messages', { payload: 'two' })
    // A ping answered after the publish was acked proves nothing more is on its way for the old subscription.
    await c.request({ type: 'ping', request_id: 'after' })
    await api(g.url, 'POST', '/topics/unsub/messages', { payload: 'three' })
    await c.request({ type: 'ping', request_id: 'after2' })
    assert.equal(c.frames.filter(f => f.type === 'event').length, 0, 'no duplicate and no post-unsubscribe events')
    const again = await c.request({ type: 'unsubscribe', topic: 'unsub', client_id: 'c', request_id: 'u2' })
    assert.equal(again.status, 'ok')
  })

  test('pipelined publishes: all acked, stored once each, in send order', async () => {
    await api(g.url, 'POST', '/topics', { name: 'pipe' })
    const c = await connect()
    const n = 2000
    for (let i = 0; i < n; i++) c.send({ type: 'publish', topic: 'pipe', request_id: `r${i}`, message: { id: `id-${i}`, payload: `p${i}` } })
    await waitFor(() => c.frames.filter(f => f.type === 'ack').length === n, `${n} acks`, 30_000)
    const acks = new Map(c.frames.filter(f => f.type === 'ack').map(f => [f.request_id, f.offset]))
    const stored = await readAll(g, 'pipe')
    assert.equal(stored.length, n)
    stored.forEach((m, i) => {
      assert.equal(m.id, `id-${i}`)
      assert.equal(m.payload, `p${i}`)
      assert.equal(acks.get(`r${i}`), m.offset)
    })
  })

  test('bad frames answer BAD_REQUEST and keep the connection; unknown topics answer TOPIC_NOT_FOUND', async () => {
    await api(g.url, 'POST', '/topics', { name: 'strict' })
    const c = await connect()
    const expectError = async (frame: unknown, code: string, requestId: unknown, re?: RegExp): Promise<void> => {
      c.send(frame)
      const e = await c.next(f => f.type === 'error', `an error for ${JSON.stringify(frame)}`)
      assert.equal(e.error.code, code, JSON.stringify(e))
      assert.equal(e.request_id, requestId)
      assert.equal(typeof e.error.message, 'string')
      assert.match(e.ts, ISO)
      if (re !== undefined) assert.match(e.error.message, re)
    }
    await expectError('{not json', 'BAD_REQUEST', null, /JSON/)
    await expectError('[1,2]', 'BAD_REQUEST', null)
    await expectError('"just a string"', 'BAD_REQUEST', null)
    await expectError({ request_id: 'x1' }, 'BAD_REQUEST', 'x1', /type/)
    await expectError({ type: 'shout', request_id: 'x2' }, 'BAD_REQUEST', 'x2', /unknown type/)
    await expectError({ type: 'ping', request_id: { a: 1 } }, 'BAD_REQUEST', null, /request_id/)
    await expectError({ type: 'subscribe', request_id: 'x3' }, 'BAD_REQUEST', 'x3', /topic/)
    await expectError({ type: 'subscribe', topic: 'strict', client_id: 5, request_id: 'x4' }, 'BAD_REQUEST', 'x4', /client_id/)
    await expectError({ type: 'subscribe', topic: 'strict', last_n: -1, request_id: 'x5' }, 'BAD_REQUEST', 'x5', /last_n/)
    await expectError({ type: 'subscribe', topic: 'nope', request_id: 'x6' }, 'TOPIC_NOT_FOUND', 'x6')
    await expectError({ type: 'subscribe', topic: 'bad/name', request_id: 'x7' }, 'BAD_REQUEST', 'x7', /topic name/)
    await expectError({ type: 'unsubscribe', request_id: 'x8' }, 'BAD_REQUEST', 'x8', /topic/)
    await expectError({ type: 'publish', topic: 'strict', request_id: 'x9' }, 'BAD_REQUEST', 'x9', /message/)
    await expectError({ type: 'publish', topic: 'strict', message: {}, request_id: 'x10' }, 'BAD_REQUEST', 'x10', /message\.payload/)
    await expectError({ type: 'publish', topic: 'strict', message: { payload: 'a', priority: 'x' }, request_id: 'x11' }, 'BAD_REQUEST', 'x11', /message\.priority/)
    await expectError({ type: 'publish', topic: 'strict', message: { payload: 'a', headers: { n: 1 } }, request_id: 'x12' }, 'BAD_REQUEST', 'x12', /headers/)
    await expectError({ type: 'publish', topic: 5, message: { payload: 'a' }, request_id: 'x13' }, 'BAD_REQUEST', 'x13', /topic/)
    await expectError({ type: 'publish', topic: 'nope', message: { payload: 'a' }, request_id: 'x14' }, 'TOPIC_NOT_FOUND', 'x14')
    await expectError({ type: 'publish', topic: 'strict', message: { payload: 'x'.repeat(MAX_PAYLOAD + 1) }, request_id: 'x15' }, 'PAYLOAD_TOO_LARGE', 'x15')
    // Still the same connection, still serving.
    assert.equal(c.closed, undefined)
    const ok = await c.request({ type: 'publish', topic: 'strict', request_id: 'fine', message: { payload: 'still here' } })
    assert.equal(ok.type, 'ack')
    assert.deepEqual((await readAll(g, 'strict')).map(m => m.payload), ['still here'])
  })

  test('a frame over the limit closes with 1009; the server keeps serving', async () => {
    const c = await connect()
    c.send(JSON.stringify({ type: 'publish', topic: 'strict', message: { payload: 'x'.repeat(4 * MAX_PAYLOAD + 100_000) } }))
    const closed = await c.waitClosed()
    assert.equal(closed.code, 1009)
    assert.equal((await api(g.url, 'GET', '/health')).status, 200)
    const d = await connect()
    assert.equal((await d.request({ type: 'ping', request_id: 'alive' })).type, 'pong')
  })

  test('a client that closes with publishes in flight loses nothing that was acked, and the server keeps serving', async () => {
    await api(g.url, 'POST', '/topics', { name: 'vanish' })
    const c = await connect()
    const n = 1000
    for (let i = 0; i < n; i++) c.send({ type: 'publish', topic: 'vanish', request_id: `v${i}`, message: { id: `v${i}`, payload: `v${i}` } })
    await waitFor(() => c.frames.some(f => f.type === 'ack'), 'a first ack')
    c.ws.terminate()
    await waitFor(() => c.closed, 'the close')
    const acked = c.frames.filter(f => f.type === 'ack').map(f => f.request_id as string)
    assert.ok(acked.length > 0)
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.gateway.ws_connections === clients.filter(x => x.closed === undefined).length, 'the server to see the close')
    const stored = new Set((await readAll(g, 'vanish')).map(m => m.id))
    for (const id of acked) assert.ok(stored.has(id), `acked ${id} is stored`)
    const d = await connect()
    assert.equal((await d.request({ type: 'publish', topic: 'vanish', request_id: 'later', message: { payload: 'later' } })).type, 'ack')
  })

  test('non-/ws upgrade paths are refused', async () => {
    const ws = new WebSocket(g.url.replace(/^http/, 'ws') + '/elsewhere')
    const status = await new Promise<number>(resolve => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.on('error', () => resolve(-1))
    })
    assert.equal(status, 404)
    ws.terminate()
  })

  test('ws traffic shows up in /metrics', async () => {
    const text = await (await fetch(g.url + '/metrics')).text()
    assert.match(text, /gem_ws_messages_total\{direction="in",type="publish"\} \d+/)
    assert.match(text, /gem_ws_messages_total\{direction="out",type="ack"\} \d+/)
    assert.match(text, /gem_ws_connections_total \d+/)
  })
})
