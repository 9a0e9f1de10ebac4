// ReplicationService on a fake transport in virtual time: what a proposal's publisher hears when the commit stalls.
// The storage is real core code (TierReplicaStore, Broker) on memory tiers; nothing here touches the network.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Broker } from '../../src/broker.ts'
import { ManualClock } from '../../src/clock.ts'
import { GemError } from '../../src/errors.ts'
import { ReplicationService } from '../../src/mesh/replication-service.ts'
import type { MeshTransport } from '../../src/mesh/transport.ts'
import { TierReplicaStore } from '../../src/replication/replica-store.ts'
import { MemoryTier } from '../../src/store/memory-tier.ts'
import { GatedTier } from '../gated-tier.ts'
import { toRecord } from '../../src/message.ts'
import { settle } from '../wait-for.ts'

/** A lone node: nothing to send to, no handlers needed. */
function loneTransport (id: string): MeshTransport {
  return {
    localPeerId: id,
    send: async () => {},
    request: async () => { throw new GemError('PEER_UNREACHABLE', 'alone') },
    handle: async () => {},
    unhandle: async () => {},
    peers: () => [],
    on: () => () => {},
    close: async () => {},
  } as unknown as MeshTransport
}

test('a proposal whose commit stalls is answered TIMEOUT after the commit timeout, with the reason reported', async () => {
  const clock = new ManualClock()
  const broker = await Broker.open({ tier: new MemoryTier(), clock, retentionCheckMs: 0 })
  await broker.createTopic('t')
  const replicaTier = new GatedTier()
  const errors: Array<{ where: string, err: unknown }> = []
  const service = new ReplicationService({
    transport: loneTransport('self'), store: new TierReplicaStore(replicaTier), broker, clock, random: () => 0.5,
    commitTimeoutMs: 1_000, onError: (where, err) => { errors.push({ where, err }) },
  })
  await service.start()
  await service.host('t', 0, ['self'])
  for (let i = 0; i < 100 && service.leaderOf('t', 0) !== 'self'; i++) { clock.advance(20); await settle() }
  assert.equal(service.leaderOf('t', 0), 'self', 'a lone replica elects itself')

  // Committed and applied while the disk answers.
  const [ok] = service.propose('t', 0, [toRecord('t', { payload: new Uint8Array([1]) }, 'a', 0)])
  for (let i = 0; i < 20; i++) { clock.advance(10); await settle() }
  assert.equal((await ok).offset, 0)

  replicaTier.hold = true // a disk that stopped answering: its writes never land
  const [stuck] = service.propose('t', 0, [toRecord('t', { payload: new Uint8Array([2]) }, 'b', 0)])
  let outcome: unknown
  stuck.then(() => { outcome = 'resolved' }, err => { outcome = err })
  for (let i = 0; i < 90; i++) { clock.advance(10); await settle() }
  assert.equal(outcome, undefined, 'still waiting before the timeout')
  for (let i = 0; i < 30; i++) { clock.advance(10); await settle() }
  assert.ok(GemError.is(outcome, 'TIMEOUT'), `TIMEOUT expected, got ${String(outcome)}`)
  assert.ok(errors.some(e => e.where === 'commit-timeout'), 'the stall is reported')
  await service.close()
  await broker.close()
})
