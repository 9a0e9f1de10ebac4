// The load-predictor model on Node: onnxruntime-node (native CPU) opened from a file, and the EWMA fallback when
// the file is missing or broken, said once (pino warn). The core's OnnxPredictor runs it; nothing else here predicts.
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import * as ort from 'onnxruntime-node'
import { GemError, toGemError } from '@gem-mesh/core'
import { createOrtSession, EwmaPredictor, OnnxPredictor } from '@gem-mesh/core/predict'
import type { InferenceSession, LoadPredictor } from '@gem-mesh/core/predict'
import type { Logger } from 'pino'

/** The model committed in the repo (`npm run train` writes it). */
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../../../../models/load-predictor.onnx', import.meta.url))

/** Opens the ONNX model at `path` with onnxruntime-node. Throws MODEL_INVALID when it is missing or does not run. */
export async function openNodeSession (path: string): Promise<InferenceSession> {
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await readFile(path))
  } catch (err) {
    throw new GemError('MODEL_INVALID', `cannot read the load-predictor model ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  return await nodeSessionFromBytes(bytes)
}

/** A session on ONNX bytes with onnxruntime-node. Throws MODEL_INVALID when they are not a usable model. */
export async function nodeSessionFromBytes (bytes: Uint8Array): Promise<InferenceSession> {
  return await createOrtSession(ort as unknown as Parameters<typeof createOrtSession>[0], bytes)
}

/** The ONNX predictor from `path`, or EWMA after one warning if the model cannot be used. */
export async function loadPredictor (path: string, log: Pick<Logger, 'warn' | 'info'>): Promise<LoadPredictor> {
  try {
    const predictor = new OnnxPredictor(await openNodeSession(path))
    log.info({ model: path }, 'load predictor: onnx model loaded')
    return predictor
  } catch (err) {
    const e = toGemError(err)
    log.warn({ model: path, code: e.code, err: e.message }, 'load predictor: model unavailable, falling back to EWMA')
    return new EwmaPredictor()
  }
}
