// The committed load-predictor model under native onnxruntime-node: the inference conformance suite (golden outputs
// within 1e-5, broken models MODEL_INVALID), and the fallback to EWMA, said once, when the model file is unusable.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GemError } from '@gem-mesh/core'
import { inferenceConformanceCases } from '@gem-mesh/core/predict'
import type { GoldenOutputs, InferenceHarness } from '@gem-mesh/core/predict'
import { DEFAULT_MODEL_PATH, loadPredictor, nodeSessionFromBytes, openNodeSession } from '../../src/predict/onnx-session.ts'

const GOLDEN = new URL('../../../../models/load-predictor.golden.json', import.meta.url)
const harness: InferenceHarness = {
  open: nodeSessionFromBytes,
  model: new Uint8Array(await readFile(DEFAULT_MODEL_PATH)),
  golden: JSON.parse(await readFile(GOLDEN, 'utf8')) as GoldenOutputs,
}

function recordingLog (): { warn: (o: unknown, m: string) => void, info: (o: unknown, m: string) => void, lines: Array<{ level: string, obj: Record<string, unknown>, msg: string }> } {
  const lines: Array<{ level: string, obj: Record<string, unknown>, msg: string }> = []
  return {
    lines,
    warn: (obj, msg) => { lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }) },
    info: (obj, msg) => { lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }) },
  }
}

describe('load predictor on onnxruntime-node', () => {
  for (const c of inferenceConformanceCases()) test(`conformance: ${c.name}`, () => c.run(harness))

  test('the default model loads as the onnx predictor', async () => {
    const log = recordingLog()
    const p = await loadPredictor(DEFAULT_MODEL_PATH, log as never)
    assert.equal(p.name, 'onnx')
    assert.equal(log.lines.filter(l => l.level === 'warn').length, 0)
  })

  test('a missing or corrupt model: MODEL_INVALID, one warning, EWMA', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gem-model-'))
    try {
      const corrupt = join(dir, 'corrupt.onnx')
      const bytes = await readFile(DEFAULT_MODEL_PATH)
      for (let i = 16; i < bytes.length; i += 5) bytes[i] ^= 0x5a
      await writeFile(corrupt, bytes)
      const empty = join(dir, 'empty.onnx')
      await writeFile(empty, '')
      for (const path of [join(dir, 'missing.onnx'), corrupt, empty]) {
        await assert.rejects(openNodeSession(path), (e: unknown) => GemError.is(e, 'MODEL_INVALID'))
        const log = recordingLog()
        const p = await loadPredictor(path, log as never)
        assert.equal(p.name, 'ewma', path)
        const warns = log.lines.filter(l => l.level === 'warn')
        assert.equal(warns.length, 1, 'said once')
        assert.equal(warns[0].obj.code, 'MODEL_INVALID')
        assert.match(warns[0].msg, /falling back to EWMA/)
        // The fallback works.
        const [f] = await p.predict([[0.2, 0.4]])
        assert.equal(f.current, 0.4)
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
