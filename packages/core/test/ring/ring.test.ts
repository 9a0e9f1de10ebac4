// Ring: hashing, the immutable ring, bounded-load placement at 1000 nodes, movement on join/leave, determinism.
// Pure computation: no I/O, nothing to clean up. Measured ratios go to test diagnostics, never to timing asserts.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { GemError } from '../../src/errors.ts'
import { HashRing, PartitionSet, assignPartitions, hashKey, movedKeys } from '../../src/ring/index.ts'
import type { Placement, RingNode } from '../../src/ring/index.ts'

const WEIGHTS = [1, 2, 4]
const nodesOf = (count: number, prefix = 'node'): RingNode[] =>
  Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}`, weight: WEIGHTS[i % WEIGHTS.length] }))
const keysOf = (count: number, prefix = 'topic'): Array<{ key: string }> =>
  Array.from({ length: count }, (_, i) => ({ key: `${prefix}-${i % 97}/${i}` }))

/** Replica slots and leaderships per node id. */
function loads (placement: Placement): { slots: Map<string, number>, leaders: Map<string, number> } {
  const slots = new Map<string, number>()
  const leaders = new Map<string, number>()
  for (const ids of placement.values()) {
    leaders.set(ids[0], (leaders.get(ids[0]) ?? 0) + 1)
    for (const id of ids) slots.set(id, (slots.get(id) ?? 0) + 1)
  }
  return { slots, leaders }
}

/** Max over nodes of load / weight, divided by the capacity-weighted mean (total load / total weight). */
function maxOverMean (nodes: readonly RingNode[], load: Map<string, number>): number {
  let total = 0
  let weight = 0
  let max = 0
  for (const n of nodes) {
    if (n.weight === 0) continue
    const l = load.get(n.id) ?? 0
    total += l
    weight += n.weight
    max = Math.max(max, l / n.weight)
  }
  return max / (total / weight)
}

const diag = (t: unknown, msg: string): void => { (t as { diagnostic?: (m: string) => void } | undefined)?.diagnostic?.(msg) }

const throwsCode = (fn: () => unknown, code: string): void => {
  assert.throws(fn, (err: unknown) => GemError.is(err) && err.code === code)
}

describe('hashKey', () => {
  test('is the first 32 bits of SHA-256, big-endian, unsigned', () => {
    // SHA-256("abc") = ba7816bf 8f01cfea ...; SHA-256("") = e3b0c442 98fc1c14 ...
    assert.equal(hashKey('abc'), 0xba7816bf)
    assert.equal(hashKey(''), 0xe3b0c442)
    // UTF-8, not UTF-16: SHA-256(c3 a9) = 4a99557e ...; a 1000-byte key grows the scratch buffer.
    assert.equal(hashKey('\u00e9'), 0x4a99557e)
    assert.equal(hashKey('x'.repeat(1000)), 0x44f83544)
    fc.assert(fc.property(fc.string(), s => {
      const h = hashKey(s)
      return Number.isInteger(h) && h >= 0 && h < 2 ** 32 && h === hashKey(s)
    }))
  })
})

describe('HashRing', () => {
  test('owner and preferenceList: distinct, clamped, prefix-consistent, weight-0 members own nothing', () => {
    const ring = HashRing.from([...nodesOf(6), { id: 'edge-a', weight: 0 }, { id: 'edge-b', weight: 0 }])
    assert.equal(ring.size, 8)
    assert.equal(ring.ownerCount, 6)
    for (const { key } of keysOf(300)) {
      const all = ring.preferenceList(key, 10)
      assert.equal(all.length, 6, 'clamped to the nodes with weight > 0')
      assert.equal(new Set(all).size, 6)
      assert.ok(!all.some(id => id.startsWith('edge')))
      assert.equal(ring.owner(key), all[0])
      for (let n = 1; n <= 6; n++) assert.deepEqual(ring.preferenceList(key, n), all.slice(0, n))
    }
  })

  test('an empty ring, or one of weight-0 members only, is UNAVAILABLE', () => {
    for (const ring of [HashRing.from([]), HashRing.from([{ id: 'edge', weight: 0 }])]) {
      throwsCode(() => ring.owner('k'), 'UNAVAILABLE')
      throwsCode(() => ring.preferenceList('k', 3), 'UNAVAILABLE')
      throwsCode(() => assignPartitions(ring, keysOf(3), { replication: 3 }), 'UNAVAILABLE')
    }
  })

  test('bad input is BAD_REQUEST', () => {
    for (const weight of [-1, Number.NaN, Number.POSITIVE_INFINITY, '1' as unknown as number]) {
      throwsCode(() => HashRing.from([{ id: 'a', weight }]), 'BAD_REQUEST')
    }
    throwsCode(() => HashRing.from([{ id: 'a', weight: 1, load: -1 }]), 'BAD_REQUEST')
    throwsCode(() => HashRing.from([{ id: '', weight: 1 }]), 'BAD_REQUEST')
    throwsCode(() => HashRing.from([{ id: 'a', weight: 1 }, { id: 'a', weight: 2 }]), 'BAD_REQUEST')
    throwsCode(() => HashRing.from([], { vnodesPerUnitWeight: 0 }), 'BAD_REQUEST')
    throwsCode(() => HashRing.from([{ id: 'a', weight: 1e9 }]), 'BAD_REQUEST')
    const ring = HashRing.from(nodesOf(3))
    throwsCode(() => ring.withNode({ id: 'b', weight: Number.NaN }), 'BAD_REQUEST')
    throwsCode(() => ring.preferenceList('k', 0), 'BAD_REQUEST')
    for (const replication of [0, -1, 1.5, Number.NaN]) {
      throwsCode(() => assignPartitions(ring, keysOf(3), { replication }), 'BAD_REQUEST')
    }
    throwsCode(() => assignPartitions(ring, keysOf(3), { replication: 1, epsilon: 0 }), 'BAD_REQUEST')
    throwsCode(() => assignPartitions(ring, [{ key: 'a' }, { key: 'a' }], { replication: 1 }), 'BAD_REQUEST')
    throwsCode(() => assignPartitions(ring, [{ key: 'a', weight: -2 }], { replication: 1 }), 'BAD_REQUEST')
  })

  test('the ring depends only on the member set: insertion order and derivation path do not matter', () => {
    const member = fc.record({ id: fc.constantFrom(...'abcdefghijkl'), weight: fc.constantFrom(0, 0.5, 1, 2, 3) })
    const op = fc.oneof(
      member.map(n => ({ add: n })),
      fc.constantFrom(...'abcdefghijkl').map(id => ({ remove: id })),
    )
    fc.assert(fc.property(fc.array(member, { maxLength: 8 }), fc.array(op, { maxLength: 12 }), (initial, ops) => {
      const unique = [...new Map(initial.map(n => [n.id, n])).values()]
      let ring = HashRing.from(unique, { vnodesPerUnitWeight: 16 })
      for (const o of ops) ring = 'add' in o ? ring.withNode(o.add) : ring.withoutNode(o.remove)
      const fresh = HashRing.from([...ring.members].reverse(), { vnodesPerUnitWeight: 16 })
      assert.deepEqual(ring.members, fresh.members)
      assert.deepEqual(ring.positions, fresh.positions)
      assert.deepEqual(ring.owners, fresh.owners)
    }), { numRuns: 200 })
  })

  test('plain consistent hashing moves only what it must: a join takes keys, a leave gives its keys away', () => {
    const ring = HashRing.from(nodesOf(20))
    const joined = ring.withNode({ id: 'new', weight: 2 })
    const left = ring.withoutNode('node-3')
    for (const { key } of keysOf(2000)) {
      const before = ring.owner(key)
      const afterJoin = joined.owner(key)
      assert.ok(afterJoin === before || afterJoin === 'new')
      if (before !== 'node-3') assert.equal(left.owner(key), before)
    }
  })
})

describe('assignPartitions', () => {
  test('small clusters: full distinct replica sets from owners only, rf clamped, identical under any node order', () => {
    const cluster = fc.uniqueArray(
      fc.record({ id: fc.string({ minLength: 1, maxLength: 6 }), weight: fc.constantFrom(0, 0.25, 1, 2, 4), load: fc.option(fc.nat(20), { nil: undefined }) }),
      { selector: n => n.id, minLength: 1, maxLength: 12 },
    ).filter(ns => ns.some(n => n.weight > 0))
    const keys = fc.uniqueArray(fc.record({ key: fc.string(), weight: fc.constantFrom(undefined, 0, 0.5, 1, 3) }), { selector: k => k.key, maxLength: 150 })
    fc.assert(fc.property(cluster, keys, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 100 }), (nodes, specs, replication, eps) => {
      const epsilon = eps / 100
      const ring = HashRing.from(nodes, { vnodesPerUnitWeight: 8 })
      const placement = assignPartitions(ring, specs, { replication, epsilon })
      const owners = new Set(nodes.filter(n => n.weight > 0).map(n => n.id))
      const r = Math.min(replication, owners.size)
      assert.equal(placement.size, specs.length)
      for (const { key } of specs) {
        const ids = placement.get(key)!
        assert.equal(ids.length, r)
        assert.equal(new Set(ids).size, r)
        assert.ok(ids.every(id => owners.has(id)))
      }
      const shuffled = HashRing.from([...nodes].reverse(), { vnodesPerUnitWeight: 8 })
      assert.deepEqual(assignPartitions(shuffled, [...specs].reverse(), { replication, epsilon }), placement)
    }), { numRuns: 150 })
  })

  test('bounded loads: leaders always, replica slots within one key once replicas must be distinct', () => {
    // The budgets are feasible: the slack covers rounding (0.25 x keys >= nodes, unit keys) and no node's
    // budget exceeds one replica of every key. With rf > 1 a greedy walk can still end with the last free
    // slots all on a node that already holds the key; that replica then goes one over someone's budget.
    const cluster = fc.uniqueArray(fc.record({ id: fc.string({ minLength: 1, maxLength: 4 }), weight: fc.integer({ min: 1, max: 4 }) }),
      { selector: n => n.id, minLength: 4, maxLength: 24 })
    fc.assert(fc.property(cluster, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 4, max: 12 }), (nodes, replication, perNode) => {
      const totalWeight = nodes.reduce((a, n) => a + n.weight, 0)
      fc.pre(nodes.every(n => 1.25 * replication * n.weight / totalWeight <= 1))
      const keys = nodes.length * perNode
      const ring = HashRing.from(nodes, { vnodesPerUnitWeight: 16 })
      const { slots, leaders } = loads(assignPartitions(ring, keysOf(keys), { replication }))
      assert.ok(maxOverMean(nodes, leaders) <= 1.25 + 1e-9, 'leaders')
      for (const n of nodes) {
        const budget = 1.25 * keys * replication * n.weight / totalWeight
        assert.ok((slots.get(n.id) ?? 0) <= (replication === 1 ? budget : budget + 1) + 1e-9, `slots of ${n.id}`)
      }
    }), { numRuns: 60 })
  })

  test('completing a replica set over budget spreads the overshoot (Bun seed 570173146 counterexample)', () => {
    // Every node with leader room was out of slot room for two keys in a row; choosing the leader by leader
    // load alone put both on the same slot-full node, 1.6 keys over its budget.
    const nodes = [[' ', 1], [' N', 2], ['*>', 4], ['E i', 4], ['T', 4], [';', 2], ['i', 1], ['y', 4], [' /', 1], ['bKH', 3]]
      .map(([id, weight]) => ({ id: id as string, weight: weight as number }))
    const totalWeight = nodes.reduce((a, n) => a + n.weight, 0)
    const keys = nodes.length * 4
    const { slots } = loads(assignPartitions(HashRing.from(nodes, { vnodesPerUnitWeight: 16 }), keysOf(keys), { replication: 4 }))
    for (const n of nodes) assert.ok((slots.get(n.id) ?? 0) <= 1.25 * keys * 4 * n.weight / totalWeight + 1 + 1e-9, `slots of ${n.id}`)
  })

  test('a node left as the only one with leader room does not end over its slot budget (seed -1280117138 counterexample)', () => {
    // Keys 34 and 35 found leader room on one slot-full node only; it takes the leaderships and hands follower slots
    // of earlier keys to nodes with room.
    const nodes = [[' ', 3], ['!', 4], ['  ', 4], ['"', 1], ["'", 2], ['A', 4], ['?2', 3], ['J', 1], ['K', 1]]
      .map(([id, weight]) => ({ id: id as string, weight: weight as number }))
    const totalWeight = nodes.reduce((a, n) => a + n.weight, 0)
    const keys = nodes.length * 4
    const { slots, leaders } = loads(assignPartitions(HashRing.from(nodes, { vnodesPerUnitWeight: 16 }), keysOf(keys), { replication: 2 }))
    assert.ok(maxOverMean(nodes, leaders) <= 1.25 + 1e-9, 'leaders')
    for (const n of nodes) assert.ok((slots.get(n.id) ?? 0) <= 1.25 * keys * 2 * n.weight / totalWeight + 1 + 1e-9, `slots of ${n.id}`)
  })

  test('weighted partitions and background load count against the bound', () => {
    // Every fifth node already carries 200 per unit of weight: more than a fair share of the slack.
    const nodes: RingNode[] = nodesOf(40).map((n, i) => (i % 5 === 0 ? { ...n, load: 200 * n.weight } : n))
    const specs = Array.from({ length: 4000 }, (_, i) => ({ key: `t/${i}`, weight: 0.5 + (i % 7) / 2 }))
    const placement = assignPartitions(HashRing.from(nodes), specs, { replication: 2 })
    const load = new Map<string, number>(nodes.map(n => [n.id, n.load ?? 0]))
    specs.forEach(s => { for (const id of placement.get(s.key)!) load.set(id, load.get(id)! + s.weight) })
    assert.ok(maxOverMean(nodes, load) <= 1.25 + 1e-9, 'placed plus background load stays within the bound')
    const perUnit = (busy: boolean): number => {
      const group = nodes.filter(n => (n.load !== undefined) === busy)
      return group.reduce((a, n) => a + load.get(n.id)! - (n.load ?? 0), 0) / group.reduce((a, n) => a + n.weight, 0)
    }
    assert.ok(perUnit(true) < perUnit(false) / 2, 'nodes with background load get fewer partitions per unit weight')
  })

  test('rf = cluster size puts every key on every owner (bounds give way to distinct replicas)', () => {
    const nodes = [{ id: 'a', weight: 1 }, { id: 'b', weight: 4 }, { id: 'c', weight: 1 }, { id: 'edge', weight: 0 }]
    const placement = assignPartitions(HashRing.from(nodes), keysOf(200), { replication: 5 })
    for (const ids of placement.values()) assert.deepEqual([...ids].sort(), ['a', 'b', 'c'])
    assert.ok(maxOverMean(nodes, loads(placement).leaders) <= 1.25 + 1e-9)
  })

  test('a PartitionSet and a plain array place identically', () => {
    const ring = HashRing.from(nodesOf(10))
    const specs = keysOf(500)
    assert.deepEqual(assignPartitions(ring, PartitionSet.from(specs), { replication: 3 }), assignPartitions(ring, specs, { replication: 3 }))
  })
})

describe('1000 nodes, weights 1/2/4, 50k partition keys', () => {
  const nodes = nodesOf(1000)
  const totalWeight = nodes.reduce((a, n) => a + n.weight, 0)
  const built = performance.now()
  const ring = HashRing.from(nodes)
  const buildMs = performance.now() - built
  // Two key sets (same layout, other topic names), so the per-join figures are 40 draws, not 20 of one layout.
  const keySets = [PartitionSet.from(keysOf(50_000)), PartitionSet.from(keysOf(50_000, 'stream'))]
  const joins = Array.from({ length: 20 }, (_, i) => ({ id: `joiner-${i}`, weight: WEIGHTS[i % WEIGHTS.length] }))
  // 97 = 1 mod 3, so the leaving nodes cycle through the three weights.
  const leaves = Array.from({ length: 10 }, (_, i) => nodes[(i * 97 + 5) % nodes.length])

  for (const replication of [1, 3]) {
    test(`rf ${replication}: max/mean <= 1.25; moves summed over 20 joins and 10 leaves <= 1.2 x ideal; a joiner takes <= its bound`, (t) => {
      // Ideal movement of one event: the changed node's weight share of the keys (leaderships), and of the
      // replica slots (x replication). Per event: moved/ideal for leaders and slots, and for joins the split
      // into what the new node took and what moved between old nodes (the cascade).
      const joinPrimary: number[] = []
      const joinSlots: number[] = []
      const took: number[] = []
      const cascade: number[] = []
      const leavePrimary: number[] = []
      const leaveSlots: number[] = []
      let moved = { joinPrimary: 0, joinSlots: 0, joinIdeal: 0, leavePrimary: 0, leaveSlots: 0, leaveIdeal: 0 }
      let slotRatio = 0
      let leaderRatio = 0
      const assignMs: number[] = []
      for (const parts of keySets) {
        const started = performance.now()
        const placement = assignPartitions(ring, parts, { replication })
        assignMs.push(performance.now() - started)
        const { slots, leaders } = loads(placement)
        slotRatio = Math.max(slotRatio, maxOverMean(nodes, slots))
        leaderRatio = Math.max(leaderRatio, maxOverMean(nodes, leaders))
        for (const ids of placement.values()) assert.equal(new Set(ids).size, replication)

        for (const n of joins) {
          const ideal = parts.size * n.weight / (totalWeight + n.weight)
          const after = assignPartitions(ring.withNode(n), parts, { replication })
          const m = movedKeys(placement, after)
          const mine = loads(after)
          const lead = mine.leaders.get(n.id) ?? 0
          // The new node's leader and slot budgets: it never takes more, however its vnodes fall.
          assert.ok(lead <= 1.25 * ideal + 1e-9, `${n.id} leads ${lead}, ideal ${ideal}`)
          assert.ok((mine.slots.get(n.id) ?? 0) <= 1.25 * ideal * replication + 1e-9, `${n.id} slots`)
          joinPrimary.push(m.primary / ideal)
          joinSlots.push(m.slots / (ideal * replication))
          took.push(lead / ideal)
          cascade.push((m.primary - lead) / ideal)
          moved = { ...moved, joinPrimary: moved.joinPrimary + m.primary, joinSlots: moved.joinSlots + m.slots, joinIdeal: moved.joinIdeal + ideal }
        }
        for (const n of leaves) {
          const ideal = parts.size * n.weight / totalWeight
          const m = movedKeys(placement, assignPartitions(ring.withoutNode(n.id), parts, { replication }))
          leavePrimary.push(m.primary / ideal)
          leaveSlots.push(m.slots / (ideal * replication))
          moved = { ...moved, leavePrimary: moved.leavePrimary + m.primary, leaveSlots: moved.leaveSlots + m.slots, leaveIdeal: moved.leaveIdeal + ideal }
        }
      }
      const summed = {
        joinPrimary: moved.joinPrimary / moved.joinIdeal,
        joinSlots: moved.joinSlots / (moved.joinIdeal * replication),
        leavePrimary: moved.leavePrimary / moved.leaveIdeal,
        leaveSlots: moved.leaveSlots / (moved.leaveIdeal * replication),
      }
      const stats = (xs: number[]): string => {
        const s = [...xs].sort((a, b) => a - b)
        return `max ${s[s.length - 1].toFixed(3)}, p90 ${s[Math.floor(s.length * 0.9)].toFixed(3)}, over 1.2: ${s.filter(x => x > 1.2).length}/${s.length}`
      }
      diag(t, `rf ${replication}: max/mean slots ${slotRatio.toFixed(3)}, leaders ${leaderRatio.toFixed(3)}; ring of ${ring.positions.length} vnodes built in ${buildMs.toFixed(0)} ms, 50k keys placed in ${assignMs.map(ms => ms.toFixed(0)).join(' / ')} ms`)
      diag(t, `rf ${replication}: joins summed moved/ideal: leaders ${summed.joinPrimary.toFixed(3)}, slots ${summed.joinSlots.toFixed(3)}; leaves: leaders ${summed.leavePrimary.toFixed(3)}, slots ${summed.leaveSlots.toFixed(3)}`)
      diag(t, `rf ${replication}: single join, leaders moved/ideal ${stats(joinPrimary)}; slots ${stats(joinSlots)}`)
      diag(t, `rf ${replication}: single join, the new node took ${stats(took)}; cascade between old nodes max ${Math.max(...cascade).toFixed(3)}`)
      diag(t, `rf ${replication}: single leave, leaders moved/ideal ${stats(leavePrimary)}; slots ${stats(leaveSlots)}`)

      assert.ok(slotRatio <= 1.25, `slots ${slotRatio}`)
      assert.ok(leaderRatio <= 1.25, `leaders ${leaderRatio}`)
      for (const [name, ratio] of Object.entries(summed)) assert.ok(ratio <= 1.2, `${name} summed ${ratio}`)
      // Not asserted at this key count: every single join <= 1.2 x ideal (11 of these 40 joins are above; the
      // next describe asserts it where a join's ideal is a few hundred keys). One join's ideal is 21-86 keys, the new node's pure-ring share of them is Poisson plus vnode
      // noise (up to 1.6 x measured), and the bound lets it keep up to 1.25 x. A tighter bound on every node
      // makes more old nodes full, and each key the new node takes from a full node pulls one key back from
      // that node's overflow, so tighter caps raised the worst join (at 128 vnodes: 1.35 at 1.25 x, 1.59 at
      // 1.15 x, 1.9 at 1.1 x). Asserted instead: the new node's cap (above) and a small cascade.
      assert.ok(Math.max(...cascade) <= 0.35, `cascade ${Math.max(...cascade)}`)
      assert.ok(Math.max(...leavePrimary, ...leaveSlots) <= 1.6, 'single leave')
    })
  }

  test('determinism at scale: reversed insertion order gives the same placement', () => {
    const reversed = HashRing.from([...nodes].reverse())
    assert.deepEqual(reversed.positions, ring.positions)
    const subset = PartitionSet.from(keysOf(5000))
    assert.deepEqual(assignPartitions(reversed, subset, { replication: 3 }), assignPartitions(ring, subset, { replication: 3 }))
  })
})

describe('movedKeys', () => {
  test('counts leader changes, replica-set changes and new replica slots', () => {
    const before: Placement = new Map([['a', ['x', 'y', 'z']], ['b', ['x', 'y', 'z']], ['c', ['x', 'y', 'z']], ['gone', ['x']]])
    const after: Placement = new Map([['a', ['x', 'y', 'z']], ['b', ['y', 'x', 'z']], ['c', ['w', 'x', 'y']], ['new', ['x', 'y']]])
    assert.deepEqual(movedKeys(before, after), { keys: 5, primary: 4, replicaSets: 3, slots: 3 })
    assert.deepEqual(movedKeys(after, after), { keys: 4, primary: 0, replicaSets: 0, slots: 0 })
  })
})

// The per-join bound needs enough keys that a join's ideal share is not itself noise: at 50k keys a weight-1 joiner's
// ideal is ~21 keys and its Poisson spread alone is +-22%. At 300k keys (ideal 130-510 per join) what remains is the
// ring's own vnode noise plus the bounded-load cascade. Placement is deterministic, so this is one fixed draw of 10 joins.
describe('1000 nodes, weights 1/2/4, 300k keys: every single join moves <= 1.2 x its ideal', () => {
  test('rf 1, 10 joins', (t) => {
    const nodes = nodesOf(1000)
    const totalWeight = nodes.reduce((a, n) => a + n.weight, 0)
    const ring = HashRing.from(nodes)
    const parts = PartitionSet.from(keysOf(300_000))
    const placement = assignPartitions(ring, parts, { replication: 1 })
    const ratios: number[] = []
    for (let i = 0; i < 10; i++) {
      const n = { id: `joiner-${i}`, weight: WEIGHTS[i % WEIGHTS.length] }
      const ideal = parts.size * n.weight / (totalWeight + n.weight)
      ratios.push(movedKeys(placement, assignPartitions(ring.withNode(n), parts, { replication: 1 })).primary / ideal)
    }
    const worst = Math.max(...ratios)
    diag(t, `single join moved/ideal: max ${worst.toFixed(3)}, min ${Math.min(...ratios).toFixed(3)}`)
    assert.ok(worst <= 1.2, `worst join moved ${worst.toFixed(3)} x its ideal`)
  })
})
