// Topic definitions on the mesh: concurrent first publishes share one auto-creation, a topic made on one node is known
// on every node, deleting it removes it everywhere (its messages too), and the name can be used again afterwards.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, readAll, startGem, tempDataDir } from './support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from './support/mesh.ts'
import type { PartitionView } from './support/mesh.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

test('concurrent first publishes to a missing topic share one auto-creation', { timeout: 60_000 }, async () => {
  const data = tempDataDir('gem-auto-')
  const node = await startGem(data.dir, ['--auto-create-topics', '--webrtc-direct', 'false'])
  try {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => api(node.url, 'POST', '/topics/fresh/messages', { id: `m-${i}`, payload: i })))
    assert.deepEqual(answers.filter(a => a.status !== 201).map(a => a.json), [])
    assert.deepEqual(answers.map(a => a.json.offset).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i))
  } finally {
    await node.kill()
    data.remove()
  }
})

test('a topic is known on every node, and a delete removes it everywhere; the name can be used again', { timeout: 120_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes }) => {
    assert.equal((await api(nodes[1].url, 'POST', '/topics', { name: 'temp', partitions: 2 })).status, 201)
    for (const n of nodes) await waitFor(async () => (await api(n.url, 'GET', '/topics/temp')).status === 200, `temp on ${n.url}`, 10_000)
    await agreedLeader(nodes, 'temp', 0)
    assert.equal((await api(nodes[2].url, 'POST', '/topics/temp/messages', { payload: 'old', partition: 0 })).status, 201)
    assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: 'temp' })).status, 409)

    assert.equal((await api(nodes[0].url, 'DELETE', '/topics/temp')).status, 204)
    for (const n of nodes) await waitFor(async () => (await api(n.url, 'GET', '/topics/temp')).status === 404, `temp gone from ${n.url}`, 10_000)
    assert.equal((await api(nodes[2].url, 'POST', '/topics/temp/messages', { payload: 'x' })).json.error, 'TOPIC_NOT_FOUND')

    assert.equal((await api(nodes[2].url, 'POST', '/topics', { name: 'temp' })).status, 201)
    await agreedLeader(nodes, 'temp', 0)
    assert.equal((await api(nodes[0].url, 'POST', '/topics/temp/messages', { payload: 'new' })).status, 201)
    for (const n of nodes) {
      await waitFor(async () => (await readAll(n.url, 'temp')).length === 1, `the new temp on ${n.url}`, 10_000)
      assert.deepEqual((await readAll(n.url, 'temp')).map(m => m.payload), ['new'])
    }
  })
})

/** Each node's view of `topic`'s placement from its /cluster: [partition, replicas] in partition order. */
async function placementOn (url: string, topic: string): Promise<string> {
  const parts = (await api(url, 'GET', '/cluster')).json.partitions as PartitionView[]
  return JSON.stringify(parts.filter(p => p.topic === topic).sort((a, b) => a.partition - b.partition).map(p => [p.partition, p.replicas]))
}

test('a topic created through every node at once is created once: one 201, TOPIC_EXISTS for the others, one placement everywhere', { timeout: 120_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes }) => {
    const names = Array.from({ length: 5 }, (_, i) => `race-${i}`)
    for (const name of names) {
      // Replication 2 of 3 nodes: placements made independently on two nodes would differ, not only in order.
      const answers = await Promise.all(nodes.map(n => api(n.url, 'POST', '/topics', { name, partitions: 4, replication: 2 })))
      assert.deepEqual(answers.map(a => a.status).sort(), [201, 409, 409], `${name}: ${JSON.stringify(answers.map(a => a.json))}`)
      for (const a of answers.filter(a => a.status === 409)) assert.equal(a.json.error, 'TOPIC_EXISTS')
    }
    for (const name of names) {
      await waitFor(async () => {
        const views = await Promise.all(nodes.map(n => placementOn(n.url, name)))
        return new Set(views).size === 1 && JSON.parse(views[0]).length === 4
      }, `one placement of ${name} on every node`, 10_000)
    }
  })
})

test('first publishes to a missing topic through every node at once create it once, and every message is readable from every node', { timeout: 120_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes }) => {
    const ids: string[] = []
    const answers = await Promise.all(nodes.flatMap((n, i) => Array.from({ length: 10 }, (_, j) => {
      const id = `n${i}-${j}`
      ids.push(id)
      return api(n.url, 'POST', '/topics/auto/messages', { id, payload: id })
    })))
    assert.deepEqual(answers.filter(a => a.status !== 201).map(a => a.json), [])
    await waitFor(async () => new Set(await Promise.all(nodes.map(n => placementOn(n.url, 'auto')))).size === 1, 'one placement of auto on every node', 10_000)
    for (const n of nodes) {
      const everyPartition = async (): Promise<string[]> => (await Promise.all([0, 1, 2, 3].map(p => readAll(n.url, 'auto', p)))).flat().map(m => m.id).sort()
      await waitFor(async () => (await everyPartition()).length === ids.length, `every message of auto on ${n.url}`, 10_000)
      assert.deepEqual(await everyPartition(), [...ids].sort())
    }
  }, ['--auto-create-topics', '--default-replication', '2', '--default-partitions', '4'])
})
