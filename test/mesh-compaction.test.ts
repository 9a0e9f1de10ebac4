// Replica logs stay bounded: after thousands of publishes every replica compacts what is applied and held by all; a
// follower SIGKILLed while the others compact past it is rebuilt by a snapshot install from the leader's applied log.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, readAll } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'
import { agreedLeader, partitionOn, withMeshProcesses } from './support/mesh.ts'
import { pipelinedPublish } from '../bench/lib/ws-client.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

test('replica logs compact, and a follower that missed the compacted part is rebuilt from the leader and converges', { timeout: 240_000 }, async () => {
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
    // While it is down the others move on, and past what it holds once it has been silent for two election timeouts.
    const second = 12_000
    const more = await pipelinedPublish(nodes[leader].url, 'bulk', second, 64, 512, 120_000)
    assert.equal(more.acked, second)
    await waitFor(async () => (await replicaStart(nodes[leader])) > first, 'the leader compacts past what the dead follower holds', 30_000)
    await restart(follower)
    const total = (await api(nodes[leader].url, 'GET', '/topics/bulk')).json.offsets[0].high as number
    for (const [i, n] of nodes.entries()) {
      await waitFor(async () => (await api(n.url, 'GET', '/topics/bulk')).json.offsets[0].high >= total, `node ${i} holds all ${total}`, 60_000)
      const all = await readAll(n.url, 'bulk')
      assert.equal(all.length, total, `node ${i}`)
      assert.deepEqual(all.map(m => m.offset), all.map((_, k) => k), `node ${i}: dense offsets`)
    }
    const view = await partitionOn(nodes[follower].url, 'bulk') as { snapshot_installs?: number } | undefined
    assert.ok((view?.snapshot_installs ?? 0) >= 1, `the returning follower was rebuilt by a snapshot install: ${JSON.stringify(view)}`)
    const ok = await api(nodes[follower].url, 'POST', '/topics/bulk/messages', { payload: 'after' })
    assert.equal(ok.status, 201, JSON.stringify(ok.json))
    assert.equal(ok.json.offset, total)
  })
})
