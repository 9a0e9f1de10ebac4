// The committed load-predictor model under onnxruntime-web (wasm) on whichever runtime runs the core tests (Node, Deno,
// Bun): the inference conformance suite (golden outputs within 1e-5, MODEL_INVALID for broken files) and the predictor.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import * as ort from 'onnxruntime-web/wasm'
import { createOrtSession, inferenceConformanceCases, OnnxPredictor, OUTPUT_SIZE, WINDOW } from '../../src/predict/index.ts'
import type { GoldenOutputs, InferenceHarness, OrtModule } from '../../src/predict/index.ts'

const MODEL = new URL('../../../../models/load-predictor.onnx', import.meta.url)
const GOLDEN = new URL('../../../../models/load-predictor.golden.json', import.meta.url)
ort.env.wasm.numThreads = 1
const runtime = ort as unknown as OrtModule

const harness: InferenceHarness = {
  open: bytes => createOrtSession(runtime, bytes),
  model: new Uint8Array(await readFile(MODEL)),
  golden: JSON.parse(await readFile(GOLDEN, 'utf8')) as GoldenOutputs,
}

describe('load-predictor.onnx on onnxruntime-web (wasm)', () => {
  for (const c of inferenceConformanceCases()) test(c.name, () => c.run(harness))

  test('the ONNX predictor forecasts a batch, short windows included', async () => {
    const predictor = new OnnxPredictor(await createOrtSession(runtime, new Uint8Array(await readFile(MODEL))))
    const ramp = Array.from({ length: WINDOW }, (_, i) => 0.2 + 0.01 * i)
    const [flat, rising, short, empty] = await predictor.predict([new Array(WINDOW).fill(0.5), ramp, [0.3, 0.31], []])
    assert.equal(flat.ahead.length, OUTPUT_SIZE)
    assert.ok(Math.abs(flat.ahead[0] - 0.5) < 0.05, `a flat load stays about flat: ${flat.ahead}`)
    assert.ok(rising.ahead[OUTPUT_SIZE - 1] > rising.current, `a ramp is predicted to keep rising: ${rising.ahead}`)
    assert.ok(rising.peak >= rising.current)
    assert.equal(short.current, 0.31)
    assert.equal(empty.current, 0)
    assert.deepEqual(await predictor.predict([]), [])
    await predictor.close()
  })
})
