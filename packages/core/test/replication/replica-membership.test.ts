// Replica set changes and leadership transfer, step by step: learners catch up before they vote, one change at a time,
// a new leader's own commit first, removal, dense offsets, TimeoutNow, and bad membership frames refused with a code.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { GemError } from '../../src/errors.ts'
import { parseReplicationMessage } from '../../src/replication/messages.ts'
import { between, CFG, Cluster } from './hand-cluster.ts'

/** s1 leads a settled 3-replica cluster holding `values`. */
function settled (values: string[] = ['a', 'b']): Cluster {
  const c = new Cluster(3)
  c.elect('s1')
  c.propose('s1', values); c.pump()
  c.heartbeat(); c.pump()
  assert.equal(c.r('s1').changeable, true)
  return c
}

const code = (fn: () => void): string | undefined => {
  try { fn(); return undefined } catch (err) { return GemError.is(err) ? err.code : 'not a GemError' }
}

describe('replica membership', () => {
  test('a joining replica is a learner until it holds the log, then the leader promotes it; offsets stay dense', () => {
    const c = settled(['a', 'b', 'c'])
    const leader = c.r('s1')
    c.join('s4', { voters: ['s1', 's2', 's3'], learners: ['s4'] })
    c.isolate('s4')
    leader.addReplica('s4', c.now); c.flush('s1'); c.pump()
    assert.deepEqual([...leader.learners], ['s4'])
    // Cut off, it cannot catch up: it stays a learner however long the leader waits, and commits do not wait for it.
    for (let i = 0; i < 5; i++) { c.heartbeat(); c.pump() }
    assert.deepEqual([...leader.voters], ['s1', 's2', 's3'])
    c.propose('s1', ['d']); c.pump()
    assert.equal(leader.commit, 4)
    // Reachable again: it catches up, and only then is promoted, one change later.
    c.heal()
    for (let i = 0; i < 4; i++) { c.heartbeat(); c.pump() }
    assert.deepEqual([...leader.voters], ['s1', 's2', 's3', 's4'])
    assert.deepEqual([...leader.learners], [])
    assert.equal(leader.configCommitted, true)
    for (const id of ['s1', 's2', 's3', 's4']) {
      assert.deepEqual(c.values(id), ['a', 'b', 'c', 'd'], `${id}: only records in the log, at dense offsets`)
      assert.deepEqual(c.r(id).voters, ['s1', 's2', 's3', 's4'], `${id} holds the membership`)
    }
    // Four voters: a commit needs three of them.
    c.isolate('s3'); c.isolate('s4')
    c.propose('s1', ['e']); c.pump(); c.heartbeat(); c.pump()
    assert.equal(leader.commit, 4, 'two of four voters are not a majority')
  })

  test('one change at a time: a second change waits until the first is committed', () => {
    const c = settled()
    const leader = c.r('s1')
    c.join('s4', { voters: ['s1', 's2', 's3'], learners: ['s4'] })
    leader.addReplica('s4', c.now); c.flush('s1')
    assert.equal(leader.changeable, false)
    assert.equal(code(() => leader.removeReplica('s3', c.now)), 'UNAVAILABLE')
    c.pump(); c.heartbeat(); c.pump()
    assert.equal(leader.configCommitted, true)
  })

  test("a new leader accepts no change before its own membership and log are committed in its epoch (Ongaro's fix)", () => {
    const c = new Cluster(3)
    c.timeout('s1'); c.pump(e => e.m.type !== 'append') // elected, but none of its appends has arrived yet
    const leader = c.r('s1')
    assert.equal(leader.role, 'leader')
    assert.equal(leader.changeable, false)
    assert.equal(code(() => leader.addReplica('s4', c.now)), 'UNAVAILABLE')
    c.pump()
    assert.equal(leader.changeable, true)
    assert.equal(leader.membership.epoch, leader.epoch, 'the membership is re-stamped with the new epoch')
  })

  test("Ongaro's bug: a leader that changed the membership before its own epoch committed would let two disjoint majorities commit", () => {
    // Four voters; s1 leads and removes s4, but the change reaches nobody (s1 is cut off): s1 now counts {s1,s2,s3}.
    const c = new Cluster(4)
    c.elect('s1'); c.propose('s1', ['a']); c.pump(); c.heartbeat(); c.pump()
    c.isolate('s1')
    c.r('s1').removeReplica('s4', c.now); c.flush('s1')
    // s2 wins epoch 2 with s3 and s4; then s3 is slow: none of s2's appends reach it.
    c.elect('s2', e => between('s2', 's3', 's4')(e) && !(e.from === 's2' && e.to === 's3' && e.m.type === 'append'))
    c.cut.add('s2>s3'); c.cut.add('s3>s2')
    // s2 tries to remove s3 at once. It must be refused: {s1,s2,s4}, in which s2 and s4 decide, is disjoint from the
    // s1 and s3 that decide in s1's {s1,s2,s3}. (A leader that skips its own-epoch commit accepts, and the end diverges.)
    assert.ok([undefined, 'UNAVAILABLE'].includes(code(() => c.r('s2').removeReplica('s3', c.now))))
    c.flush('s2')
    c.propose('s2', ['b']); c.pump(between('s2', 's4')); c.heartbeat(); c.pump(between('s2', 's4'))
    // s1 comes back with s3 only and wins with it; whatever it commits must agree with what s2 committed.
    c.heal(); c.isolate('s2'); c.isolate('s4'); c.cut.delete('s1>s3'); c.cut.delete('s3>s1')
    c.elect('s1', between('s1', 's3'))
    c.propose('s1', ['x']); c.pump(between('s1', 's3')); c.heartbeat(); c.pump(between('s1', 's3'))
    const committed = (id: string): string[] => c.values(id).slice(0, c.r(id).commit)
    const [one, two] = [committed('s1'), committed('s2')]
    for (let i = 0; i < Math.min(one.length, two.length); i++) assert.equal(one[i], two[i], `offset ${i} committed as ${one[i]} by s1 and ${two[i]} by s2`)
  })

  test('a vote weighs the membership too: a candidate whose log is complete but whose membership is stale cannot win', () => {
    // s3 holds every record but misses the next two changes: s4 joins ({s1,s2,s3,s4}), then s2 leaves ({s1,s3,s4}).
    const c = new Cluster(3)
    c.elect('s1'); c.propose('s1', ['a']); c.pump(); c.heartbeat(); c.pump()
    c.isolate('s3')
    c.join('s4', { voters: ['s1', 's2', 's3'], learners: ['s4'] })
    c.r('s1').addReplica('s4', c.now); c.flush('s1')
    for (let i = 0; i < 6 && !(c.r('s1').voters.length === 4 && c.r('s1').changeable); i++) { c.pump(); c.heartbeat() }
    c.pump()
    assert.deepEqual([...c.r('s1').voters], ['s1', 's2', 's3', 's4'])
    c.r('s1').removeReplica('s2', c.now); c.flush('s1')
    c.pump(between('s1', 's4')); c.heartbeat(); c.pump(between('s1', 's4'))
    assert.equal(c.r('s1').configCommitted, true)
    // s1 dies; s3 (still on {s1,s2,s3}) asks s2, which was removed but holds the newer {s1,s2,s3,s4}: refused. Had s2
    // looked at records only, s3 would lead {s1,s2,s3} and commit with s2 while s1 and s4 commit in {s1,s3,s4}.
    c.crash('s1')
    c.heal(); c.isolate('s4'); c.isolate('s1')
    for (let i = 0; i < 5 && c.r('s3').role !== 'leader'; i++) { c.timeout('s3'); c.pump(between('s2', 's3')) }
    if (c.r('s3').role === 'leader') { c.propose('s3', ['x']); c.pump(between('s2', 's3')); c.heartbeat(); c.pump(between('s2', 's3')) }
    c.start('s1'); c.heal(); c.isolate('s2'); c.isolate('s3')
    c.elect('s1', between('s1', 's4'))
    c.propose('s1', ['y']); c.pump(between('s1', 's4')); c.heartbeat(); c.pump(between('s1', 's4'))
    const committed = (id: string): string[] => c.values(id).slice(0, c.r(id).commit)
    const [one, three] = [committed('s1'), committed('s3')]
    for (let i = 0; i < Math.min(one.length, three.length); i++) assert.equal(three[i], one[i], `offset ${i} committed as ${three[i]} by s3 and ${one[i]} by s1`)
  })

  test('a removed replica gets no more of the log once removed; the leader cannot remove itself', () => {
    const c = settled()
    const leader = c.r('s1')
    assert.equal(code(() => leader.removeReplica('s1', c.now)), 'BAD_REQUEST')
    assert.equal(code(() => c.r('s2').removeReplica('s3', c.now)), 'NOT_LEADER')
    leader.removeReplica('s3', c.now); c.flush('s1'); c.pump()
    assert.equal(leader.configCommitted, true)
    assert.deepEqual([...leader.voters], ['s1', 's2'])
    c.propose('s1', ['c']); c.pump(); c.heartbeat(); c.pump()
    assert.equal(leader.commit, 3, 'two voters commit')
    assert.deepEqual(c.values('s3'), ['a', 'b'], 's3 no longer receives the log')
    assert.deepEqual(c.values('s2'), ['a', 'b', 'c'])
  })

  test('a membership is taken by a follower only once its log matches the leader through `at`', () => {
    const c = settled(['a'])
    c.isolate('s3')
    c.propose('s1', ['b', 'c']); c.pump()
    c.join('s4', { voters: ['s1', 's2', 's3'], learners: ['s4'] })
    c.r('s1').addReplica('s4', c.now); c.flush('s1')
    c.heal()
    // The first append s3 sees starts past its log end: refused, and the membership in it not taken.
    const first = c.queue.findIndex(e => e.to === 's3' && e.m.type === 'append')
    const [e] = c.queue.splice(first, 1)
    c.r('s3').receive(e.from, e.m, c.now); c.flush('s3')
    assert.deepEqual([...c.r('s3').learners], [])
    c.pump(); c.heartbeat(); c.pump()
    assert.deepEqual([...c.r('s3').replicas].sort(), ['s1', 's2', 's3', 's4'])
  })

  test('leadership transfer: proposals stop, the target catches up and wins the next epoch, nothing is lost', () => {
    const c = settled(['a', 'b'])
    c.isolate('s2')
    c.propose('s1', ['c']); c.pump()
    c.heal()
    const epoch = c.r('s1').epoch
    c.r('s1').transferLeadership('s2', c.now); c.flush('s1')
    assert.equal(code(() => c.r('s1').propose(['x'], c.now)), 'NOT_LEADER')
    c.pump(); c.heartbeat(); c.pump()
    assert.equal(c.r('s2').role, 'leader')
    assert.equal(c.r('s2').epoch, epoch + 1)
    assert.equal(c.r('s1').role, 'follower')
    c.heartbeat(); c.pump()
    for (const id of ['s1', 's2', 's3']) assert.deepEqual(c.values(id), ['a', 'b', 'c'], id)
    assert.equal(code(() => c.r('s1').transferLeadership('s3', c.now)), 'NOT_LEADER')
    assert.equal(code(() => c.r('s2').transferLeadership('s9', c.now)), 'BAD_REQUEST')
  })

  test('a transfer to an unreachable target is abandoned after an election timeout and proposals resume', () => {
    const c = settled()
    c.isolate('s3')
    c.r('s1').transferLeadership('s3', c.now); c.flush('s1')
    assert.equal(c.r('s1').transferringTo, 's3')
    for (let t = 0; t <= CFG.electionMaxMs; t += CFG.heartbeatMs) { c.heartbeat(); c.pump(between('s1', 's2')) }
    assert.equal(c.r('s1').role, 'leader')
    assert.equal(c.r('s1').transferringTo, undefined)
    c.propose('s1', ['c']); c.pump(); c.heartbeat(); c.pump()
    assert.equal(c.r('s1').commit, 3)
  })

  test('bad membership and transfer fields are refused with BAD_REQUEST', () => {
    const append = { v: 1, type: 'append', epoch: 1, leader: 's1', prev: 0, prevEpoch: 0, entries: [], commit: 0, stable: true, groups: {} }
    const bad = [
      { ...append, config: { epoch: 1, version: 1, at: 0, voters: [], learners: [] } },
      { ...append, config: { epoch: 1, version: 1, at: 0, voters: ['s1', 's1'], learners: [] } },
      { ...append, config: { epoch: 1, version: 1, at: 0, voters: ['s1'], learners: ['s1'] } },
      { ...append, config: { epoch: 1, version: -1, at: 0, voters: ['s1'], learners: [] } },
      { v: 1, type: 'timeout-now', epoch: 1 },
      { v: 1, type: 'vote', epoch: 1, candidate: 's1', lastEpoch: 0, end: 0, transfer: 'yes' },
      { v: 1, type: 'append-reply', epoch: 1, from: 's1', ok: true, end: 0, configVersion: 1.5 },
    ]
    for (const m of bad) assert.throws(() => parseReplicationMessage(m), (err: unknown) => GemError.is(err, 'BAD_REQUEST'), JSON.stringify(m))
    assert.equal(parseReplicationMessage({ v: 1, type: 'timeout-now', epoch: 1, leader: 's1' }).type, 'timeout-now')
  })
})
