// Order through the mesh: one WebSocket connection to a follower pipelines publishes that are forwarded to the
// partition's leader; the log must hold them in the order they were sent, at dense offsets, each once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { api, readAll } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from './support/mesh.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

/** A one-partition topic replicated on all three nodes, and an open WebSocket to a follower of its leader. */
async function producerOnFollower (nodes: GemProcess[], ids: string[], topic: string): Promise<{ ws: WebSocket, leader: number, entry: GemProcess }> {
  assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: topic, partitions: 1, replication: 3 })).status, 201)
  const leader = ids.indexOf(await agreedLeader(nodes, topic))
  const entry = nodes[(leader + 1) % 3]
  const ws = new WebSocket(entry.url.replace(/^http/, 'ws') + '/ws')
  try {
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  } catch (err) {
    ws.terminate()
    throw err
  }
  return { ws, leader, entry }
}

test('pipelined publishes on one connection to a follower are stored in the order sent', { timeout: 120_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes, ids }) => {
    const { ws, leader } = await producerOnFollower(nodes, ids, 'seq')
    try {
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

// SIGKILL: in-flight forwards fail and wait for an election. SIGTERM: the stopping leader hands leadership off first, so
// the new leader is known at once and publishes arriving meanwhile could overtake the ones being retried.
for (const how of ['SIGKILL', 'SIGTERM'] as const) {
  test(`a leader stopped by ${how} under a pipelined producer: the survivors store every acknowledged publish once, in the order sent`, { timeout: 120_000 }, async () => {
    await withMeshProcesses(3, async ({ nodes, ids }) => {
      const { ws, leader, entry } = await producerOnFollower(nodes, ids, 'seqkill')
      try {
        const n = 4000
        const acked = new Set<number>()
        const errors: string[] = []
        let killed: Promise<void> | undefined
        ws.on('message', (data: Buffer) => {
          const m = JSON.parse(data.toString()) as { type: string, request_id?: number, error?: { code: string } }
          if (m.type === 'ack') acked.add(m.request_id!)
          if (m.type === 'error') errors.push(m.error?.code ?? '?')
          // Mid-stream, with hundreds of publishes in flight to it, the leader dies.
          if (acked.size === 1000 && killed === undefined) killed = how === 'SIGKILL' ? nodes[leader].kill() : nodes[leader].stop().then(() => {})
        })
        for (let i = 0; i < n; i++) ws.send(JSON.stringify({ type: 'publish', topic: 'seqkill', message: { payload: `p-${i}`, id: `k-${i}` }, request_id: i }))
        await waitFor(() => acked.size + errors.length >= n, 'every publish answered', 90_000).catch(async err => {
          // Once seen in a fresh-clone CI run and not reproduced since: say where the stream stopped.
          const unanswered = Array.from({ length: n }, (_, i) => i).filter(i => !acked.has(i))
          const views = await Promise.all(nodes.filter((_, i) => i !== leader).map(async x => JSON.stringify((await api(x.url, 'GET', '/cluster').catch(() => ({ json: {} }))).json.partitions?.filter((p: { topic: string }) => p.topic === 'seqkill'))))
          const logs = nodes.map((x, i) => `--- node ${i}${i === leader ? ' (stopped leader)' : ''}:\n${x.output().split('\n').slice(-40).join('\n')}`).join('\n')
          throw new Error(`${(err as Error).message}: ${unanswered.length} unanswered (first ${unanswered.slice(0, 5).join(', ')}), ${errors.length} errors (${[...new Set(errors)].join(', ')})\nsurvivors' view: ${views.join(' | ')}\n${logs}`)
        })
        await killed
        // The entry node applies what its leader committed a moment after the ack went out: wait for it, bounded.
        let stored = await readAll(entry.url, 'seqkill', 0)
        const missing = (): number[] => { const have = new Set(stored.map(m => String(m.payload))); return [...acked].filter(i => !have.has(`p-${i}`)) }
        const lagging = missing().length
        await waitFor(async () => { stored = await readAll(entry.url, 'seqkill', 0); return missing().length === 0 }, 'every acknowledged publish in the entry node\'s log', 15_000)
          .catch(() => {})
        if (lagging > 0) console.log(`the entry node's log lacked ${lagging} acknowledged publishes at the last ack, ${missing().length} after waiting`)
        const sent = stored.map(m => Number(String(m.payload).slice(2)))
        assert.equal(new Set(sent).size, sent.length, 'no publish stored twice')
        const lost = missing()
        assert.deepEqual(lost, [], `acknowledged publishes not stored (${lost.length}; ${stored.length} stored, ${acked.size} acked, ${errors.length} errors: ${[...new Set(errors)].join(', ')})`)
        const firstOutOfOrder = sent.findIndex((v, i) => i > 0 && v < sent[i - 1])
        assert.equal(firstOutOfOrder, -1, `offset ${firstOutOfOrder} holds p-${sent[firstOutOfOrder]} after p-${sent[firstOutOfOrder - 1]} (${errors.length} errors: ${[...new Set(errors)].join(', ')})`)
      } finally {
        ws.terminate()
      }
    })
  })
}
