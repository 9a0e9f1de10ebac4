// `gem status`'s partition table: joining every node's /cluster view into leader, lag and moves under way.
// Pure functions over /cluster bodies; the end-to-end `gem status` run is in test/mesh-failover.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { describeMove, meshPartitions } from '../src/cli/status.ts'

const part = (leader: string, end: number, extra: Record<string, unknown> = {}) =>
  ({ topic: 'orders', partition: 0, leader, replicas: ['a', 'b', 'c'], epoch: 2, offsets: { end }, ...extra })

test('the partition table takes lag from each replica and a move under way from the leader', () => {
  const nodes = [{ id: 'a' }, { id: 'b' }, { id: 'c' }]
  const moving = { step: 'catching-up', peer: 'd', target: ['a', 'b', 'd'], cause: 'load', learners: ['d'] }
  const views = [
    { partitions: [part('a', 100, { moving })] },
    { partitions: [part('a', 97)] },
    undefined, // a node that did not answer
  ]
  const [p] = meshPartitions(nodes, views)
  assert.equal(p.leader, 'a')
  assert.equal(p.end, 100)
  assert.deepEqual(p.replicas.map(r => r.lag), [0, 3, undefined])
  assert.deepEqual(p.moving, moving)
  assert.equal(describeMove(p.moving), 'catching-up d (load); learners d')
  // Only a follower's view mentions learners (it is not the leader's): not shown as a move.
  const [q] = meshPartitions(nodes, [{ partitions: [part('a', 5)] }, { partitions: [part('a', 5, { moving })] }, undefined])
  assert.equal(q.moving, undefined)
  assert.equal(describeMove(undefined), '-')
  assert.equal(describeMove({ learners: ['x', 'y'] }), 'learners x,y')
})
