// The S3 tier through fauxqs over HTTP on 127.0.0.1: the storage-tier conformance suite (a fresh prefix per case,
// reopen included), checkpoints and clean-up, large objects in parts, a stopped server, and bad configuration.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GemError } from '@gem-mesh/core'
import type { StorageTier } from '@gem-mesh/core'
import { testBytes, tierConformanceCases } from '@gem-mesh/core/conformance'
import type { TierHarness } from '@gem-mesh/core/conformance'
import { startEmbeddedS3 } from '../src/storage/embedded-s3.ts'
import type { EmbeddedS3 } from '../src/storage/embedded-s3.ts'
import { openS3Tier } from '../src/storage/s3-tier.ts'
import type { S3TierOptions } from '../src/storage/s3-tier.ts'

let dir: string
let s3: EmbeddedS3
let n = 0
const opts = (prefix: string, extra: Partial<S3TierOptions> = {}): S3TierOptions =>
  ({ endpoint: s3.endpoint, bucket: 'gem-test', prefix, credentials: s3.credentials, createBucket: true, ...extra })

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gem-s3-'))
  s3 = await startEmbeddedS3({ dir: join(dir, 's3') })
})
after(async () => {
  await s3?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('S3 tier conformance (fauxqs)', () => {
  for (const c of tierConformanceCases()) {
    test(c.name, async () => {
      const prefix = `case-${++n}`
      const opened: StorageTier[] = []
      const open = async (): Promise<StorageTier> => {
        const t = await openS3Tier(opts(prefix, { checkpointEvery: 3 }))
        opened.push(t)
        return t
      }
      const harness: TierHarness = { open, reopen: open }
      try { await c.run(harness) } finally { for (const t of opened) await t.close().catch(() => {}) }
    })
  }
})

test('checkpoints replace replay, and deleted data leaves the bucket', async () => {
  const t = await openS3Tier(opts('gc', { checkpointEvery: 4 }))
  for (let i = 0; i < 10; i++) await t.write({ chunks: [{ stream: 's/0', baseOffset: i * 10, lastOffset: i * 10 + 9, data: testBytes(i, 1000) }], meta: [{ key: `m/${i}`, value: testBytes(i, 5) }] })
  await t.deleteChunksBefore('s/0', 50)
  const objects = await t.listObjects()
  // Five chunks live in five batch objects, plus one checkpoint; the rest is gone.
  assert.equal(objects.filter(o => o.key.includes('/b/')).length, 5, JSON.stringify(objects))
  assert.equal(objects.filter(o => o.key.includes('/c/')).length, 1)
  await t.close()
  const again = await openS3Tier(opts('gc'))
  assert.deepEqual((await again.readChunks('s/0', 0, Infinity)).map(c => c.baseOffset), [50, 60, 70, 80, 90])
  assert.equal((await again.listMeta('m/')).length, 10)
  await again.deleteStream('s/0')
  assert.deepEqual((await again.listObjects()).filter(o => o.key.includes('/b/')), [])
  await again.close()
})

test('a chunk larger than a single PUT allows goes up in parts and reads back', async () => {
  const t = await openS3Tier(opts('big'))
  const data = testBytes(42, 20 * 1024 * 1024 + 7)
  await t.write({ chunks: [{ stream: 'b/0', baseOffset: 0, lastOffset: 0, data }], meta: [] })
  const [c] = await t.readChunks('b/0', 0, 0)
  assert.equal(c.data.byteLength, data.byteLength)
  assert.ok(Buffer.from(c.data).equals(Buffer.from(data)))
  await t.close()
})

test('S3 unreachable: operations fail with UNAVAILABLE and the tier works again once it is back', async () => {
  const own = await startEmbeddedS3({ dir: join(dir, 'own') })
  let t
  try {
    t = await openS3Tier({ endpoint: own.endpoint, bucket: 'gem-down', prefix: 'p', credentials: own.credentials, createBucket: true, requestTimeoutMs: 2000 })
    await t.write({ chunks: [{ stream: 'x/0', baseOffset: 0, lastOffset: 0, data: testBytes(1, 10) }], meta: [] })
  } finally {
    await own.stop()
  }
  const port = own.port
  await assert.rejects(t.write({ chunks: [{ stream: 'x/0', baseOffset: 1, lastOffset: 1, data: testBytes(2, 10) }], meta: [] }), (e: unknown) => GemError.is(e, 'UNAVAILABLE'))
  await assert.rejects(t.probe(), (e: unknown) => GemError.is(e, 'UNAVAILABLE'))
  await assert.rejects(t.readChunks('x/0', 0, 0), (e: unknown) => GemError.is(e, 'UNAVAILABLE'))
  const back = await startEmbeddedS3({ dir: join(dir, 'own'), port })
  try {
    await t.probe()
    await t.write({ chunks: [{ stream: 'x/0', baseOffset: 1, lastOffset: 1, data: testBytes(2, 10) }], meta: [] })
    assert.deepEqual((await t.readChunks('x/0', 0, Infinity)).map(c => c.baseOffset), [0, 1])
  } finally {
    await t.close()
    await back.stop()
  }
})

test('bad configuration is refused with a clear code', async () => {
  await assert.rejects(openS3Tier({ bucket: '' }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
  await assert.rejects(openS3Tier({ bucket: 'b', endpoint: 'ftp://x' }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
  // A missing bucket without createBucket: UNAVAILABLE naming the bucket.
  await assert.rejects(openS3Tier({ ...opts('nb'), bucket: 'does-not-exist', createBucket: false }), (e: unknown) => GemError.is(e, 'UNAVAILABLE') && /does-not-exist/.test((e as Error).message))
})
