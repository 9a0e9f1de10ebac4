// Durable consumer groups across a three-process mesh: one group shared by consumers on different nodes gets each
// message once; its committed offsets reach the other nodes; when its home (partition 0's leader) is SIGKILLed the
// group goes on from the copied offsets on the new home, redelivering nothing it had acknowledged.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from './support/mesh.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'
import { SseClient } from '../packages/node/test/gateway-harness.ts'

interface Pulled { id: string, tag: string, attempt: number }

async function pull (url: string, max: number): Promise<Pulled[]> {
  const r = await api(url, 'POST', `/topics/jobs/groups/workers/pull?max=${max}&wait_ms=200`)
  if (r.status !== 200) throw new Error(`pull via ${url}: ${r.status} ${JSON.stringify(r.json)}`)
  return r.json.messages as Pulled[]
}

async function ack (url: string, tags: string[]): Promise<void> {
  const r = await api(url, 'POST', '/topics/jobs/groups/workers/ack', { tags })
  if (r.status !== 200 || r.json.acked !== tags.length) throw new Error(`ack via ${url}: ${r.status} ${JSON.stringify(r.json)}`)
}

test('one group, consumers on several nodes, and a SIGKILLed home: each message once, acknowledged ones never again', { timeout: 180_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes, ids }) => {
    assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: 'jobs', replication: 3 })).status, 201)
    const home = ids.indexOf(await agreedLeader(nodes, 'jobs'))
    const [x, y] = [nodes[(home + 1) % 3], nodes[(home + 2) % 3]]
    const total = 300
    for (let i = 0; i < total; i++) {
      const r = await api(nodes[i % 3].url, 'POST', '/topics/jobs/messages', { id: `job-${i}`, payload: i })
      assert.equal(r.status, 201, JSON.stringify(r.json))
    }

    // Two consumers of one group on two nodes that are not the home: what one holds, the other does not get.
    const onX = await pull(x.url, 20)
    const onY = await pull(y.url, 20)
    assert.equal(onX.length, 20)
    assert.equal(onY.length, 20)
    const xIds = new Set(onX.map(m => m.id))
    assert.deepEqual(onY.filter(m => xIds.has(m.id)), [], 'a delivery went to two consumers of one group')
    await ack(x.url, onX.map(m => m.tag))
    await ack(y.url, onY.map(m => m.tag))

    const acked = new Set<string>([...onX, ...onY].map(m => m.id))
    while (acked.size < 150) {
      const batch = await pull(x.url, 50)
      await ack(x.url, batch.map(m => m.tag))
      for (const m of batch) acked.add(m.id)
    }
    // The home copies the group's committed offsets to the other nodes.
    await waitFor(async () => {
      const g = ((await api(y.url, 'GET', '/stats')).json.groups as Array<{ topic: string, group: string, committed: Array<{ offset: number }> }>)
        .find(s => s.topic === 'jobs' && s.group === 'workers')
      return g !== undefined && g.committed[0].offset >= acked.size
    }, 'the committed offset copied to another node', 20_000)

    await nodes[home].kill()
    const after: Pulled[] = []
    await waitFor(async () => {
      const batch = await pull(y.url, 100).catch(() => [] as Pulled[])
      if (batch.length > 0) { after.push(...batch); await ack(y.url, batch.map(m => m.tag)) }
      return acked.size + new Set(after.map(m => m.id)).size >= total
    }, 'the rest of the messages through the new home', 60_000)
    const redelivered = after.filter(m => acked.has(m.id))
    assert.deepEqual(redelivered.map(m => m.id), [], 'acknowledged messages came back after the failover')
    const all = new Set([...acked, ...after.map(m => m.id)])
    assert.equal(all.size, total)
  })
})

test('a group stream (SSE) on a node that is not the home keeps delivering when the home is SIGKILLed', { timeout: 180_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes, ids }) => {
    let stream: SseClient | undefined
    try {
      assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: 'feed', replication: 3 })).status, 201)
      const home = ids.indexOf(await agreedLeader(nodes, 'feed'))
      const x = nodes[(home + 1) % 3]
      const y = nodes[(home + 2) % 3]
      stream = await SseClient.open(x.url, '/topics/feed/events?group=readers&from=earliest')
      const seen = new Set<string>()
      const publish = async (via: GemProcess, from: number, to: number): Promise<void> => {
        for (let i = from; i < to; i++) assert.equal((await api(via.url, 'POST', '/topics/feed/messages', { id: `f-${i}`, payload: i })).status, 201)
      }
      // The next message event. An `error` event (the server ending the group stream) fails the test with its payload.
    // A stream that just ends is reopened, as an EventSource would: the group redelivers what was not acknowledged.
    let reopened = 0
    const nextId = async (): Promise<string> => {
      for (;;) {
        const ev = await stream!.next(30_000).catch((err: Error) => { throw new Error(`${err.message} after ${seen.size} messages; node log:\n${x.output().slice(-3000)}`) })
        if (ev === undefined) {
          if (++reopened > 3) throw new Error(`the event stream kept ending after ${seen.size} messages; node log:\n${x.output().slice(-4000)}`)
          stream!.close()
          stream = await SseClient.open(x.url, '/topics/feed/events?group=readers&from=earliest')
          continue
        }
        if (ev.event === 'error') throw new Error(`the event stream ended: ${ev.data}`)
        if (ev.event === 'message') return JSON.parse(ev.data).id
      }
    }
      await publish(y, 0, 50)
      while (seen.size < 50) seen.add(await nextId())
      await nodes[home].kill()
      await publish(y, 50, 100)
      while (seen.size < 100) seen.add(await nextId())
      assert.deepEqual([...seen].sort(), Array.from({ length: 100 }, (_, i) => `f-${i}`).sort())
      if (reopened > 0) console.log(`the group stream was reopened ${reopened} time(s) after the connection ended`)
    } finally {
      stream?.close()
    }
  })
})
