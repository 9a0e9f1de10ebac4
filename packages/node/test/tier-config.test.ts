// The tiered-storage settings of the config schema: flags, env and YAML reach them; bad values are refused naming
// the field and its source; a local budget that cannot hold two segments is refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, loadConfigWithSources } from '../src/config.ts'

const MiB = 1024 * 1024

function refused (fn: () => unknown, field: string): ConfigError {
  try { fn() } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    assert.equal(err.code, 'BAD_REQUEST')
    assert.equal(err.field, field)
    return err
  }
  return assert.fail('expected a ConfigError')
}

test('defaults: embedded S3 (auto), 8 MiB hot per partition, 1 GiB local, 64 MiB segments', () => {
  const c = loadConfig({ flags: {}, env: {} })
  assert.deepEqual([c.s3, c.s3Endpoint, c.s3Bucket, c.hotBytes, c.localBytes, c.segmentBytes], ['auto', '', '', 8 * MiB, 1024 * MiB, 64 * MiB])
})

test('the issue flags, env and YAML set the tier options', () => {
  const c = loadConfig({ flags: { s3Endpoint: 'http://127.0.0.1:9', s3Bucket: 'b1', hotBytes: '16777216', localBytes: '67108864', segmentBytes: '4194304', s3: 'none' }, env: {} })
  assert.deepEqual([c.s3, c.s3Endpoint, c.s3Bucket, c.hotBytes, c.localBytes, c.segmentBytes], ['none', 'http://127.0.0.1:9', 'b1', 16 * MiB, 64 * MiB, 4 * MiB])
  const e = loadConfigWithSources({ flags: {}, env: { GEM_S3_BUCKET: 'from-env', GEM_LOCAL_BYTES: '0', GEM_S3_PREFIX: 'p/x' } })
  assert.deepEqual([e.config.s3Bucket, e.config.localBytes, e.config.s3Prefix], ['from-env', 0, 'p/x'])
  assert.equal(e.sources.s3Bucket.kind, 'env')
  const dir = mkdtempSync(join(tmpdir(), 'gem-tier-config-'))
  try {
    const file = join(dir, 'gem.yaml')
    writeFileSync(file, 's3_endpoint: http://127.0.0.1:4566\ns3_bucket: yb\nhot_bytes: 1024\ncold_cache_bytes: 0\n')
    const y = loadConfig({ flags: { config: file }, env: {} })
    assert.deepEqual([y.s3Endpoint, y.s3Bucket, y.hotBytes, y.coldCacheBytes], ['http://127.0.0.1:4566', 'yb', 1024, 0])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('bad tier values are refused with BAD_REQUEST naming the field', () => {
  refused(() => loadConfig({ flags: { s3: 'sometimes' }, env: {} }), 's3')
  refused(() => loadConfig({ flags: { localBytes: '-1' }, env: {} }), 'localBytes')
  refused(() => loadConfig({ flags: { hotBytes: 'lots' }, env: {} }), 'hotBytes')
  refused(() => loadConfig({ flags: {}, env: { GEM_SEGMENT_BYTES: '100' } }), 'segmentBytes')
  refused(() => loadConfig({ flags: { coldCacheBytes: '1.5' }, env: {} }), 'coldCacheBytes')
  // The open segment stays local and a sealed one waits there for its upload: the budget must hold two.
  const e = refused(() => loadConfig({ flags: { localBytes: String(64 * MiB) }, env: {} }), 'localBytes')
  assert.match(e.message, /at least twice segmentBytes/)
  refused(() => loadConfig({ flags: { segmentBytes: String(600 * MiB) }, env: {} }), 'segmentBytes')
  assert.equal(loadConfig({ flags: { localBytes: String(64 * MiB), segmentBytes: String(4 * MiB) }, env: {} }).localBytes, 64 * MiB)
})
