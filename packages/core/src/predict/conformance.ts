// The inference-session conformance suite: what every runtime's session (onnxruntime-node, onnxruntime-web in a
// browser, on Deno or Bun) must do with the committed model. Plain async functions, no test runner, no Node API.
import { check, rejectsWith } from '../store/conformance.ts'
import { INPUT_SIZE, OUTPUT_SIZE } from './features.ts'
import type { InferenceSession } from './inference-session.ts'
import { initMlp } from './mlp.ts'
import { mlpToOnnx } from './onnx-writer.ts'

/** models/load-predictor.golden.json: inputs and the outputs native onnxruntime-node gave for them. */
export interface GoldenOutputs { rows: number, inputSize: number, outputSize: number, input: number[], output: number[] }

export interface InferenceHarness {
  /** Opens a session on these model bytes with the runtime under test. */
  open(model: Uint8Array): Promise<InferenceSession>
  readonly model: Uint8Array
  readonly golden: GoldenOutputs
}

export interface InferenceConformanceCase { name: string, run(h: InferenceHarness): Promise<void> }

/** Outputs may differ from the golden ones by this much (float32 kernels differ between runtimes). */
export const GOLDEN_TOLERANCE = 1e-5

export function inferenceConformanceCases (): InferenceConformanceCase[] {
  return [
    {
      name: 'the model gives the golden outputs within 1e-5',
      async run (h) {
        check(h.golden.inputSize === INPUT_SIZE && h.golden.outputSize === OUTPUT_SIZE, `golden file is for ${h.golden.inputSize} -> ${h.golden.outputSize}`)
        const s = await h.open(h.model)
        const out = await s.run(Float32Array.from(h.golden.input), h.golden.rows)
        check(out.length === h.golden.output.length, `expected ${h.golden.output.length} outputs, got ${out.length}`)
        let maxDiff = 0
        for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i] - h.golden.output[i]))
        check(maxDiff <= GOLDEN_TOLERANCE, `max difference from the golden outputs ${maxDiff}`)
        await s.close()
      },
    },
    {
      name: 'rows are independent: one row alone gives what it gives in a batch',
      async run (h) {
        const s = await h.open(h.model)
        const all = await s.run(Float32Array.from(h.golden.input), h.golden.rows)
        const last = h.golden.rows - 1
        const one = await s.run(Float32Array.from(h.golden.input.slice(last * INPUT_SIZE)), 1)
        for (let k = 0; k < OUTPUT_SIZE; k++) check(Math.abs(one[k] - all[last * OUTPUT_SIZE + k]) <= GOLDEN_TOLERANCE, `output ${k} differs alone and in a batch`)
        await s.close()
      },
    },
    {
      name: 'an input of the wrong size is BAD_REQUEST and the session stays usable',
      async run (h) {
        const s = await h.open(h.model)
        await rejectsWith(() => s.run(new Float32Array(INPUT_SIZE + 1), 1), 'BAD_REQUEST', 'a row one value too long')
        check((await s.run(new Float32Array(INPUT_SIZE * 2), 2)).length === 2 * OUTPUT_SIZE, 'two rows after the refusal')
        await s.close()
      },
    },
    {
      name: 'a corrupt, truncated, empty, foreign or wrong-shaped model is MODEL_INVALID',
      async run (h) {
        const corrupt = h.model.slice()
        for (let i = 40; i < corrupt.length; i += 7) corrupt[i] ^= 0xa5
        const wrongShape = mlpToOnnx(initMlp([8, 4, 2], 1), { inputName: 'x', outputName: 'y', docString: 'wrong shape' })
        const bad: Array<[string, Uint8Array]> = [
          ['corrupt', corrupt], ['truncated', h.model.slice(0, h.model.length >> 1)], ['empty', new Uint8Array(0)],
          ['not a model', new TextEncoder().encode('not a model')], ['8 -> 2 instead of 64 -> 4', wrongShape],
        ]
        for (const [what, bytes] of bad) await rejectsWith(() => h.open(bytes), 'MODEL_INVALID', what)
      },
    },
  ]
}
