// Training and evaluation data for the load predictor: windows of traces -> changes in load at HORIZONS_S, the fixed
// train/held-out split of synthetic seeds and recorded traces, and the error figures `npm run eval-predictor` prints.
import { HORIZONS_S, INPUT_SIZE, OUTPUT_SIZE, WINDOW, writeModelInput } from './features.ts'
import type { Dataset } from './mlp.ts'
import type { LoadForecast } from './predictor.ts'
import { generateTrace, WORKLOADS } from './traces.ts'
import type { LoadTrace } from './traces.ts'

const MAX_HORIZON = Math.max(...HORIZONS_S)

/** Synthetic traces per workload in each split; held-out seeds never overlap training seeds. */
export const SPLIT = { trainSeeds: range(1, 64), evalSeeds: range(10_001, 8) } as const

function range (from: number, count: number): number[] { return Array.from({ length: count }, (_, i) => from + i) }

/** A recorded trace is held out when its name hashes to 0 mod 5 (FNV-1a): stable whatever else is recorded. */
export function isHeldOut (name: string): boolean {
  let h = 0x811c9dc5
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0
  return h % 5 === 0
}

export function syntheticTraces (split: 'train' | 'eval', seconds = 1800): LoadTrace[] {
  const seeds = split === 'train' ? SPLIT.trainSeeds : SPLIT.evalSeeds
  return WORKLOADS.flatMap(w => seeds.map(s => generateTrace(w, s, { seconds })))
}

/** Every (window, future) pair of `traces` taken every `stride` seconds: model inputs and target changes. */
export function buildDataset (traces: readonly LoadTrace[], stride = 1): Dataset & { windows: Float64Array[], current: Float64Array } {
  const picks: Array<[LoadTrace, number]> = []
  for (const tr of traces) for (let t = WINDOW - 1; t + MAX_HORIZON < tr.load.length; t += stride) picks.push([tr, t])
  const rows = picks.length
  const x = new Float32Array(rows * INPUT_SIZE)
  const y = new Float32Array(rows * OUTPUT_SIZE)
  const current = new Float64Array(rows)
  const windows: Float64Array[] = new Array(rows)
  picks.forEach(([tr, t], r) => {
    const w = tr.load.subarray(t - WINDOW + 1, t + 1)
    windows[r] = w
    current[r] = tr.load[t]
    writeModelInput(w, x, r * INPUT_SIZE)
    HORIZONS_S.forEach((h, k) => { y[r * OUTPUT_SIZE + k] = tr.load[t + h] - tr.load[t] })
  })
  return { rows, x, y, windows, current }
}

export interface ErrorFigures {
  readonly mae: number
  readonly p95: number
  /** MAE per horizon, same order as HORIZONS_S. */
  readonly maeByHorizon: number[]
}

/** Absolute errors of forecasts against the dataset's true future loads, over every horizon. */
export function errorFigures (data: Dataset & { current: Float64Array }, forecasts: readonly LoadForecast[]): ErrorFigures {
  const errs = new Float64Array(data.rows * OUTPUT_SIZE)
  const byH = new Array<number>(OUTPUT_SIZE).fill(0)
  for (let r = 0; r < data.rows; r++) {
    for (let k = 0; k < OUTPUT_SIZE; k++) {
      const truth = data.current[r] + data.y[r * OUTPUT_SIZE + k]
      const e = Math.abs(forecasts[r].ahead[k] - truth)
      errs[r * OUTPUT_SIZE + k] = e
      byH[k] += e
    }
  }
  const sorted = errs.slice().sort()
  const mae = errs.reduce((a, b) => a + b, 0) / errs.length
  return { mae, p95: sorted[Math.min(sorted.length - 1, Math.floor(0.95 * sorted.length))], maeByHorizon: byH.map(s => s / data.rows) }
}
