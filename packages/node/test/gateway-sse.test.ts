// Server-Sent Events on a real broker and LevelDB: live tails (from, last_n, Last-Event-ID resume), durable groups
// (acked once written), heartbeats, errors before the stream, and streams that end when the client or the topic goes.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { SseClient, api, startTestGateway, waitFor } from './gateway-harness.ts'
import type { TestGateway } from './gateway-harness.ts'

async function publish (g: TestGateway, topic: string, payloads: unknown[]): Promise<void> {
  for (const payload of payloads) assert.equal((await api(g.url, 'POST', `/topics/${topic}/messages`, { payload })).status, 201)
}

describe('gateway SSE', () => {
  let g: TestGateway
  const open: SseClient[] = []
  const connect = async (path: string, headers?: Record<string, string>): Promise<SseClient> => {
    const c = await SseClient.open(g.url, path, headers)
    open.push(c)
    return c
  }
  before(async () => { g = await startTestGateway({ sseHeartbeatMs: 100 }) })
  after(async () => {
    for (const c of open) c.close()
    await g?.stop()
  })

  test('without a group: live records only by default, with id partition:offset and the message JSON', async () => {
    await api(g.url, 'POST', '/topics', { name: 'live' })
    await publish(g, 'live', ['old'])
    const s = await connect('/topics/live/events')
    assert.equal(s.status, 200)
    assert.match(s.headers.get('content-type') ?? '', /^text\/event-stream/)
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.gateway.sse_streams === 1, 'the stream to register')
    await publish(g, 'live', ['new', { n: 2 }])
    const a = await s.nextMessage()
    assert.equal(a.id, '0:1')
    assert.equal(a.message.payload, 'new')
    assert.equal(a.message.offset, 1)
    assert.equal(a.message.topic, 'live')
    const b = await s.nextMessage()
    assert.equal(b.id, '0:2')
    assert.deepEqual(b.message.payload, { n: 2 })
    assert.equal('attempt' in b.message, false)
  })

  test('from=earliest, from=<offset> and last_n replay stored records, then continue live', async () => {
    await api(g.url, 'POST', '/topics', { name: 'replay' })
    await publish(g, 'replay', ['a', 'b', 'c', 'd'])
    const earliest = await connect('/topics/replay/events?from=earliest')
    const fromTwo = await connect('/topics/replay/events?from=2')
    const lastOne = await connect('/topics/replay/events?last_n=1')
    const take = async (c: SseClient, n: number): Promise<string[]> => {
      const out: string[] = []
      for (let i = 0; i < n; i++) out.push((await c.nextMessage()).message.payload)
      return out
    }
    assert.deepEqual(await take(earliest, 4), ['a', 'b', 'c', 'd'])
    assert.deepEqual(await take(fromTwo, 2), ['c', 'd'])
    assert.deepEqual(await take(lastOne, 1), ['d'])
    await publish(g, 'replay', ['e'])
    for (const c of [earliest, fromTwo, lastOne]) assert.deepEqual(await take(c, 1), ['e'])
  })

  test('Last-Event-ID resumes right after the last event seen', async () => {
    await api(g.url, 'POST', '/topics', { name: 'resume' })
    await publish(g, 'resume', ['r0', 'r1', 'r2', 'r3'])
    const s = await connect('/topics/resume/events', { 'last-event-id': '0:1' })
    assert.equal((await s.nextMessage()).message.payload, 'r2')
    assert.equal((await s.nextMessage()).message.payload, 'r3')
  })

  test('many partitions, many records: every record once, in order per partition', async () => {
    await api(g.url, 'POST', '/topics', { name: 'wide', partitions: 3 })
    const s = await connect('/topics/wide/events?from=earliest')
    const n = 300
    const batch = Array.from({ length: n }, (_, i) => ({ payload: `w${i}`, key: `k${i % 7}` }))
    assert.equal((await api(g.url, 'POST', '/topics/wide/messages', batch)).status, 201)
    const last = new Map<number, number>()
    const seen = new Set<string>()
    for (let i = 0; i < n; i++) {
      const { message } = await s.nextMessage()
      assert.ok((last.get(message.partition) ?? -1) < message.offset, 'in order within a partition')
      last.set(message.partition, message.offset)
      seen.add(message.payload)
    }
    assert.equal(seen.size, n)
  })

  test('with a group: a durable consumer that acks each delivery once written; the group moves on', async () => {
    await api(g.url, 'POST', '/topics', { name: 'grp' })
    await publish(g, 'grp', ['g0', 'g1', 'g2'])
    const s = await connect('/topics/grp/events?group=readers')
    const got = [(await s.nextMessage()).message, (await s.nextMessage()).message, (await s.nextMessage()).message]
    assert.deepEqual(got.map(m => m.payload), ['g0', 'g1', 'g2'])
    assert.deepEqual(got.map(m => m.attempt), [1, 1, 1])
    await waitFor(async () => {
      const grp = (await api(g.url, 'GET', '/stats')).json.groups.find((x: any) => x.topic === 'grp' && x.group === 'readers')
      return grp?.backlog === 0 && grp.in_flight === 0
    }, 'the group to have acked everything')
    s.close()
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.groups.find((x: any) => x.group === 'readers')?.consumers === 0, 'the consumer to detach')
    // A new stream of the same group continues after what was acked.
    await publish(g, 'grp', ['g3'])
    const s2 = await connect('/topics/grp/events?group=readers')
    assert.equal((await s2.nextMessage()).message.payload, 'g3')
  })

  test('heartbeat comments keep an idle stream alive', async () => {
    await api(g.url, 'POST', '/topics', { name: 'quiet' })
    const abort = new AbortController()
    try {
      const res = await fetch(g.url + '/topics/quiet/events', { signal: abort.signal })
      const reader = res.body!.getReader()
      let text = ''
      await waitFor(async () => {
        const { value } = await reader.read()
        text += new TextDecoder().decode(value)
        return text.includes(': heartbeat')
      }, 'a heartbeat comment')
    } finally {
      abort.abort()
    }
  })

  test('closing the request closes the consumer; deleting the topic ends the stream with an error event', async () => {
    await api(g.url, 'POST', '/topics', { name: 'gone' })
    const s = await connect('/topics/gone/events?group=watchers')
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.groups.find((x: any) => x.group === 'watchers')?.consumers === 1, 'the consumer to attach')
    s.close()
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.groups.find((x: any) => x.group === 'watchers')?.consumers === 0, 'the consumer to close')

    const t = await connect('/topics/gone/events')
    assert.equal((await api(g.url, 'DELETE', '/topics/gone')).status, 204)
    const ev = await waitFor(async () => {
      const e = await t.next()
      return e === undefined || e.event === 'error' ? { e } : undefined
    }, 'the error event')
    assert.equal(ev.e?.event, 'error')
    assert.equal(JSON.parse(ev.e!.data).error, 'TOPIC_NOT_FOUND')
    assert.equal(await t.next(), undefined, 'the stream ended')
  })

  test('errors before the stream starts are REST errors, and leave no stream behind', async () => {
    await api(g.url, 'POST', '/topics', { name: 'e' })
    const streams = async (): Promise<number> => (await api(g.url, 'GET', '/stats')).json.gateway.sse_streams
    const before = await streams()
    for (const [path, status, code] of [
      ['/topics/missing/events', 404, 'TOPIC_NOT_FOUND'],
      ['/topics/e/events?from=soon', 400, 'BAD_REQUEST'],
      ['/topics/e/events?last_n=x', 400, 'BAD_REQUEST'],
      ['/topics/e/events?group=bad%20name', 400, 'BAD_REQUEST'],
      ['/topics/e/events?group=g&last_n=3', 400, 'BAD_REQUEST'],
      ['/topics/e/events?last_n=100001', 400, 'BAD_REQUEST'],
    ] as const) {
      const r = await api(g.url, 'GET', path)
      assert.equal(r.status, status, path)
      assert.equal(r.json.error, code, path)
    }
    // Streams of earlier tests may still be closing, so the count can only have gone down.
    await waitFor(async () => await streams() <= before, 'the refused streams not to count as open')
    assert.equal((await api(g.url, 'GET', '/health')).status, 200)
  })
})
