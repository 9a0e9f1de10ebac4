// Membership across a simulated cluster: join, crash detection within the SWIM bound, refutation, partitions and
// healing, restarts, load dissemination and determinism. Every property runs over many seeds in virtual time.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_MEMBERSHIP_CONFIG, suspicionBounds } from '../../src/membership/index.ts'
import { Cluster, diag, ids, seeds, startCluster } from './harness.ts'
import type { ObservedEvent } from './harness.ts'

const T = DEFAULT_MEMBERSHIP_CONFIG.protocolPeriodMs

/** Every up node sees `id` in `state`. */
const allSee = (c: Cluster, id: string, state: string): boolean => c.up().filter(n => n.id !== id).every(n => c.stateOf(n.id, id) === state)

/** Member events about nodes that were up when the event happened, in a bad state: false positives. */
function watchFalse (c: Cluster, states: string[]): ObservedEvent[] {
  const seen: ObservedEvent[] = []
  c.listeners.push(e => {
    const n = c.nodes.get(e.ev.id)
    if (n !== undefined && n.up && e.ev.id !== e.node && states.includes(e.ev.state)) seen.push(e)
  })
  return seen
}

describe('membership cluster: join', () => {
  test('1. five nodes joining through one seed converge to five alive within 2n - 1 protocol periods', (t) => {
    const times: number[] = []
    const runs = seeds(30)
    // Usually within one period (the seed's gossip of each joiner). The bound covers a joiner whose alive gossip
    // ran dry before reaching someone: it pings that node within 2(n-1)-1 periods, which answers with a push-pull.
    const limit = (2 * 5 - 1) * T
    for (const seed of runs) {
      const c = startCluster(5, { seed })
      const ok = c.runUntilTrue(() => c.converged(), limit, 10)
      assert.ok(ok, `seed ${seed}: not converged after ${limit} ms`)
      for (const n of c.up()) assert.equal(n.m.members().filter(v => v.state === 'alive').length, 5, `seed ${seed} ${n.id}`)
      times.push(c.now)
    }
    diag(t, `join: 5 nodes converged in max ${Math.max(...times)} ms (${(Math.max(...times) / T).toFixed(2)} periods), median ${times.sort((a, b) => a - b)[runs.length >> 1]} ms over ${runs.length} seeds`)
  })

  test('twenty nodes with 5% loss converge too (joins are retried, syncs fill gaps)', () => {
    for (const seed of seeds(10)) {
      const c = startCluster(20, { seed, net: { loss: 0.05 } })
      assert.ok(c.runUntilTrue(() => c.converged(), 20 * T), `seed ${seed}`)
    }
  })
})

describe('membership cluster: crash detection', () => {
  test('2. a crashed node becomes suspect then dead at every survivor, within the SWIM bound, with no false positives', (t) => {
    const n = 5
    const cfg = DEFAULT_MEMBERSHIP_CONFIG
    const { maxMs } = suspicionBounds(n, cfg.suspicionMult, cfg.suspicionMaxMult, T)
    // Round-robin over a shuffled list probes any member within 2(n-1)-1 periods of the previous probe, plus the
    // failing probe's own period; then at most the unconfirmed suspicion timeout; then gossip (2 periods of slack).
    const bound = 2 * (n - 1) * T + maxMs + 2 * T
    let worst = 0
    let worstFirstSuspect = 0
    const runs = seeds(30)
    for (const seed of runs) {
      const c = startCluster(n, { seed })
      assert.ok(c.runUntilTrue(() => c.converged(), 5 * T), `seed ${seed}`)
      c.runFor(10 * T)
      const falses = watchFalse(c, ['suspect', 'dead'])
      const victim = 'node-3'
      const tc = c.now
      const suspectAt = new Map<string, number>()
      const deadAt = new Map<string, number>()
      c.listeners.push(e => {
        if (e.ev.id !== victim) return
        if (e.ev.state === 'suspect' && !suspectAt.has(e.node)) suspectAt.set(e.node, e.at)
        if (e.ev.state === 'dead' && !deadAt.has(e.node)) deadAt.set(e.node, e.at)
      })
      c.crash(victim)
      assert.ok(c.runUntilTrue(() => allSee(c, victim, 'dead'), bound, 50), `seed ${seed}: not dead everywhere within ${bound} ms`)
      for (const s of c.up()) {
        assert.ok(suspectAt.has(s.id) && deadAt.has(s.id), `seed ${seed} ${s.id}: dead without a suspicion first`)
        assert.ok(suspectAt.get(s.id)! <= deadAt.get(s.id)!, `seed ${seed} ${s.id}`)
      }
      worst = Math.max(worst, c.now - tc)
      worstFirstSuspect = Math.max(worstFirstSuspect, Math.min(...suspectAt.values()) - tc)
      c.runFor(30 * T)
      assert.deepEqual(falses.map(e => `${e.at} ${e.node}: ${e.ev.id} ${e.ev.state}`), [], `seed ${seed}: false positives at 0% loss`)
    }
    assert.ok(worstFirstSuspect <= 2 * (n - 1) * T, `first suspicion after ${worstFirstSuspect} ms`)
    diag(t, `crash: dead everywhere after max ${worst} ms (bound ${bound} ms), first suspicion after max ${worstFirstSuspect} ms, ${runs.length} seeds, 0 false positives`)
  })
})

