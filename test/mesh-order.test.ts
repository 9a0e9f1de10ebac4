// Order through the mesh: one WebSocket connection to a follower pipelines publishes that are forwarded to the
// partition's leader; the log must hold them in the order they were sent, at dense offsets, each once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { api, readAll } from './support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from './support/mesh.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

test('pipelined publishes on one connection to a follower are stored in the order sent', { timeout: 120_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes, ids }) => {
    assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: 'seq', partitions: 1, replication: 3 })).status, 201)
    const leader = ids.indexOf(await agreedLeader(nodes, 'seq'))
    const follower = nodes[(leader + 1) % 3]
    const ws = new WebSocket(follower.url.replace(/^http/, 'ws') + '/ws')
    try {
      await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
      const n = 5000
      let acked = 0
      const errors: string[] = []
      ws.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString()) as { type: string, error?: { code: string } }
        if (m.type === 'ack') acked++
        if (m.type === 'error') errors.push(m.error?.code ?? '?')
      })
      // Bounded: n frames, sent without waiting for acks.
      for (let i = 0; i < n; i++) ws.send(JSON.stringify({ type: 'publish', topic: 'seq', message: { payload: `p-${i}` }, request_id: i }))
      await waitFor(() => acked + errors.length >= n, 'every publish answered', 60_000)
      assert.deepEqual(errors, [])
      const stored = await readAll(nodes[leader].url, 'seq', 0)
      assert.equal(stored.length, n)
      assert.deepEqual(stored.map(m => m.offset), Array.from({ length: n }, (_, i) => i))
      const firstOutOfOrder = stored.findIndex((m, i) => m.payload !== `p-${i}`)
      assert.equal(firstOutOfOrder, -1, `offset ${firstOutOfOrder} holds ${stored[firstOutOfOrder]?.payload}`)
    } finally {
      ws.terminate()
    }
  })
})
