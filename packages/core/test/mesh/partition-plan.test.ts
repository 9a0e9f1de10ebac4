// The reassignment planner: where a partition's replicas should go as servers join and leave, moving only what the
// ring moves (so a load-made placement stays), replacing servers that are gone, never shrinking a replica set.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { planPartitions } from '../../src/mesh/partition-mover.ts'
import type { MeshTopic } from '../../src/mesh/mesh-broker.ts'
import { HashRing } from '../../src/ring/hash-ring.ts'
import { assignPartitions } from '../../src/ring/assign-partitions.ts'

const PARTITIONS = 12
const servers = (n: number): string[] => Array.from({ length: n }, (_, i) => `peer-${i}`)

function ringPlacement (over: string[]): string[][] {
  const ring = HashRing.from([...over].sort().map(id => ({ id, weight: 1 })))
  const placed = assignPartitions(ring, Array.from({ length: PARTITIONS }, (_, p) => ({ key: `t/${p}` })), { replication: 3 })
  return Array.from({ length: PARTITIONS }, (_, p) => placed.get(`t/${p}`)!)
}

function topic (replicas: string[][], over: string[]): MeshTopic {
  return { name: 't', partitions: PARTITIONS, replication: 3, retention: {} as MeshTopic['retention'], createdAt: 1, replicas, servers: over }
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort()
const targets = (def: MeshTopic, now: string[]): string[][] => {
  const plan = planPartitions([def], now, () => undefined)
  return Array.from({ length: PARTITIONS }, (_, p) => sorted(plan.get(`t/${p}`)!.target))
}

test('no server change: the placement stays, even one the ring would not have made (made on load)', () => {
  const five = servers(5)
  const placed = ringPlacement(five)
  const onLoad = placed.map((r, p) => p === 0 ? [r[0], r[1], five.find(s => !r.includes(s))!] : r)
  assert.deepEqual(targets(topic(onLoad, five), five), onLoad.map(sorted))
})

test('a join: exactly what the ring moves moves, to the new server; the rest stays', () => {
  const five = servers(5)
  const six = servers(6)
  const def = topic(ringPlacement(five), five)
  const planned = targets(def, six)
  assert.deepEqual(planned, ringPlacement(six).map(sorted))
  let moved = 0
  planned.forEach((t, p) => {
    const gone = def.replicas[p].filter(r => !t.includes(r))
    assert.ok(gone.length <= 1, `partition ${p}: one replica at most moves on one join`)
    if (gone.length === 1) { moved++; assert.ok(t.includes('peer-5'), `partition ${p} moves to the new server`) }
  })
  assert.ok(moved > 0 && moved < PARTITIONS, `some partitions move, not all (${moved})`)
})

test('a server gone: its replicas are replaced, the others stay; too few servers: nothing is planned', () => {
  const five = servers(5)
  const def = topic(ringPlacement(five), five)
  const four = five.filter(s => s !== 'peer-2')
  const planned = targets(def, four)
  planned.forEach((t, p) => {
    assert.equal(t.length, 3)
    assert.ok(!t.includes('peer-2'))
    for (const r of def.replicas[p]) if (r !== 'peer-2') assert.ok(t.includes(r), `partition ${p} keeps ${r}`)
  })
  assert.equal(planPartitions([def], ['peer-0', 'peer-1'], () => undefined).size, 0)
})

test("the leader's current membership counts over the definition, and an older definition only replaces the gone", () => {
  const five = servers(5)
  const def = topic(ringPlacement(five), five)
  const { servers: _omit, ...legacy } = def
  const six = servers(6)
  assert.deepEqual(targets(legacy, six), def.replicas.map(sorted), 'no base: a join moves nothing')
  const current = ['peer-0', 'peer-1', 'peer-4']
  const plan = planPartitions([legacy], five.filter(s => s !== 'peer-4'), key => key === 't/0' ? current : undefined)
  assert.deepEqual(sorted(plan.get('t/0')!.target).filter(r => r !== 'peer-4').slice(0, 2), ['peer-0', 'peer-1'])
  assert.ok(!plan.get('t/0')!.target.includes('peer-4'))
})
