// `npm run sim -- replication [--seed N] [--count N] [--trace] [--json]`: runs the deterministic simulator.
// `npm run sim -- flash-crowd [--seed N] [--count N] [--json]`: the load simulator, reactive against predictive (bench/flash-crowd.ts).
// One seed replays exactly what the test suite ran; the last line is JSON with --json.
import { runReplicationSim } from '../packages/core/src/sim/replication-sim.ts'

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined }
const scenario = args.find(a => !a.startsWith('--') && args[args.indexOf(a) - 1]?.startsWith('--') !== true) ?? 'replication'
if (scenario === 'flash-crowd') { await import('./flash-crowd.ts'); process.exit(process.exitCode ?? 0) }
if (scenario !== 'replication') { console.error(`unknown scenario ${scenario}; available: replication, flash-crowd`); process.exit(2) }
const seed = Number(flag('seed') ?? 1)
const count = Number(flag('count') ?? 1)
if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(count) || count < 1) { console.error('--seed and --count take integers'); process.exit(2) }
const trace = args.includes('--trace')
const results = []
for (let s = seed; s < seed + count; s++) {
  const r = runReplicationSim({ seed: s, trace: trace ? line => console.log(`  ${line}`) : undefined })
  results.push(r)
  console.log(`seed ${s}: ${r.nodes} nodes, ${r.faults.length} faults, ${r.elections} elections, ${r.acked} acked, ${r.committed} committed, settled ${r.settledInMs} ms after faults: ${r.violations.length === 0 ? 'ok' : 'VIOLATIONS\n    ' + r.violations.join('\n    ')}`)
}
const failed = results.filter(r => r.violations.length > 0).map(r => r.seed)
if (args.includes('--json')) console.log(JSON.stringify({ scenario, seeds: results.length, failed, events: results.reduce((a, r) => a + r.events, 0) }))
process.exit(failed.length === 0 ? 0 : 1)
