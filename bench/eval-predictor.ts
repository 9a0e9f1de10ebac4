// `npm run eval-predictor [-- --json] [--model PATH]`: the committed model against the last-value and EWMA baselines on
// held-out traces (synthetic seeds never trained on, plus held-out recorded traces). The last line is JSON with --json.
import { join } from 'node:path'
import {
  buildDataset, DEFAULT_EWMA_ALPHA, errorFigures, EwmaPredictor, HORIZONS_S, LastValuePredictor, OnnxPredictor, syntheticTraces,
} from '../packages/core/src/predict/index.ts'
import type { LoadPredictor } from '../packages/core/src/predict/index.ts'
import { openNodeSession } from '../packages/node/src/predict/onnx-session.ts'
import { MODELS_DIR, recordedTraces } from './train-predictor.ts'

const args = process.argv.slice(2)
const modelAt = args.indexOf('--model')
const modelPath = modelAt >= 0 ? args[modelAt + 1] : join(MODELS_DIR, 'load-predictor.onnx')
const recorded = recordedTraces()
const traces = [...syntheticTraces('eval'), ...recorded.eval]
const data = buildDataset(traces, 1)
const onnx = new OnnxPredictor(await openNodeSession(modelPath))
const predictors: LoadPredictor[] = [onnx, new LastValuePredictor(), new EwmaPredictor(DEFAULT_EWMA_ALPHA)]
const figures: Record<string, ReturnType<typeof errorFigures>> = {}
for (const p of predictors) {
  const forecasts = []
  for (let i = 0; i < data.windows.length; i += 4096) forecasts.push(...await p.predict(data.windows.slice(i, i + 4096)))
  figures[p.name] = errorFigures(data, forecasts)
  const f = figures[p.name]
  console.log(`${p.name.padEnd(10)} mae ${f.mae.toFixed(4)}  p95 ${f.p95.toFixed(4)}  mae by horizon ${HORIZONS_S.map((h, k) => `${h}s ${f.maeByHorizon[k].toFixed(4)}`).join(', ')}`)
}
// The recorded (real node) held-out traces on their own: small, but the only ones not drawn from our own generator.
const recordedFigures: Record<string, number> = {}
if (recorded.eval.length > 0) {
  const real = buildDataset(recorded.eval, 1)
  for (const p of predictors) recordedFigures[p.name] = errorFigures(real, await p.predict(real.windows)).mae
  console.log(`recorded held-out only (${recorded.eval.length} series, ${real.rows} windows): ${predictors.map(p => `${p.name} mae ${recordedFigures[p.name].toFixed(4)}`).join(', ')}`)
}
await onnx.close()
const better = Math.min(figures['last-value'].mae, figures.ewma.mae)
const improvement = 1 - figures.onnx.mae / better
console.log(`held-out: ${traces.length} traces (${recorded.eval.length} recorded), ${data.rows} windows; model vs the better baseline: ${(improvement * 100).toFixed(1)}% lower MAE (target >= 20%)`)
if (args.includes('--json')) {
  console.log(JSON.stringify({
    model: modelPath.split('/').slice(-2).join('/'), traces: traces.length, windows: data.rows, horizons_s: HORIZONS_S,
    model_mae: figures.onnx.mae, last_value_mae: figures['last-value'].mae, ewma_mae: figures.ewma.mae,
    model_p95: figures.onnx.p95, last_value_p95: figures['last-value'].p95, ewma_p95: figures.ewma.p95,
    model_mae_by_horizon: figures.onnx.maeByHorizon, ewma_alpha: DEFAULT_EWMA_ALPHA,
    ...(recorded.eval.length > 0 ? { recorded_model_mae: recordedFigures.onnx, recorded_last_value_mae: recordedFigures['last-value'], recorded_ewma_mae: recordedFigures.ewma } : {}),
    improvement_vs_better_baseline: improvement, meets_target: improvement >= 0.2,
  }))
}
process.exit(improvement >= 0.2 ? 0 : 1)
