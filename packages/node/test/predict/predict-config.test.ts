// The predict.* settings: defaults, flags and env, and wrong values refused with BAD_REQUEST naming the field.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, loadConfig } from '../../src/config.ts'

test('predict.* defaults, from flags and from env', () => {
  const d = loadConfig({ flags: {}, env: {}, cwd: '/' })
  assert.deepEqual(d.predict, { model: '', capacity: 0.85, target: 0.7, admission: false, maxWaitMs: 1000, moves: false })
  const f = loadConfig({ flags: { predictCapacity: '0.6', predictModel: 'none', predictAdmission: 'true' }, env: { GEM_PREDICT_MAX_WAIT_MS: '250', GEM_PREDICT_MOVES: 'true' }, cwd: '/' })
  assert.equal(f.predict.capacity, 0.6)
  assert.equal(f.predict.model, 'none')
  assert.equal(f.predict.admission, true)
  assert.equal(f.predict.moves, true)
  assert.equal(f.predict.maxWaitMs, 250)
})

test('wrong predict.* values are refused with the field named', () => {
  for (const [flags, field] of [
    [{ predictCapacity: '0' }, 'predict.capacity'],
    [{ predictCapacity: '1.5' }, 'predict.capacity'],
    [{ predictCapacity: 'high' }, 'predict.capacity'],
    [{ predictTarget: '-1' }, 'predict.target'],
    [{ predictMaxWaitMs: '-5' }, 'predict.maxWaitMs'],
    [{ predictAdmission: 'maybe' }, 'predict.admission'],
  ] as Array<[Record<string, string>, string]>) {
    assert.throws(() => loadConfig({ flags, env: {}, cwd: '/' }), (e: unknown) => e instanceof ConfigError && e.code === 'BAD_REQUEST' && e.message.includes(field), JSON.stringify(flags))
  }
})
