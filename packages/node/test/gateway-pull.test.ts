// Pull consumers over REST on a real broker and LevelDB: pull with delivery tags, ack, nack with redelivery, long polls.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { api, startTestGateway, waitFor } from './gateway-harness.ts'
import type { TestGateway } from './gateway-harness.ts'

describe('gateway pull consumers', () => {
  let g: TestGateway
  before(async () => { g = await startTestGateway({ consumer: { backoffMs: 0, maxBackoffMs: 0 } }) })
  after(async () => { await g?.stop() })

  test('pull returns messages with tags and attempts; ack settles them and moves the group on', async () => {
    await api(g.url, 'POST', '/topics', { name: 'jobs' })
    for (let i = 0; i < 5; i++) assert.equal((await api(g.url, 'POST', '/topics/jobs/messages', { payload: { n: i } })).status, 201)
    const first = await api(g.url, 'POST', '/topics/jobs/groups/workers/pull?max=3')
    assert.equal(first.status, 200)
    assert.equal(first.json.messages.length, 3)
    for (const [i, m] of first.json.messages.entries()) {
      assert.equal(typeof m.tag, 'string')
      assert.equal(m.attempt, 1)
      assert.deepEqual(m.payload, { n: i })
      assert.equal(m.topic, 'jobs')
    }
    const acked = await api(g.url, 'POST', '/topics/jobs/groups/workers/ack', { tags: [...first.json.messages.map((m: any) => m.tag), 'no.such.tag'] })
    assert.deepEqual(acked.json, { acked: 3, unknown: ['no.such.tag'] })
    const again = await api(g.url, 'POST', '/topics/jobs/groups/workers/ack', { tags: [first.json.messages[0].tag] })
    assert.deepEqual(again.json, { acked: 0, unknown: [first.json.messages[0].tag] })

    const rest = await api(g.url, 'POST', '/topics/jobs/groups/workers/pull?max=10')
    assert.deepEqual(rest.json.messages.map((m: any) => m.payload.n), [3, 4])
    await api(g.url, 'POST', '/topics/jobs/groups/workers/ack', { tags: rest.json.messages.map((m: any) => m.tag) })

    const stats = await api(g.url, 'GET', '/stats')
    const group = stats.json.groups.find((x: any) => x.topic === 'jobs' && x.group === 'workers')
    assert.equal(group.backlog, 0)
    assert.equal(group.in_flight, 0)
    const metrics = await (await fetch(g.url + '/metrics')).text()
    assert.match(metrics, /gem_group_backlog\{topic="jobs",group="workers"\} 0/)
    assert.match(metrics, /gem_delivered_total\{topic="jobs",group="workers"\} 5/)
  })

  test('nack redelivers with the next attempt; delay_ms is accepted', async () => {
    await api(g.url, 'POST', '/topics', { name: 'retry' })
    await api(g.url, 'POST', '/topics/retry/messages', { payload: 'once more', id: 'r1' })
    const p1 = await api(g.url, 'POST', '/topics/retry/groups/g/pull?max=1&wait_ms=5000')
    assert.equal(p1.json.messages[0].attempt, 1)
    const n = await api(g.url, 'POST', '/topics/retry/groups/g/nack', { tags: [p1.json.messages[0].tag], delay_ms: 0 })
    assert.deepEqual(n.json, { acked: 1, unknown: [] })
    const p2 = await waitFor(async () => {
      const r = await api(g.url, 'POST', '/topics/retry/groups/g/pull?max=1&wait_ms=1000')
      return r.json.messages.length > 0 ? r : undefined
    }, 'the redelivery')
    assert.equal(p2.json.messages[0].id, 'r1')
    assert.equal(p2.json.messages[0].attempt, 2)
    assert.deepEqual((await api(g.url, 'POST', '/topics/retry/groups/g/ack', { tags: [p2.json.messages[0].tag] })).json, { acked: 1, unknown: [] })
  })

  test('a long poll returns as soon as a message arrives', async () => {
    await api(g.url, 'POST', '/topics', { name: 'lp' })
    const polling = api(g.url, 'POST', '/topics/lp/groups/g/pull?max=5&wait_ms=20000')
    // The group exists once the poll is waiting; then publish.
    await waitFor(async () => (await api(g.url, 'GET', '/stats')).json.groups.some((x: any) => x.topic === 'lp' && x.consumers > 0), 'the poll to attach')
    await api(g.url, 'POST', '/topics/lp/messages', { payload: 'wake up' })
    const r = await polling
    assert.equal(r.json.messages[0].payload, 'wake up')
  })

  test('an empty pull with wait_ms=0 answers at once', async () => {
    await api(g.url, 'POST', '/topics', { name: 'empty' })
    const r = await api(g.url, 'POST', '/topics/empty/groups/g/pull')
    assert.deepEqual(r.json, { messages: [] })
  })

  test('bad ack and nack bodies name the field', async () => {
    await api(g.url, 'POST', '/topics', { name: 'acks' })
    const bad = async (path: string, body: unknown, re: RegExp): Promise<void> => {
      const r = await api(g.url, 'POST', path, body)
      assert.equal(r.status, 400, JSON.stringify(r.json))
      assert.equal(r.json.error, 'BAD_REQUEST')
      assert.match(r.json.message, re)
    }
    await bad('/topics/acks/groups/g/ack', {}, /tags is required/)
    await bad('/topics/acks/groups/g/ack', { tags: 'a' }, /tags must be an array/)
    await bad('/topics/acks/groups/g/ack', { tags: [1] }, /tags must be an array of strings/)
    await bad('/topics/acks/groups/g/ack', '[', /JSON/)
    await bad('/topics/acks/groups/g/nack', { tags: [], delay_ms: -5 }, /delay_ms/)
    await bad('/topics/acks/groups/g/nack', { tags: [], delay_ms: 'soon' }, /delay_ms/)
    const unknownTopic = await api(g.url, 'POST', '/topics/none/groups/g/ack', { tags: ['x'] })
    assert.equal(unknownTopic.status, 404)
    assert.equal(unknownTopic.json.error, 'TOPIC_NOT_FOUND')
    const unknownGroup = await api(g.url, 'POST', '/topics/acks/groups/never/ack', { tags: ['0.0.1'] })
    assert.deepEqual(unknownGroup.json, { acked: 0, unknown: ['0.0.1'] })
  })
})
