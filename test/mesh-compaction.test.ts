// Replica logs stay bounded: after thousands of publishes every replica compacts what is applied and held by all,
// a SIGKILLed follower recovers from its compacted log and catches up, and every message stays readable everywhere.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, readAll } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'
import { agreedLeader, partitionOn, withMeshProcesses } from './support/mesh.ts'
import { pipelinedPublish } from '../bench/lib/ws-client.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

test('replica logs compact, and a follower killed after compaction recovers and converges', { timeout: 240_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes, ids, restart }) => {
    assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: 'bulk', replication: 3 })).status, 201)
    const leader = ids.indexOf(await agreedLeader(nodes, 'bulk'))
    const first = 12_000
    const r = await pipelinedPublish(nodes[leader].url, 'bulk', first, 64, 512, 120_000)
    assert.equal(r.acked, first)
    const replicaStart = async (n: GemProcess): Promise<number> => (await partitionOn(n.url, 'bulk'))?.offsets?.replica_start ?? 0
    for (const n of nodes) await waitFor(async () => (await replicaStart(n)) >= 8192, `${n.url} compacts its replica log`, 30_000)

    const follower = (leader + 1) % 3
    await nodes[follower].kill()
    const more = await pipelinedPublish(nodes[leader].url, 'bulk', 3_000, 64, 512, 60_000)
    assert.equal(more.acked, 3_000)
    await restart(follower)
    const total = first + 3_000
    for (const [i, n] of nodes.entries()) {
      await waitFor(async () => (await api(n.url, 'GET', '/topics/bulk')).json.offsets[0].high >= total, `node ${i} holds all ${total}`, 60_000)
      const all = await readAll(n.url, 'bulk')
      assert.equal(all.length, total, `node ${i}`)
      assert.deepEqual(all.map(m => m.offset), all.map((_, k) => k), `node ${i}: dense offsets`)
    }
    const ok = await api(nodes[follower].url, 'POST', '/topics/bulk/messages', { payload: 'after' })
    assert.equal(ok.status, 201, JSON.stringify(ok.json))
    assert.equal(ok.json.offset, total)
  })
})
