// The committed load-predictor model under onnxruntime-web (wasm) on whichever runtime runs the core tests (Node, Deno,
// Bun): the golden outputs native onnxruntime-node produced (within 1e-5), and MODEL_INVALID for broken model files.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import * as ort from 'onnxruntime-web/wasm'
import { GemError } from '../../src/errors.ts'
import { createOrtSession, initMlp, INPUT_SIZE, mlpToOnnx, OnnxPredictor, OUTPUT_SIZE, WINDOW } from '../../src/predict/index.ts'
import type { OrtModule } from '../../src/predict/index.ts'

const MODEL = new URL('../../../../models/load-predictor.onnx', import.meta.url)
const GOLDEN = new URL('../../../../models/load-predictor.golden.json', import.meta.url)
ort.env.wasm.numThreads = 1
const runtime = ort as unknown as OrtModule

describe('load-predictor.onnx on onnxruntime-web (wasm)', () => {
  test('matches the native golden outputs within 1e-5', async () => {
    const golden = JSON.parse(await readFile(GOLDEN, 'utf8')) as { rows: number, inputSize: number, outputSize: number, input: number[], output: number[] }
    assert.equal(golden.inputSize, INPUT_SIZE)
    assert.equal(golden.outputSize, OUTPUT_SIZE)
    const session = await createOrtSession(runtime, new Uint8Array(await readFile(MODEL)))
    const out = await session.run(Float32Array.from(golden.input), golden.rows)
    assert.equal(out.length, golden.output.length)
    let maxDiff = 0
    for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i] - golden.output[i]))
    assert.ok(maxDiff <= 1e-5, `max difference ${maxDiff}`)
    await session.close()
  })

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

  test('a corrupt, truncated, empty or wrong-shaped model fails with MODEL_INVALID', async () => {
    const bytes = new Uint8Array(await readFile(MODEL))
    const corrupt = bytes.slice()
    for (let i = 40; i < corrupt.length; i += 7) corrupt[i] ^= 0xa5
    const wrongShape = mlpToOnnx(initMlp([8, 4, 2], 1), { inputName: 'x', outputName: 'y', docString: 'wrong shape' })
    for (const bad of [corrupt, bytes.slice(0, bytes.length >> 1), new Uint8Array(0), new TextEncoder().encode('not a model'), wrongShape]) {
      await assert.rejects(createOrtSession(runtime, bad), (e: unknown) => GemError.is(e, 'MODEL_INVALID'))
    }
  })

  test('a session refuses inputs of the wrong size with BAD_REQUEST', async () => {
    const session = await createOrtSession(runtime, new Uint8Array(await readFile(MODEL)))
    await assert.rejects(session.run(new Float32Array(INPUT_SIZE + 1), 1), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    // Still usable afterwards.
    assert.equal((await session.run(new Float32Array(INPUT_SIZE * 2), 2)).length, 2 * OUTPUT_SIZE)
    await session.close()
  })
})
