// The partition replica step by step: elections, majority commit, fencing, Raft's figure-8 case, repair, validation.
// A hand-driven cluster (writes durable at once, messages delivered when the test says) so each scenario is exact.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { PartitionReplica } from '../../src/replication/replica.ts'
import { parseReplicationMessage } from '../../src/replication/messages.ts'
import { between, CFG, Cluster, freshMeta } from './hand-cluster.ts'
import type { Envelope } from './hand-cluster.ts'

describe('partition replica', () => {
  test('an election, a majority commit, and followers learning the commit point', () => {
    const c = new Cluster(3)
    c.timeout('s1')
    c.pump()
    assert.equal(c.r('s1').role, 'leader')
    assert.equal(c.r('s1').epoch, 1)
    assert.equal(c.r('s2').leader, 's1')
    c.propose('s1', ['a', 'b'])
    c.pump()
    assert.equal(c.r('s1').commit, 2)
    c.heartbeat(); c.pump()
    for (const id of c.ids) { assert.equal(c.r(id).commit, 2, id); assert.deepEqual(c.values(id), ['a', 'b']) }
  })

  test('nothing commits without a majority, and a follower answers only after its write is durable', () => {
    const c = new Cluster(3)
    c.timeout('s1'); c.pump()
    c.crash('s2'); c.crash('s3')
    c.propose('s1', ['x'])
    c.pump()
    assert.equal(c.r('s1').commit, 0, 'one of three is not a majority')
    c.start('s2')
    c.heartbeat(); c.pump()
    assert.equal(c.r('s1').commit, 1)
    // A write the replica asked for comes before the reply that depends on it.
    const r = new PartitionReplica<string>('a', ['a', 'b'], { meta: freshMeta(), entries: [], damaged: false }, 0, () => 0, CFG)
    r.receive('b', { v: 1, type: 'append', epoch: 1, leader: 'b', prev: 0, prevEpoch: 0, entries: [{ epoch: 1, value: 'v' }], commit: 0, stable: true, groups: {} }, 1)
    const actions = r.drain()
    assert.ok(actions.length > 0 && actions.every(a => a.type === 'write'), 'no reply before the write is durable')
    for (const a of actions) r.durable((a as { token: number }).token, 2)
    assert.deepEqual(r.drain().map(a => a.type), ['send'])
  })

  test('a stale leader is fenced by the epoch: its entry never commits and is cut when it rejoins', () => {
    const c = new Cluster(3)
    c.timeout('s1'); c.pump()
    c.propose('s1', ['committed']); c.pump()
    assert.equal(c.r('s1').commit, 1)
    c.isolate('s1')
    c.propose('s1', ['stale'])
    c.pump()
    c.timeout('s2'); c.pump()
    assert.equal(c.r('s2').role, 'leader')
    assert.equal(c.r('s2').epoch, 2)
    c.propose('s2', ['new']); c.pump()
    assert.equal(c.r('s2').commit, 2)
    assert.equal(c.r('s1').commit, 1, 'the isolated leader cannot commit')
    c.heal()
    c.heartbeat(); c.pump()
    assert.equal(c.r('s1').role, 'follower')
    assert.equal(c.r('s1').epoch, 2)
    c.heartbeat(); c.pump()
    for (const id of c.ids) assert.deepEqual(c.values(id), ['committed', 'new'], id)
  })

  test("Raft's figure 8: an old-epoch entry on a majority is re-stamped, so a rival with a newer epoch cannot erase it", () => {
    const c = new Cluster(5)
    const [s1, s2, s3, s4, s5] = c.ids
    // (a) s1 leads epoch 1 and gets 'a' to s2 only.
    c.timeout(s1); c.pump()
    c.propose(s1, ['a'])
    c.pump(between(s1, s2))
    c.queue = []
    // (b) s1 dies; s5 wins epoch 2 with s3 and s4, writes 'b' at the same offset, only locally, and dies.
    c.crash(s1)
    // Only the votes get through: s5's first appends (and with them its membership, stamped with epoch 2) are lost.
    c.timeout(s5); c.pump(e => between(s3, s4, s5)(e) && e.m.type !== 'append')
    assert.equal(c.r(s5).role, 'leader')
    c.propose(s5, ['b'])
    c.queue = []
    c.crash(s5)
    // (c) s1 returns and wins epoch 3 with s2 and s3; it gets its tail to s3: a majority (s1, s2, s3) holds 'a'.
    c.start(s1)
    c.elect(s1, between(s1, s2, s3))
    assert.equal(c.r(s1).commit, 1, "'a' commits, re-stamped with epoch 3")
    assert.equal(c.disks.get(s3)!.entries[0].epoch, 3)
    // (d) s1 dies; s5 returns with 'b' of epoch 2. Plain Raft without the current-epoch rule would let it win and erase 'a'.
    c.crash(s1)
    c.start(s5)
    c.timeout(s5); c.pump()
    assert.notEqual(c.r(s5).role, 'leader', 's5 must not win over logs of epoch 3')
    c.elect(s2)
    c.heartbeat(); c.pump(); c.heartbeat(); c.pump()
    for (const id of [s2, s3, s4, s5]) assert.deepEqual(c.values(id), ['a'], id)
  })

  test('a delayed, shorter batch never cuts entries the follower already acknowledged', () => {
    const c = new Cluster(3)
    c.timeout('s1'); c.pump()
    c.propose('s1', ['a'])
    const first = c.queue.filter(e => e.to === 's2' && e.m.type === 'append').map(e => structuredClone(e))
    c.pump()
    c.propose('s1', ['b', 'c']); c.pump()
    assert.deepEqual(c.values('s2'), ['a', 'b', 'c'])
    for (const e of first) c.queue.push(e) // the old batch arrives again, late
    c.pump()
    assert.deepEqual(c.values('s2'), ['a', 'b', 'c'])
  })

  test('a replica whose disk lost entries neither votes nor stands until it holds a stable commit point', () => {
    const c = new Cluster(3)
    c.timeout('s1'); c.pump()
    c.propose('s1', ['a', 'b', 'c']); c.pump()
    c.heartbeat(); c.pump()
    c.crash('s3')
    c.disks.get('s3')!.entries.length = 1 // the disk lost two acknowledged entries
    c.start('s3')
    assert.equal(c.r('s3').repairing, true)
    assert.equal(c.disks.get('s3')!.meta.repairing, true, 'the repair flag is durable')
    // It may not elect anyone, itself included.
    c.crash('s1')
    c.timeout('s3'); c.pump()
    assert.equal(c.r('s3').role, 'follower')
    const before = c.r('s3').epoch
    c.timeout('s2')
    c.pump(between('s2', 's3'))
    assert.notEqual(c.r('s2').role, 'leader', "s3's vote must not count while it repairs")
    assert.ok(c.r('s3').epoch >= before)
    // s1 returns and leads; s3 catches up from it and becomes a voter again.
    c.start('s1')
    c.elect('s1')
    c.heartbeat(); c.pump(); c.heartbeat(); c.pump()
    assert.deepEqual(c.values('s3'), ['a', 'b', 'c'])
    assert.equal(c.r('s3').repairing, false)
  })

  test('a vote only for a log at least as complete as the voter\'s', () => {
    const c = new Cluster(3)
    c.isolate('s3')
    c.timeout('s1'); c.pump()
    c.propose('s1', ['a']); c.pump()
    c.heal()
    c.crash('s1')
    c.timeout('s3'); c.pump()
    assert.notEqual(c.r('s3').role, 'leader', 's2 holds a longer log and refuses s3')
    c.elect('s2')
    assert.equal(c.r('s2').epoch, c.r('s3').epoch, 'one epoch, one leader')
  })

  test('pre-vote: a replica cut off and back does not depose a working leader', () => {
    const c = new Cluster(3)
    c.elect('s1')
    const epoch = c.r('s1').epoch
    c.isolate('s3')
    // The leader keeps heartbeating s2 meanwhile; s3's timer fires again and again.
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 7; j++) { c.heartbeat(); c.pump() }
      c.timeout('s3'); c.pump()
    }
    assert.equal(c.r('s3').epoch, epoch, 'pre-votes that reach nobody do not raise the epoch')
    c.heal()
    // Back, with its timer overdue while the others hear the leader: its pre-vote fails, nobody changes epoch.
    const notS3 = (e: Envelope): boolean => e.to !== 's3' && e.from !== 's3'
    for (let j = 0; j < 7; j++) { c.heartbeat(); c.pump(notS3) }
    c.queue = c.queue.filter(notS3)
    c.timeout('s3'); c.pump()
    c.heartbeat(); c.pump()
    assert.equal(c.r('s1').role, 'leader')
    assert.equal(c.r('s1').epoch, epoch, 'the leader kept its epoch')
    c.propose('s1', ['after']); c.pump(); c.heartbeat(); c.pump()
    assert.deepEqual(c.values('s3'), ['after'])
  })

  test('compaction: replicas drop what every replica holds, restart from the compacted log, and still agree', () => {
    const c = new Cluster(3)
    c.elect('s1')
    c.propose('s1', ['a', 'b', 'c', 'd', 'e', 'f']); c.pump(); c.heartbeat(); c.pump()
    assert.equal(c.r('s1').compactable, 6)
    for (const id of c.ids) { assert.ok(c.r(id).compact(Math.min(4, c.r(id).compactable)), id); c.flush(id) }
    for (const id of c.ids) { assert.equal(c.r(id).start, 4); assert.equal(c.disks.get(id)!.base, 4); assert.equal(c.r(id).entry(3), undefined) }
    // A follower restarts from its compacted disk and catches up with what came since.
    c.crash('s3')
    c.propose('s1', ['g', 'h']); c.pump()
    c.start('s3')
    c.heartbeat(); c.pump(); c.heartbeat(); c.pump()
    for (const id of c.ids) assert.deepEqual(c.values(id), ['e', 'f', 'g', 'h'], id)
    assert.equal(c.r('s3').commit, 8)
    // A new leader can come from a compacted replica: its base epoch stands in for the entries it dropped.
    c.crash('s1')
    c.elect('s2')
    c.propose('s2', ['i']); c.pump(); c.heartbeat(); c.pump()
    assert.deepEqual(c.values('s3'), ['e', 'f', 'g', 'h', 'i'])
    // compact() itself never goes past the commit point (callers also cap it at `compactable`).
    assert.equal(c.r('s2').compact(100), true)
    c.flush('s2')
    assert.equal(c.r('s2').start, Math.min(c.r('s2').commit, 9))
  })

  test('snapshot install: a follower that was away while the others compacted past it is rebuilt and catches up', () => {
    const c = new Cluster(3)
    c.elect('s1')
    c.propose('s1', ['a', 'b']); c.pump(); c.heartbeat(); c.pump()
    c.crash('s3')
    c.propose('s1', ['c', 'd', 'e', 'f']); c.pump()
    // s3 has been silent for two election timeouts: it no longer holds compaction back.
    for (let i = 0; i < 14; i++) { c.heartbeat(); c.pump() }
    assert.equal(c.r('s1').compactable, 6)
    assert.ok(c.r('s1').compact(5)); c.flush('s1')
    assert.ok(c.r('s2').compact(5)); c.flush('s2')
    c.start('s3')
    for (let i = 0; i < 3; i++) { c.heartbeat(); c.pump() }
    assert.equal(c.installs, 1, 'one snapshot offer taken up')
    assert.equal(c.r('s3').start, 5)
    assert.deepEqual(c.values('s3'), ['f'])
    assert.equal(c.r('s3').commit, 6)
    c.propose('s1', ['g']); c.pump(); c.heartbeat(); c.pump()
    assert.deepEqual(c.values('s3'), ['f', 'g'])
  })

  test('malformed replication messages are refused by the parser, with the reason', () => {
    const bad: unknown[] = [
      null, 42, 'append', [], {}, { v: 2, type: 'vote', epoch: 1, candidate: 'a', lastEpoch: 0, end: 0 },
      { v: 1, type: 'vote', epoch: -1, candidate: 'a', lastEpoch: 0, end: 0 },
      { v: 1, type: 'vote', epoch: 1, candidate: 7, lastEpoch: 0, end: 0 },
      { v: 1, type: 'append', epoch: 1, leader: 'a', prev: 0, prevEpoch: 0, entries: 'x', commit: 0, stable: true, groups: {} },
      { v: 1, type: 'append', epoch: 1, leader: 'a', prev: 0, prevEpoch: 0, entries: [{ epoch: 'one', value: 1 }], commit: 0, stable: true, groups: {} },
      { v: 1, type: 'append', epoch: 1, leader: 'a', prev: 0, prevEpoch: 0, entries: [], commit: 0, stable: true, groups: { g: -3 } },
      { v: 1, type: 'append-reply', epoch: 1, from: 'a', ok: 'yes', end: 0 },
      { v: 1, type: 'gossip', epoch: 1 },
    ]
    for (const m of bad) assert.throws(() => parseReplicationMessage(m), (e: Error & { code?: string }) => e.code === 'BAD_REQUEST', JSON.stringify(m))
    const good = { v: 1, type: 'append', epoch: 1, leader: 'a', prev: 0, prevEpoch: 0, entries: [{ epoch: 1, value: 'x' }], commit: 0, stable: true, groups: { g: 0 } }
    assert.deepEqual(parseReplicationMessage(good), good)
  })
})
