// Gateway shutdown: close() ends WebSocket connections with 1001 after answering in-flight publishes, ends SSE streams
// and long polls, stops accepting, and resolves; everything acked before is stored and nothing a group was owed is lost.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { BrokerApi } from '@gem-mesh/core'
import { SseClient, WsClient, api, startTestGateway, waitFor } from './gateway-harness.ts'
import type { SseEvent } from '../src/cli/sse.ts'

/** Every event until the stream ends; more than `max` means it did not end when it should have. */
async function drain (sse: SseClient, max: number): Promise<SseEvent[]> {
  const seen: SseEvent[] = []
  for (let ev = await sse.next(); ev !== undefined; ev = await sse.next()) {
    seen.push(ev)
    if (seen.length > max) throw new Error(`the event stream carried more than ${max} events and did not end`)
  }
  return seen
}

test('close() answers in-flight publishes, closes sockets and streams, and stops accepting', { timeout: 60_000 }, async () => {
  const g = await startTestGateway()
  const ws: WsClient[] = []
  const streams: SseClient[] = []
  try {
    await api(g.url, 'POST', '/topics', { name: 'bye' })
    const sub = await WsClient.connect(g.wsUrl)
    const pub = await WsClient.connect(g.wsUrl)
    ws.push(sub, pub)
    await sub.request({ type: 'subscribe', topic: 'bye', client_id: 's', request_id: 's' })
    const live = await SseClient.open(g.url, '/topics/bye/events')
    const grouped = await SseClient.open(g.url, '/topics/bye/events?group=sse-readers')
    streams.push(live, grouped)
    const poll = api(g.url, 'POST', '/topics/bye/groups/g/pull?max=5&wait_ms=30000').catch(err => ({ status: -1, json: String(err), headers: new Headers() }))
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.groups.some((x: any) => x.group === 'g' && x.consumers > 0), 'the long poll to wait')

    const n = 500
    for (let i = 0; i < n; i++) pub.send({ type: 'publish', topic: 'bye', request_id: `b${i}`, message: { id: `b${i}`, payload: `b${i}` } })
    await waitFor(() => pub.frames.some(f => f.type === 'ack'), 'a first ack')
    // How far the log reached when close() was called: the streams end there, whatever commits during the close.
    // Where that is within the 500 depends on group-commit timing, so the checks below hold for any point.
    const highAtClose = g.broker.getTopic('bye').offsets[0].high
    const closing = g.gateway.close()
    // Read both streams while the gateway closes: a reader that stalls would hold its connection until the grace ends.
    const liveSeen = drain(live, n)
    const groupSeen = drain(grouped, n)
    // Awaited below; until then a failure must not surface as an unhandled rejection.
    for (const p of [liveSeen, groupSeen]) p.catch(() => {})
    await closing

    assert.equal((await pub.waitClosed()).code, 1001)
    assert.equal((await sub.waitClosed()).code, 1001)

    // A live stream ends with a gap-free prefix of the log, in order, nothing of it committed after close() was
    // called: a reader that reconnects with its last event id as Last-Event-ID misses nothing.
    const seen = await liveSeen
    assert.ok(seen.length <= highAtClose, `${seen.length} events, but only ${highAtClose} records were committed when close() was called`)
    seen.forEach((ev, i) => {
      assert.equal(ev.event, 'message')
      assert.equal(ev.id, `0:${i}`)
      assert.equal(JSON.parse(ev.data).payload, `b${i}`)
    })

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

    // A group stream counts what it wrote as acked; every other stored record is still owed to the group.
    const owed = new Set(stored)
    for (const ev of await groupSeen) owed.delete(JSON.parse(ev.data).id)
    await waitFor(async () => {
      const got = await g.broker.pull('bye', 'sse-readers', { max: 1000, waitMs: 200 })
      for (const d of got) owed.delete(d.record.id)
      if (got.length > 0) await g.broker.ack('bye', 'sse-readers', got.map(d => d.tag))
      return owed.size === 0
    }, `the group to redeliver the ${owed.size} records its stream did not write`)
  } finally {
    for (const s of streams) s.close()
    for (const c of ws) c.close()
    await g.stop()
  }
})

test('an event stream that opens while close() runs is refused, not left open', { timeout: 60_000 }, async () => {
  // Hold consume and tail (the awaits inside opening a stream) until close() has begun.
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  let held = 0
  const hold = <A extends unknown[], R>(fn: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
    held++
    await gate
    return await fn(...args)
  }
  const g = await startTestGateway({
    wrapBroker: broker => new Proxy(broker, {
      get (target, prop) {
        if (prop === 'consume') return hold(target.consume.bind(target))
        if (prop === 'tail') return hold(target.tail.bind(target))
        const v = Reflect.get(target, prop, target)
        return typeof v === 'function' ? v.bind(target) : v
      },
    }) as BrokerApi,
  })
  const opened: SseClient[] = []
  try {
    await api(g.url, 'POST', '/topics', { name: 'late' })
    const attempt = (path: string): Promise<{ status: number, error?: string }> => SseClient.open(g.url, path).then(
      s => { opened.push(s); return { status: s.status } },
      err => ({ status: err.status ?? -1, error: err.body === undefined ? String(err) : JSON.parse(err.body).error }),
    )
    const grouped = attempt('/topics/late/events?group=g')
    const live = attempt('/topics/late/events')
    await waitFor(() => held === 2, 'both streams to be opening')
    const closing = g.gateway.close()
    release()
    assert.deepEqual(await grouped, { status: 503, error: 'CLOSED' })
    assert.deepEqual(await live, { status: 503, error: 'CLOSED' })
    await closing
    const sse = (await g.metrics.registry.getSingleMetric('gem_sse_streams')!.get()).values[0]?.value
    assert.equal(sse, 0, 'no stream is left open')
    assert.equal(g.broker.stats().groups.find(x => x.topic === 'late' && x.group === 'g')?.consumers ?? 0, 0, 'no consumer is left attached')
  } finally {
    release()
    for (const s of opened) s.close()
    await g.stop()
  }
})