describe('membership cluster: refutation', () => {
  test('4. a suspected but alive node refutes with a higher incarnation and the refutation wins everywhere', () => {
    for (const seed of seeds(20)) {
      for (const loss of [0, 0.05]) {
        const c = startCluster(5, { seed, net: { loss } })
        assert.ok(c.runUntilTrue(() => c.converged(), 20 * T), `seed ${seed}`)
        c.runFor(3 * T)
        const victim = 'node-2'
        const before = c.node(victim).m.incarnation
        const deaths = watchFalse(c, ['dead'])
        // A forged suspicion, as a peer whose probe failed would gossip it.
        c.inject('node-0', 'node-4', { v: 1, from: 'node-4', type: 'gossip', gossip: [{ kind: 'suspect', id: victim, incarnation: before, from: 'node-4' }] })
        assert.equal(c.stateOf('node-0', victim), 'suspect', `seed ${seed}`)
        const won = c.runUntilTrue(() => c.up().every(n => {
          const v = n.m.member(victim)
          return v !== undefined && v.state === 'alive' && v.incarnation > before
        }), 10 * T, 20)
        assert.ok(won, `seed ${seed} loss ${loss}: refutation did not win everywhere`)
        assert.ok(c.node(victim).m.stats().refutations >= 1)
        c.runFor(30 * T)
        assert.deepEqual(deaths.map(e => `${e.node}: ${e.ev.id}`), [], `seed ${seed} loss ${loss}: false death`)
      }
    }
  })
})

describe('membership cluster: partitions', () => {
  test('6. {A,B} | {C,D,E}: each side declares the other dead; after healing every node sees all five alive', (t) => {
    const healTimes: number[] = []
    const runs = seeds(20)
    for (const seed of runs) {
      const c = startCluster(5, { seed, net: { loss: 0.01 } })
      assert.ok(c.runUntilTrue(() => c.converged(), 20 * T), `seed ${seed}`)
      c.runFor(5 * T)
      const [a, b, cc, d, e] = ids(5)
      c.partition([a, b], [cc, d, e])
      c.runFor(60 * T)
      for (const [x, y] of [[a, cc], [a, d], [a, e], [b, cc], [cc, a], [d, b], [e, a]]) {
        assert.equal(c.stateOf(x, y), 'dead', `seed ${seed}: ${x} sees ${y} as ${c.stateOf(x, y)} during the partition`)
      }
      assert.equal(c.stateOf(a, b), 'alive', `seed ${seed}: same side`)
      assert.equal(c.stateOf(cc, e), 'alive', `seed ${seed}: same side`)
      c.heal()
      const t0 = c.now
      // Reconnects to dead members run every syncIntervalMs (30 s): three of them are plenty.
      const ok = c.runUntilTrue(() => c.converged(), 3 * DEFAULT_MEMBERSHIP_CONFIG.syncIntervalMs, 100)
      assert.ok(ok, `seed ${seed}: not converged after healing: ${c.up().map(n => `${n.id}[${n.m.members().map(v => v.state[0]).join('')}]`).join(' ')}`)
      healTimes.push(c.now - t0)
      // And it stays converged.
      c.runFor(30 * T)
      assert.ok(c.converged(), `seed ${seed}: diverged again`)
    }
    diag(t, `partition: reconverged after heal in max ${Math.max(...healTimes)} ms, median ${healTimes.sort((x, y) => x - y)[runs.length >> 1]} ms over ${runs.length} seeds`)
  })
})

