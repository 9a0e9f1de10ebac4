// ReplicationService replica set changes and leadership transfer between real libp2p hosts in one process: a learner
// joins and catches up, a replica leaves, and transferLeadership moves the leader; nothing committed is lost.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Broker, GemError, MemoryTier } from '@gem-mesh/core'
import { ReplicationService, TierReplicaStore } from '@gem-mesh/core/mesh'
import type { MeshNode } from '@gem-mesh/core/mesh'
import { toRecord } from '../../../core/src/message.ts'
import { fullMesh, tcpAddr, waitFor, withMesh } from './mesh-harness.ts'

const TOPIC = 't'
const te = new TextEncoder()

interface Replica { host: MeshNode, broker: Broker, service: ReplicationService }

async function replicaOn (host: MeshNode): Promise<Replica> {
  const broker = await Broker.open({ tier: new MemoryTier() })
  await broker.createTopic(TOPIC, { partitions: 1 })
  const service = new ReplicationService({ transport: host, store: new TierReplicaStore(new MemoryTier()), broker })
  await service.start()
  return { host, broker, service }
}

const leaderOf = (rs: Replica[]): Replica | undefined => rs.find(r => r.service.views()[0]?.role === 'leader')

async function publish (rs: Replica[], from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    await waitFor(async () => {
      const leader = leaderOf(rs)
      if (leader === undefined) return false
      try {
        await leader.service.propose(TOPIC, 0, [toRecord(TOPIC, { payload: te.encode(`m${i}`) }, `m${i}`, 0)])[0]
        return true
      } catch (err) { if (GemError.is(err, 'NOT_LEADER')) return false; throw err }
    }, `m${i} committed`, 20_000)
  }
}

async function ids (r: Replica): Promise<string[]> {
  return (await r.broker.read(TOPIC, 0, 0, 10_000)).messages.map(m => m.id)
}

test('a learner joins and catches up, a replica leaves, and transferLeadership hands the leadership over', { timeout: 120_000 }, async () => {
  await withMesh(async mesh => {
    const a = await mesh.start()
    const hosts = [a, ...await Promise.all([1, 2, 3].map(() => mesh.start({ bootstrap: [tcpAddr(a)] })))]
    await fullMesh(hosts)
    const rs = await Promise.all(hosts.map(h => replicaOn(h)))
    const [r0, r1, r2, r3] = rs
    const peer = (r: Replica): string => r.host.localPeerId
    const first = [r0, r1, r2]
    try {
      for (const r of first) await r.service.host(TOPIC, 0, first.map(peer))
      await publish(first, 0, 20)

      // Add r3: it hosts as a learner, the leader adds it, it catches up and is promoted.
      const leader = leaderOf(first)!
      const view = leader.service.views()[0]
      await r3.service.host(TOPIC, 0, { voters: view.voters, learners: [peer(r3)] })
      await waitFor(() => leader.service.views()[0].membershipCommitted, 'the leader\'s membership committed', 20_000)
      leader.service.addReplica(TOPIC, 0, peer(r3))
      await waitFor(() => { const v = leader.service.views()[0]; return v.voters.length === 4 && v.learners.length === 0 && v.membershipCommitted }, 'r3 promoted to voter', 20_000)
      await waitFor(async () => (await ids(r3)).length === 20, 'r3 applied everything committed', 20_000)

      // Transfer the leadership to r3; proposals meanwhile are refused with NOT_LEADER, none is lost.
      await leader.service.transferLeadership(TOPIC, 0, peer(r3))
      await waitFor(() => r3.service.views()[0].role === 'leader', 'r3 leads', 20_000)
      await assert.rejects(r3.service.transferLeadership(TOPIC, 0, 'not-a-voter'), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      await assert.rejects(leader.service.transferLeadership(TOPIC, 0, peer(r0)), (e: unknown) => GemError.is(e, 'NOT_LEADER'))
      await publish(rs, 20, 10)

      // Remove the old leader: the three others carry on and commit.
      await waitFor(() => r3.service.views()[0].membershipCommitted, 'r3\'s membership committed', 20_000)
      r3.service.removeReplica(TOPIC, 0, peer(leader))
      await waitFor(() => { const v = r3.service.views()[0]; return v.voters.length === 3 && v.membershipCommitted && !v.voters.includes(peer(leader)) }, 'old leader removed', 20_000)
      await leader.service.unhost(TOPIC, 0, true)
      const rest = rs.filter(r => r !== leader)
      await publish(rest, 30, 10)
      const expected = Array.from({ length: 40 }, (_, i) => `m${i}`)
      for (const r of rest) await waitFor(async () => JSON.stringify(await ids(r)) === JSON.stringify(expected), `${peer(r)} holds all 40 once, in order`, 20_000)
    } finally {
      for (const r of rs) await r.service.close()
    }
  })
})
