// The inference session the runtime packages inject (onnxruntime-node, onnxruntime-web): float32 rows in, rows out.
// createOrtSession adapts either runtime's module, handed in by the caller, so the core never imports a runtime.
import type { InferenceSession as OrtInferenceSession, Tensor as OrtTensor } from 'onnxruntime-common'
import { GemError } from '../errors.ts'
import { INPUT_SIZE, OUTPUT_SIZE } from './features.ts'

export interface InferenceSession {
  readonly inputSize: number
  readonly outputSize: number
  /** Runs the model on `rows` x inputSize float32 values (row-major); resolves rows x outputSize values. */
  run (input: Float32Array, rows: number): Promise<Float32Array>
  close (): Promise<void>
}

/** The part of an onnxruntime module (onnxruntime-node, onnxruntime-web) this adapter uses. */
export interface OrtModule {
  readonly InferenceSession: { create (model: Uint8Array, options?: OrtInferenceSession.SessionOptions): Promise<OrtInferenceSession> }
  readonly Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor
}

/**
 * Opens `model` (ONNX bytes) with the given runtime and checks it has one float input of INPUT_SIZE and one
 * output of OUTPUT_SIZE by running it once. Throws MODEL_INVALID for anything that cannot serve forecasts.
 */
export async function createOrtSession (ort: OrtModule, model: Uint8Array, options: OrtInferenceSession.SessionOptions = {}): Promise<InferenceSession> {
  let session: OrtInferenceSession
  try {
    // One thread: the model is tiny, and a node's cores belong to the broker.
    session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', ...options })
  } catch (err) {
    throw new GemError('MODEL_INVALID', `the load-predictor model does not load: ${(err as Error)?.message ?? String(err)}`)
  }
  if (session.inputNames.length !== 1 || session.outputNames.length !== 1) {
    await session.release().catch(() => {})
    throw new GemError('MODEL_INVALID', `the load-predictor model must have one input and one output, it has ${session.inputNames.length} and ${session.outputNames.length}`)
  }
  const inputName = session.inputNames[0]
  const outputName = session.outputNames[0]
  const adapted: InferenceSession = {
    inputSize: INPUT_SIZE,
    outputSize: OUTPUT_SIZE,
    async run (input, rows) {
      if (input.length !== rows * INPUT_SIZE) throw new GemError('BAD_REQUEST', `expected ${rows * INPUT_SIZE} inputs, got ${input.length}`)
      let out: OrtTensor
      try {
        const result = await session.run({ [inputName]: new ort.Tensor('float32', input, [rows, INPUT_SIZE]) })
        out = result[outputName]
      } catch (err) {
        throw new GemError('MODEL_INVALID', `the load-predictor model failed to run: ${(err as Error)?.message ?? String(err)}`)
      }
      if (out === undefined || out.type !== 'float32' || out.data.length !== rows * OUTPUT_SIZE) {
        throw new GemError('MODEL_INVALID', `the load-predictor model must output ${rows} x ${OUTPUT_SIZE} float32 values, got ${out?.type} ${out?.dims?.join('x')}`)
      }
      return out.data as Float32Array
    },
    close: () => session.release(),
  }
  await adapted.run(new Float32Array(INPUT_SIZE), 1)
  return adapted
}
