// `npm run sim -- flash-crowd [--seed N] [--count N] [--model PATH] [--json]`: the same seeded flash crowds run twice,
// decisions fed by the current load (reactive: last value) and by the ONNX model (predictive); last line JSON.
import { join } from 'node:path'
import { LastValuePredictor, OnnxPredictor } from '../packages/core/src/predict/index.ts'
import { runFlashCrowdSim } from '../packages/core/src/sim/flash-crowd-sim.ts'
import type { FlashCrowdResult } from '../packages/core/src/sim/flash-crowd-sim.ts'
import { DEFAULT_POLICY } from '../packages/core/src/predict/decisions.ts'
import { openNodeSession } from '../packages/node/src/predict/onnx-session.ts'
import { MODELS_DIR } from './train-predictor.ts'

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined }
const seed = Number(flag('seed') ?? 1)
const count = Number(flag('count') ?? 5)
if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(count) || count < 1) { console.error('--seed and --count take integers'); process.exit(2) }
const modelPath = flag('model') ?? join(MODELS_DIR, 'load-predictor.onnx')
const onnx = new OnnxPredictor(await openNodeSession(modelPath))

const runs: Record<'reactive' | 'predictive', FlashCrowdResult[]> = { reactive: [], predictive: [] }
for (let s = seed; s < seed + count; s++) {
  const reactive = await runFlashCrowdSim({ seed: s, predictor: new LastValuePredictor() })
  const predictive = await runFlashCrowdSim({ seed: s, predictor: onnx })
  runs.reactive.push(reactive)
  runs.predictive.push(predictive)
  for (const [mode, r] of [['reactive', reactive], ['predictive', predictive]] as const) {
    console.log(`seed ${s} ${mode.padEnd(10)}: ${r.overloadNodeSeconds} node-s over capacity (${r.saturatedNodeSeconds} saturated), ${r.leaderMoves} leader moves, ${r.replicaMoves} replica moves, ${r.admissionSeconds} node-s with credit < 1, p50 ${r.p50LatencyMs.toFixed(2)} ms, p99 ${r.p99LatencyMs.toFixed(2)} ms, peak load ${r.peakNodeLoad.toFixed(2)}`)
  }
}
await onnx.close()

function summary (rs: FlashCrowdResult[]): { overload: number, saturated: number, moves: number, replicaMoves: number, admission: number, p50: number, p99: number } {
  const samples = rs.flatMap(r => r.latencySamples).sort((a, b) => a[0] - b[0])
  const total = samples.reduce((a, s) => a + s[1], 0)
  const pct = (q: number): number => { let seen = 0; for (const [l, c] of samples) { seen += c; if (seen >= q * total) return l } return 0 }
  const sum = (f: (r: FlashCrowdResult) => number): number => rs.reduce((a, r) => a + f(r), 0)
  return { overload: sum(r => r.overloadNodeSeconds), saturated: sum(r => r.saturatedNodeSeconds), moves: sum(r => r.leaderMoves), replicaMoves: sum(r => r.replicaMoves), admission: sum(r => r.admissionSeconds), p50: pct(0.5), p99: pct(0.99) }
}
const r = summary(runs.reactive)
const p = summary(runs.predictive)
const cut = r.overload === 0 ? 0 : 1 - p.overload / r.overload
console.log(`${count} seeds x 800 s, 6 nodes, capacity line ${DEFAULT_POLICY.capacity}: over-capacity node-seconds reactive ${r.overload}, predictive ${p.overload} (${(cut * 100).toFixed(0)}% fewer; target >= 50%); p99 ${r.p99.toFixed(2)} -> ${p.p99.toFixed(2)} ms`)
if (args.includes('--json')) {
  console.log(JSON.stringify({
    scenario: 'flash-crowd', seeds: count, first_seed: seed, capacity: DEFAULT_POLICY.capacity,
    reactive_overload_node_seconds: r.overload, predictive_overload_node_seconds: p.overload, overload_cut: cut,
    reactive_saturated_node_seconds: r.saturated, predictive_saturated_node_seconds: p.saturated,
    reactive_p99_delivery_ms: r.p99, predictive_p99_delivery_ms: p.p99, reactive_p50_delivery_ms: r.p50, predictive_p50_delivery_ms: p.p50,
    reactive_leader_moves: r.moves, predictive_leader_moves: p.moves, reactive_replica_moves: r.replicaMoves, predictive_replica_moves: p.replicaMoves, reactive_admission_node_seconds: r.admission, predictive_admission_node_seconds: p.admission,
    meets_target: cut >= 0.5,
  }))
}
process.exitCode = cut >= 0.5 ? 0 : 1
