// The load-predictor model in the browser (and on Deno): onnxruntime-web's CPU-only wasm build, one thread, behind the
// core's InferenceSession; a model that cannot be fetched or run is reported once and EWMA predicts instead.
import * as ort from 'onnxruntime-web/wasm'
import { toGemError, GemError } from '@gem-mesh/core'
import { createOrtSession, EwmaPredictor, OnnxPredictor } from '@gem-mesh/core/predict'
import type { InferenceSession, LoadPredictor, OrtModule } from '@gem-mesh/core/predict'

// A page's cores belong to its UI; the model is tiny (tens of microseconds per batch).
ort.env.wasm.numThreads = 1

/** Opens an ONNX model from its bytes or a URL. Throws MODEL_INVALID when it cannot be fetched or run. */
export async function openWebSession (model: Uint8Array | string | URL): Promise<InferenceSession> {
  let bytes: Uint8Array
  if (model instanceof Uint8Array) {
    bytes = model
  } else {
    try {
      const res = await fetch(model)
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      bytes = new Uint8Array(await res.arrayBuffer())
    } catch (err) {
      throw new GemError('MODEL_INVALID', `cannot fetch the load-predictor model ${String(model)}: ${(err as Error).message}`)
    }
  }
  return await createOrtSession(ort as unknown as OrtModule, bytes)
}

/** The ONNX predictor, or EWMA after telling `warn` once why the model is unusable. */
export async function loadWebPredictor (model: Uint8Array | string | URL, warn: (message: string, code: string) => void = (m) => console.warn(m)): Promise<LoadPredictor> {
  try {
    return new OnnxPredictor(await openWebSession(model))
  } catch (err) {
    const e = toGemError(err)
    warn(`load predictor: model unavailable (${e.message}), falling back to EWMA`, e.code)
    return new EwmaPredictor()
  }
}
