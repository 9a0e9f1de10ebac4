// `npm run train`: reproduces models/load-predictor.onnx from a fixed seed: synthetic workloads (diurnal, ramp, flash
// crowd, bursty IoT) plus recorded traces in models/traces/*.jsonl (`gem trace record`), training split only.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  buildDataset, errorFigures, EwmaPredictor, HORIZONS_S, INPUT_SIZE, isHeldOut, mlpForward, mlpToOnnx, OUTPUT_SIZE,
  parseRecordedTrace, syntheticTraces, trainMlp, WINDOW,
} from '../packages/core/src/predict/index.ts'
import type { LoadTrace } from '../packages/core/src/predict/index.ts'
import { openNodeSession } from '../packages/node/src/predict/onnx-session.ts'

export const MODELS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'models')
export const TRACES_DIR = join(MODELS_DIR, 'traces')
export const TRAIN_SEED = 7
export const RECORDED_WEIGHT = Number(process.env.GEM_RECORDED_WEIGHT ?? 10)
export const LAYER_SIZES = [INPUT_SIZE, 32, 32, OUTPUT_SIZE]

/** Every recorded trace file's series, split by file name into train and held-out. */
export function recordedTraces (): { train: LoadTrace[], eval: LoadTrace[] } {
  const out = { train: [] as LoadTrace[], eval: [] as LoadTrace[] }
  let files: string[] = []
  try { files = readdirSync(TRACES_DIR).filter(f => f.endsWith('.jsonl')).sort() } catch {}
  for (const f of files) (isHeldOut(f) ? out.eval : out.train).push(...parseRecordedTrace(f, readFileSync(join(TRACES_DIR, f), 'utf8')))
  return out
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const epochs = Number(args[args.indexOf('--epochs') + 1] ?? 0) || 20
  const started = performance.now()
  const recorded = recordedTraces()
  // Many short traces rather than few long ones: the model must see many periods, rise times and levels to generalise.
  // Recorded traces are few and short: each counts RECORDED_WEIGHT times, so real load shapes are not drowned out.
  const traces = [...syntheticTraces('train', 600), ...Array.from({ length: RECORDED_WEIGHT }, () => recorded.train).flat()]
  const data = buildDataset(traces, 2)
  console.log(`training on ${traces.length} traces (${recorded.train.length} recorded), ${data.rows} windows of ${WINDOW} s, horizons ${HORIZONS_S.join('/')} s`)

  // The EWMA baseline gets its best alpha on the same training data, so the model is compared with a tuned baseline.
  let best = { alpha: 0, mae: Infinity }
  for (const alpha of [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7]) {
    const mae = errorFigures(data, data.windows.map(w => new EwmaPredictor(alpha).forecast(w))).mae
    if (mae < best.mae) best = { alpha, mae }
  }
  console.log(`best EWMA alpha on the training split: ${best.alpha} (mae ${best.mae.toFixed(4)}); DEFAULT_EWMA_ALPHA should match`)

  const weights = trainMlp(data, {
    seed: TRAIN_SEED, sizes: LAYER_SIZES, epochs,
    onEpoch: (e, loss) => console.log(`epoch ${e + 1}/${epochs}: huber ${loss.toFixed(5)}`),
  })
  const doc = `GEM load predictor: MLP ${LAYER_SIZES.join('-')}; input = ${WINDOW - 1} past loads minus the current load, then the current load; output = change in load at ${HORIZONS_S.join(', ')} s. npm run train, seed ${TRAIN_SEED}, ${epochs} epochs.`
  const onnx = mlpToOnnx(weights, { inputName: 'load_window', outputName: 'load_delta', docString: doc })
  const modelPath = join(MODELS_DIR, 'load-predictor.onnx')
  writeFileSync(modelPath, onnx)

  // Golden outputs from native onnxruntime-node: every runtime's test compares with these (within 1e-5).
  const probe = buildDataset(syntheticTraces('eval', 200), 37)
  const rows = Math.min(16, probe.rows)
  const input = probe.x.slice(0, rows * INPUT_SIZE)
  const session = await openNodeSession(modelPath)
  const native = await session.run(input, rows)
  await session.close()
  const ts = mlpForward(weights, input, rows)
  let maxDiff = 0
  for (let i = 0; i < native.length; i++) maxDiff = Math.max(maxDiff, Math.abs(native[i] - ts[i]))
  writeFileSync(join(MODELS_DIR, 'load-predictor.golden.json'), JSON.stringify({ rows, inputSize: INPUT_SIZE, outputSize: OUTPUT_SIZE, input: Array.from(input), output: Array.from(native) }) + '\n')
  console.log(`wrote ${modelPath} (${onnx.length} bytes); onnxruntime-node vs the trainer's forward pass: max diff ${maxDiff.toExponential(2)}`)
  console.log(`trained in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
