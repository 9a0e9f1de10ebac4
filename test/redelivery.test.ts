// Redelivery through a real node (child process, LevelDB, HTTP pull consumers): an unacked message
// returns after its deadline with attempt 2, a nack returns it at once, and after max_deliver it is in the DLQ.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, startGem, tempDataDir } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'

interface Pulled { tag: string, offset: number, attempt: number, payload: unknown, headers: Record<string, string> }

async function pullUntil (url: string, path: string, want: (m: Pulled[]) => boolean, timeoutMs = 15_000): Promise<Pulled[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await api(url, 'POST', `${path}?max=10&wait_ms=1000`)
    assert.equal(r.status, 200, JSON.stringify(r.json))
    const msgs = r.json.messages as Pulled[]
    if (want(msgs)) return msgs
    if (Date.now() > deadline) throw new Error(`timed out pulling ${path}; last answer ${JSON.stringify(msgs)}`)
  }
}

test('deadline redelivery carries attempt 2, nack redelivers at once, max_deliver moves it to <topic>.dlq', { timeout: 60_000 }, async () => {
  const data = tempDataDir()
  let node: GemProcess | undefined
  try {
    node = await startGem(data.dir, ['--consumer-ack-wait-ms', '400', '--consumer-max-deliver', '3', '--consumer-backoff-ms', '50', '--consumer-max-backoff-ms', '100'])
    const url = node.url
    assert.equal((await api(url, 'POST', '/topics', { name: 'jobs' })).status, 201)
    assert.equal((await api(url, 'POST', '/topics/jobs/messages', { payload: 'resize-42', headers: { trace: 't1' } })).status, 201)

    const path = '/topics/jobs/groups/workers/pull'
    const first = await pullUntil(url, path, m => m.length === 1)
    assert.equal(first[0].attempt, 1)
    // Not acked: after the 400 ms deadline (+ backoff) it comes back.
    const second = await pullUntil(url, path, m => m.length === 1)
    assert.equal(second[0].attempt, 2)
    assert.equal(second[0].offset, 0)
    // A nack brings it back at once, as attempt 3, the last one allowed.
    const nack = await api(url, 'POST', '/topics/jobs/groups/workers/nack', { tags: [second[0].tag] })
    assert.equal(nack.json.acked, 1)
    const third = await pullUntil(url, path, m => m.length === 1, 2_000)
    assert.equal(third[0].attempt, 3)
    // Left to expire a third time: dead-lettered, with the reason and its origin.
    const until = Date.now() + 10_000
    while ((await api(url, 'GET', '/topics/jobs.dlq')).status !== 200) {
      assert.ok(Date.now() < until, 'jobs.dlq appears')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    const dead = await pullUntil(url, '/topics/jobs.dlq/groups/inspect/pull', m => m.length === 1)
    assert.equal(dead[0].payload, 'resize-42')
    assert.equal(dead[0].headers.trace, 't1')
    assert.equal(dead[0].headers['gem-dlq-topic'], 'jobs')
    assert.equal(dead[0].headers['gem-dlq-group'], 'workers')
    assert.match(dead[0].headers['gem-dlq-reason'], /3 deliveries/)
    // And the group has moved past it: nothing more to deliver.
    const after = await api(url, 'POST', `${path}?max=10&wait_ms=800`)
    assert.deepEqual(after.json.messages, [])
    const stats = await api(url, 'GET', '/stats')
    assert.equal(stats.status, 200)
  } finally {
    await node?.kill()
    data.remove()
  }
})
