// Topic definitions on the mesh: concurrent first publishes share one auto-creation, a topic made on one node is known
// on every node, deleting it removes it everywhere (its messages too), and the name can be used again afterwards.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, readAll, startGem, tempDataDir } from './support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from './support/mesh.ts'
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
