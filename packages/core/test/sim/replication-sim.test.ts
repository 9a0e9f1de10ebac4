// 500+ seeded fault schedules of one replicated partition, replica moves and leadership transfers included, invariants
// checked in each. A failing seed prints its replay command; GEM_SIM_SEED=N runs one seed, GEM_SIM_SCHEDULES=N sets the count.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { runReplicationSim } from '../../src/sim/replication-sim.ts'

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {}
const only = env.GEM_SIM_SEED
const count = Number(env.GEM_SIM_SCHEDULES ?? 500)
const seeds = only !== undefined ? [Number(only)] : Array.from({ length: count }, (_, i) => i + 1)
const replay = (seed: number): string => `npm run sim -- replication --seed ${seed} --trace   (or GEM_SIM_SEED=${seed} node --test packages/core/test/sim/replication-sim.test.ts)`

test('a calm run commits and delivers everything with one election', () => {
  const r = runReplicationSim({ seed: 7, faults: false })
  assert.deepEqual(r.violations, [])
  assert.equal(r.elections, 1)
  assert.equal(r.acked, r.committed)
})

test(`${seeds.length} fault schedules: no acknowledged message lost, one copy each, order kept, one acking leader per epoch, every group receives everything`, () => {
  const failed: string[] = []
  let faults = 0
  let damaged = 0
  let elections = 0
  let acked = 0
  let worstSettle = 0
  let installs = 0
  const moves = { added: 0, promoted: 0, removed: 0, transfers: 0, transferred: 0 }
  for (const seed of seeds) {
    const r = runReplicationSim({ seed })
    faults += r.faults.length
    damaged += r.faults.filter(f => f.includes('disk:')).length
    elections += r.elections
    acked += r.acked
    worstSettle = Math.max(worstSettle, r.settledInMs)
    installs += r.installs
    for (const k of Object.keys(moves) as Array<keyof typeof moves>) moves[k] += r[k]
    if (r.violations.length > 0) failed.push(`seed ${seed} (${r.nodes} nodes): ${r.violations.join('; ')}\n  replay: ${replay(seed)}`)
  }
  // Diagnostics, not assertions: what the schedules exercised.
  console.log(`sim: ${seeds.length} schedules, ${faults} faults (${damaged} disk damages), ${elections} elections, ${installs} snapshot installs, ${acked} acknowledged publishes, slowest convergence ${worstSettle} virtual ms after the faults`)
  console.log(`sim: replica moves: ${moves.added} added as learners, ${moves.promoted} promoted to voters, ${moves.removed} removed and dropped; ${moves.transfers} leadership transfers asked, ${moves.transferred} completed`)
  assert.ok(seeds.length === 1 || damaged > 0, 'the schedules must include disk damage')
  assert.ok(seeds.length === 1 || installs > 0, 'the schedules must include replicas rebuilt by snapshot installs')
  assert.ok(seeds.length === 1 || (moves.promoted > 0 && moves.removed > 0 && moves.transferred > 0), 'the schedules must include replicas added, promoted and removed, and leadership transfers')
  assert.deepEqual(failed, [], failed.join('\n'))
})

test('the same seed gives the same run', () => {
  const a = runReplicationSim({ seed: 4242 })
  const b = runReplicationSim({ seed: 4242 })
  assert.deepEqual(a, b)
})
