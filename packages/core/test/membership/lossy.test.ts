// Membership under adversity: 10% message loss in a 20-node cluster over 300 periods, and Lifeguard against a
// node whose own messages are slow, compared with plain SWIM on the same seeds. Rates go to diagnostics.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_MEMBERSHIP_CONFIG } from '../../src/membership/index.ts'
import { diag, seeds, startCluster } from './harness.ts'
import type { Cluster, ObservedEvent } from './harness.ts'

const T = DEFAULT_MEMBERSHIP_CONFIG.protocolPeriodMs

/** Member events putting a node that is up (and not `except`) into one of `states`, seen by anyone but itself. */
function watch (c: Cluster, states: string[], except = new Set<string>()): ObservedEvent[] {
  const seen: ObservedEvent[] = []
  c.listeners.push(e => {
    const n = c.nodes.get(e.ev.id)
    if (n !== undefined && n.up && !except.has(e.ev.id) && e.ev.id !== e.node && states.includes(e.ev.state)) seen.push(e)
  })
  return seen
}

describe('membership under loss', () => {
  test('3. 20 nodes, 10% loss, 300 periods: no live node declared dead, and a real crash is still detected', (t) => {
    let falseDeaths = 0
    let falseSuspicionEvents = 0
    let suspicionsRaised = 0
    let probes = 0
    let worstDetect = 0
    const runs = seeds(20)
    for (const seed of runs) {
      const c = startCluster(20, { seed, net: { loss: 0.1, minDelayMs: 1, maxDelayMs: 30 } })
      assert.ok(c.runUntilTrue(() => c.converged(), 30 * T), `seed ${seed}: no convergence`)
      const deaths = watch(c, ['dead'])
      const suspicions = watch(c, ['suspect'])
      c.runFor(150 * T)
      c.crash('node-7')
      const tc = c.now
      let detected = -1
      c.listeners.push(() => {
        if (detected < 0 && c.up().every(n => c.stateOf(n.id, 'node-7') === 'dead')) detected = c.now - tc
      })
      c.runFor(150 * T)
      assert.ok(detected >= 0, `seed ${seed}: node-7's crash not detected by every survivor within 150 periods`)
      worstDetect = Math.max(worstDetect, detected)
      assert.deepEqual(deaths.map(e => `${e.at} ${e.node}: ${e.ev.id}/${e.ev.incarnation}`), [], `seed ${seed}: live nodes declared dead`)
      falseDeaths += deaths.length
      falseSuspicionEvents += suspicions.length
      for (const n of c.up()) { suspicionsRaised += n.m.stats().suspicionsRaised; probes += n.m.stats().probes }
    }
    // Suspicions under loss are expected (a probe fails when its ping or ack and all k indirect paths are lost);
    // what the suspicion mechanism must do is let every one of them be refuted before it turns into a death.
    const rate = suspicionsRaised / probes
    assert.ok(rate < 0.02, `false-suspicion rate per probe ${rate}`)
    diag(t, `10% loss, 20 nodes, 300 periods, ${runs.length} seeds: false deaths ${falseDeaths}; suspicions raised ${suspicionsRaised} in ${probes} probes (${(100 * rate).toFixed(2)}%), ${falseSuspicionEvents} suspect events cluster-wide; crash detected everywhere in max ${worstDetect} ms`)
  })
})

describe('membership: Lifeguard against a slow node', () => {
  interface Outcome { raisedBySlow: number, suspectEvents: number, deaths: number, slowHealth: number }

  function run (seed: number, lifeguard: boolean): Outcome {
    const c = startCluster(8, { seed, config: { lifeguard } })
    assert.ok(c.runUntilTrue(() => c.converged(), 10 * T), `seed ${seed}`)
    c.runFor(5 * T)
    const slow = c.node('node-7')
    // Its own processing is slow: everything it sends leaves 1.2 periods late, well past the 500 ms ack timeout.
    slow.outDelayMs = 1200
    const healthy = new Set(['node-7'])
    const before = slow.m.stats().suspicionsRaised
    const suspects = watch(c, ['suspect'], healthy)
    const deaths = watch(c, ['dead'], healthy)
    c.runFor(120 * T)
    return { raisedBySlow: slow.m.stats().suspicionsRaised - before, suspectEvents: suspects.length, deaths: deaths.length, slowHealth: slow.maxHealth }
  }

  test('5. the slow node raises its local health score and stops accusing healthy peers; Lifeguard on beats off', (t) => {
    const on: Outcome = { raisedBySlow: 0, suspectEvents: 0, deaths: 0, slowHealth: 0 }
    const off: Outcome = { raisedBySlow: 0, suspectEvents: 0, deaths: 0, slowHealth: 0 }
    const runs = seeds(10)
    for (const seed of runs) {
      const a = run(seed, true)
      const b = run(seed, false)
      assert.ok(a.slowHealth > 0, `seed ${seed}: local health never rose`)
      assert.equal(b.slowHealth, 0)
      assert.equal(a.deaths, 0, `seed ${seed}: a healthy peer was declared dead with Lifeguard on`)
      assert.ok(a.raisedBySlow < b.raisedBySlow, `seed ${seed}: on ${a.raisedBySlow} vs off ${b.raisedBySlow} suspicions by the slow node`)
      for (const k of ['raisedBySlow', 'suspectEvents', 'deaths'] as const) { on[k] += a[k]; off[k] += b[k] }
      on.slowHealth = Math.max(on.slowHealth, a.slowHealth)
    }
    assert.ok(on.suspectEvents * 2 < off.suspectEvents, `suspect events about healthy peers: on ${on.suspectEvents}, off ${off.suspectEvents}`)
    diag(t, `slow node (+1200 ms on every send), 8 nodes, 120 periods, ${runs.length} seeds: suspicions of healthy peers raised by it on ${on.raisedBySlow} / off ${off.raisedBySlow}; suspect events cluster-wide on ${on.suspectEvents} / off ${off.suspectEvents}; false deaths on ${on.deaths} / off ${off.deaths}; its max health score ${on.slowHealth}`)
  })
})
