// The model's predictor: load windows -> the model's predicted change per horizon -> forecasts, in one batched run.
// The session comes from the runtime package (createOrtSession with onnxruntime-node or onnxruntime-web).
import { INPUT_SIZE, OUTPUT_SIZE, writeModelInput } from './features.ts'
import type { InferenceSession } from './inference-session.ts'
import { forecastOf } from './predictor.ts'
import type { LoadForecast, LoadPredictor } from './predictor.ts'

export class OnnxPredictor implements LoadPredictor {
  readonly name = 'onnx'
  private readonly session: InferenceSession

  constructor (session: InferenceSession) { this.session = session }

  async predict (windows: ReadonlyArray<ArrayLike<number>>): Promise<LoadForecast[]> {
    if (windows.length === 0) return []
    const input = new Float32Array(windows.length * INPUT_SIZE)
    windows.forEach((w, i) => writeModelInput(w, input, i * INPUT_SIZE))
    const deltas = await this.session.run(input, windows.length)
    return windows.map((w, i) => forecastOf(w.length === 0 ? 0 : w[w.length - 1], deltas.subarray(i * OUTPUT_SIZE, (i + 1) * OUTPUT_SIZE)))
  }

  close (): Promise<void> { return this.session.close() }
}