describe('membership cluster: restarts', () => {
  test('7a. a node restarted after being declared dead (fresh state, incarnation 0) refutes what it hears and is alive again', () => {
    for (const seed of seeds(20)) {
      const c = startCluster(5, { seed })
      assert.ok(c.runUntilTrue(() => c.converged(), 5 * T), `seed ${seed}`)
      c.crash('node-3')
      assert.ok(c.runUntilTrue(() => allSee(c, 'node-3', 'dead'), 60 * T), `seed ${seed}`)
      const deadInc = c.node('node-0').m.member('node-3')!.incarnation
      c.add('node-3', { seeds: ['node-1'], incarnation: 0 })
      const ok = c.runUntilTrue(() => c.converged() && c.up().every(n => n.m.member('node-3')!.incarnation > deadInc), 10 * T, 20)
      assert.ok(ok, `seed ${seed}: restarted node not accepted back with incarnation > ${deadInc}`)
    }
  })

  test('7b. a node restarted before anyone noticed takes its incarnation from the time and is accepted at once', () => {
    for (const seed of seeds(20)) {
      const c = startCluster(5, { seed })
      assert.ok(c.runUntilTrue(() => c.converged(), 5 * T), `seed ${seed}`)
      c.runFor(20 * T)
      const old = c.node('node-0').m.member('node-3')!.incarnation
      c.crash('node-3')
      c.runFor(300)
      const fresh = c.add('node-3', { seeds: ['node-0'] })
      assert.ok(fresh.m.incarnation > old, `seed ${seed}: time-based incarnation ${fresh.m.incarnation} vs ${old}`)
      const deaths = watchFalse(c, ['dead'])
      const ok = c.runUntilTrue(() => c.converged() && c.up().every(n => n.m.member('node-3')!.incarnation >= fresh.m.incarnation), 5 * T, 20)
      assert.ok(ok, `seed ${seed}`)
      assert.deepEqual(deaths.map(e => e.node), [], `seed ${seed}: the restarted node was declared dead`)
    }
  })
})

describe('membership cluster: load reports', () => {
  test('8. every node\'s newest load report reaches every other node (0% and 10% loss)', () => {
    for (const seed of seeds(20)) {
      for (const loss of [0, 0.1]) {
        const c = startCluster(10, { seed, net: { loss } })
        assert.ok(c.runUntilTrue(() => c.converged(), 30 * T), `seed ${seed} loss ${loss}`)
        const nodes = c.up()
        for (const [round, wait] of [[1, 1], [2, 2]]) {
          nodes.forEach((n, i) => {
            c.call(n.id, (m, now) => m.updateLoad({ publishRate: 100 * i + round, deliveryRate: i, backlog: round, eventLoopLagMs: 1, weight: 1, ts: now + i }, now))
          })
          const want = new Map(nodes.map(n => [n.id, n.m.member(n.id)!.load!]))
          // 10% loss may defeat gossip for a report; the 30 s push-pull sync then carries it.
          const ok = c.runUntilTrue(() => nodes.every(viewer => nodes.every(n => viewer.m.member(n.id)?.load?.ts === want.get(n.id)!.ts)), (loss === 0 ? 2 * T : 65 * T) * wait, 100)
          const missing = nodes.flatMap(viewer => nodes.filter(n => viewer.m.member(n.id)?.load?.ts !== want.get(n.id)!.ts).map(n => `${viewer.id}<-${n.id}`))
          assert.ok(ok, `seed ${seed} loss ${loss} round ${round}: missing ${missing.join(' ')}`)
          for (const viewer of nodes) for (const n of nodes) assert.deepEqual(viewer.m.member(n.id)!.load, want.get(n.id), `seed ${seed}`)
        }
      }
    }
  })
})

describe('membership cluster: determinism', () => {
  function scenario (seed: number): string {
    const c = startCluster(10, { seed, net: { loss: 0.05, minDelayMs: 1, maxDelayMs: 80 } })
    c.at(15_000, () => { c.crash('node-4') })
    c.at(20_000, () => { c.partition(['node-0', 'node-1', 'node-2'], ids(10).slice(3)) })
    c.at(45_000, () => { c.heal() })
    c.at(50_000, () => { c.add('node-4', { seeds: ['node-9'] }) })
    c.at(55_000, () => { c.call('node-7', (m, now) => m.updateLoad({ publishRate: 5, deliveryRate: 5, backlog: 0, eventLoopLagMs: 2, weight: 1, ts: now }, now)) })
    c.runUntil(120_000)
    return c.trace.join('\n')
  }

  test('10. the same seed gives a byte-identical event trace; another seed gives another', () => {
    for (const seed of seeds(5)) {
      const a = scenario(seed)
      const b = scenario(seed)
      assert.ok(a.length > 1000, `seed ${seed}: trace too short to mean anything`)
      assert.equal(a, b, `seed ${seed}: traces differ`)
      assert.notEqual(a, scenario(seed + 1), `seed ${seed}: the seed does not matter?`)
    }
  })
})
