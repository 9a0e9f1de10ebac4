// Entry of the load-predictor page: window.runPredictorChecks runs the committed model with onnxruntime-web (wasm) on
// the golden inputs and returns the outputs, plus what a broken model does (the spec compares; the page only reports).
import { inferenceConformanceCases } from '@gem-mesh/core/predict'
import type { GoldenOutputs } from '@gem-mesh/core/predict'
import { loadWebPredictor, openWebSession } from '../../../packages/browser/src/predict.ts'

export interface PredictorReport {
  rows: number
  output: number[]
  golden: number[]
  forecast: { predictor: string, current: number, ahead: number[] }
  brokenModel: { predictor: string, warnings: Array<{ message: string, code: string }> }
  conformance: Array<{ name: string, ok: boolean, error?: string }>
}

async function runPredictorChecks (): Promise<PredictorReport> {
  const golden = await (await fetch('./load-predictor.golden.json')).json() as { rows: number, input: number[], output: number[] }
  const session = await openWebSession('./load-predictor.onnx')
  const output = await session.run(Float32Array.from(golden.input), golden.rows)
  await session.close()
  const predictor = await loadWebPredictor('./load-predictor.onnx')
  const [f] = await predictor.predict([Array.from({ length: 64 }, (_, i) => 0.2 + 0.005 * i)])
  const warnings: Array<{ message: string, code: string }> = []
  const broken = await loadWebPredictor(new TextEncoder().encode('not an onnx model'), (message, code) => warnings.push({ message, code }))
  const model = new Uint8Array(await (await fetch('./load-predictor.onnx')).arrayBuffer())
  const conformance: PredictorReport['conformance'] = []
  for (const c of inferenceConformanceCases()) {
    try {
      await c.run({ open: openWebSession, model, golden: golden as GoldenOutputs })
      conformance.push({ name: c.name, ok: true })
    } catch (err) {
      conformance.push({ name: c.name, ok: false, error: String((err as Error)?.message ?? err) })
    }
  }
  return {
    conformance,
    rows: golden.rows, output: Array.from(output), golden: golden.output,
    forecast: { predictor: predictor.name, current: f.current, ahead: [...f.ahead] },
    brokenModel: { predictor: broken.name, warnings },
  }
}

;(globalThis as unknown as { runPredictorChecks: typeof runPredictorChecks }).runPredictorChecks = runPredictorChecks
