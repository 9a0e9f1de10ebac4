// Three real node processes over TCP on loopback, replication 3: publishes through one node while the partition leader
// is SIGKILLed resume through the survivors, and after the restart every replica holds every acknowledged message once.
import { spawnSync } from 'node:child_process'
import { join, resolve } from 'node:path'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, readAll } from './support/gem-process.ts'
import { agreedLeader, partitionOn, withMeshProcesses } from './support/mesh.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

const CLI = join(resolve(import.meta.dirname, '..'), 'packages/node/src/cli/main.ts')

test('publish through one node while the partition leader is SIGKILLed: publishing resumes, and every replica converges', { timeout: 180_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes, ids, restart }) => {
    const created = await api(nodes[0].url, 'POST', '/topics', { name: 'orders', replication: 3 })
    assert.equal(created.status, 201, JSON.stringify(created.json))
    assert.equal(created.json.replication, 3)
    // Every node learns the topic and its replicas elect one leader.
    const leaderId = await agreedLeader(nodes, 'orders')
    const leaderIndex = ids.indexOf(leaderId)
    assert.ok(leaderIndex >= 0)
    // Publish through a node that is not the leader, so the publish is forwarded, and keep going through the kill.
    const entry = nodes[(leaderIndex + 1) % 3]
    const acked = new Map<string, number>()
    const failures: string[] = []
    let killedAt = -1
    let firstAfterKill = -1
    const total = 400
    for (let i = 0; i < total; i++) {
      if (i === 150) { await nodes[leaderIndex].kill(); killedAt = Date.now() }
      const id = `m-${i}`
      // A client retries a failed publish with the same id; idempotency keeps it stored once.
      for (let attempt = 0; ; attempt++) {
        const r = await api(entry.url, 'POST', '/topics/orders/messages', { id, payload: `order ${i}` })
        if (r.status === 201) {
          acked.set(id, r.json.offset)
          if (killedAt > 0 && firstAfterKill < 0) firstAfterKill = Date.now()
          break
        }
        if (attempt > 20) { failures.push(`${id}: ${r.status} ${JSON.stringify(r.json)}`); break }
      }
    }
    assert.deepEqual(failures, [])
    assert.equal(acked.size, total)
    console.log(`failover: first acknowledged publish ${firstAfterKill - killedAt} ms after the SIGKILL of the leader`)
    const newLeader = await waitFor(async () => { const v = await partitionOn(entry.url, 'orders'); return v?.leader !== leaderId && v?.leader !== null ? v?.leader : undefined }, 'a new leader', 20_000)
    assert.notEqual(newLeader, leaderId)
    const epochAfter = (await partitionOn(entry.url, 'orders'))!.epoch

    // Membership (SWIM) notices the SIGKILL: the survivors report the killed node suspect, then dead.
    await waitFor(async () => {
      const nodesSeen = (await api(entry.url, 'GET', '/cluster')).json.nodes as Array<{ id: string, state: string }>
      return nodesSeen.find(n => n.id === leaderId)?.state === 'dead'
    }, 'the killed leader reported dead by a survivor', 30_000)

    // The killed node comes back on its data directory and catches up.
    await restart(leaderIndex)
    for (const [i, n] of nodes.entries()) {
      await waitFor(async () => (await readAll(n.url, 'orders')).length >= total, `node ${i} holds all ${total} messages`, 60_000)
      const all = await readAll(n.url, 'orders')
      const seen = new Map<string, number>()
      for (const m of all) {
        assert.ok(!seen.has(m.id), `node ${i}: ${m.id} stored twice`)
        seen.set(m.id, m.offset)
      }
      for (const [id, offset] of acked) assert.equal(seen.get(id), offset, `node ${i}: acknowledged ${id} at offset ${offset}`)
      assert.deepEqual(all.map(m => m.offset), all.map((_, k) => k), `node ${i}: dense offsets`)
    }
    const back = await partitionOn(nodes[leaderIndex].url, 'orders')
    assert.ok(back!.epoch >= epochAfter, 'the returning node follows the newer epoch')

    // `gem status` shows the ring's view: every node, the partition's leader, and each replica's lag (0 once converged).
    const shows = (out: string): boolean => {
      const row = out.split('\n').find(l => l.trim().startsWith('orders/0'))
      return ids.every(id => new RegExp(`${id}\\s+alive`).test(out)) && row !== undefined &&
        new RegExp(`${newLeader}\\s+\\d+\\s+${total}\\s`).test(row) && ids.every(id => new RegExp(`${id}\\*?:0`).test(row))
    }
    let last = ''
    await waitFor(() => {
      const status = spawnSync(process.execPath, [CLI, 'status', '--url', nodes[leaderIndex].url], { encoding: 'utf8', timeout: 20_000 })
      assert.equal(status.status, 0, status.stderr)
      last = status.stdout
      return shows(last)
    }, 'gem status to show three alive nodes, the leader and zero lag', 20_000).catch(err => { throw new Error(`${(err as Error).message}\n${last}`) })
  })
})
