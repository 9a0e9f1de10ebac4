// The storage-tier conformance suite against LevelDB on disk (a fresh directory per case, with reopen),
// plus kill -9 of a writing child process: every batch it saw acknowledged is there after reopen.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GemError } from '@gem-mesh/core'
import type { StorageTier } from '@gem-mesh/core'
import { testBytes, tierConformanceCases } from '@gem-mesh/core/conformance'
import type { TierHarness } from '@gem-mesh/core/conformance'
import { openLevelTier } from '../src/storage/leveldb-tier.ts'

/** A fresh temp directory for `fn`, removed afterwards with every tier `fn` opened closed first. */
async function withDir (fn: (dir: string, opened: StorageTier[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gem-leveldb-'))
  const opened: StorageTier[] = []
  try {
    await fn(dir, opened)
  } finally {
    for (const t of opened) await t.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

describe('LevelDB tier conformance', () => {
  for (const c of tierConformanceCases()) {
    test(c.name, () => withDir(async (dir, opened) => {
      const open = async (): Promise<StorageTier> => {
        const t = await openLevelTier({ path: join(dir, 'db') })
        opened.push(t)
        return t
      }
      const harness: TierHarness = { open, reopen: open }
      await c.run(harness)
    }))
  }

  test("durability 'none' passes the reopen case too (a clean close flushes)", () => withDir(async (dir, opened) => {
    const open = async (): Promise<StorageTier> => {
      const t = await openLevelTier({ path: join(dir, 'db'), durability: 'none' })
      opened.push(t)
      return t
    }
    const reopenCase = tierConformanceCases().find(c => c.needs === 'reopen')
    assert.ok(reopenCase)
    await reopenCase.run({ open, reopen: open })
  }))
})

describe('LevelDB tier specifics', () => {
  test('a second open of a locked directory fails and the first stays usable', () => withDir(async (dir, opened) => {
    const path = join(dir, 'db')
    const first = await openLevelTier({ path })
    opened.push(first)
    await assert.rejects(openLevelTier({ path }), (e: unknown) => {
      const err = e as { code?: string, cause?: { code?: string } }
      return (err.cause?.code ?? err.code) === 'LEVEL_LOCKED' || /lock/i.test(String(e))
    })
    await first.write({ chunks: [], meta: [{ key: 'k', value: new Uint8Array([1]) }] })
    assert.deepEqual(await first.getMeta('k'), new Uint8Array([1]))
  }))

  test('bad options and streams with NUL are refused with BAD_REQUEST', () => withDir(async (dir, opened) => {
    await assert.rejects(openLevelTier({ path: join(dir, 'x'), durability: 'sometimes' as 'none' }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    const t = await openLevelTier({ path: join(dir, 'db') })
    opened.push(t)
    await assert.rejects(t.readChunks('a\0b', 0, 10), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    await assert.rejects(t.write({ chunks: [{ stream: 'a\0', baseOffset: 0, lastOffset: 0, data: new Uint8Array(1) }], meta: [] }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
  }))

  test('values read back are plain Uint8Arrays', () => withDir(async (dir, opened) => {
    const t = await openLevelTier({ path: join(dir, 'db') })
    opened.push(t)
    await t.write({ chunks: [{ stream: 's/0', baseOffset: 0, lastOffset: 0, data: new Uint8Array([1, 2]) }], meta: [{ key: 'k', value: new Uint8Array([3]) }] })
    const [c] = await t.readChunks('s/0', 0, 100)
    assert.equal(Object.getPrototypeOf(c.data), Uint8Array.prototype)
    assert.equal(Object.getPrototypeOf(await t.getMeta('k')), Uint8Array.prototype)
    assert.equal(Object.getPrototypeOf((await t.listMeta(''))[0][1]), Uint8Array.prototype)
  }))
})

// The child writes batch i as one chunk of stream crash/0 at offsets i*10..i*10+9 plus metadata acked/<i>,
// and prints i once write() resolved. It stops by itself after a bound, but is killed long before.
const CHILD = `
import { openLevelTier } from ${JSON.stringify(new URL('../src/storage/leveldb-tier.ts', import.meta.url).href)}
import { testBytes } from ${JSON.stringify(new URL('../../core/src/store/conformance.ts', import.meta.url).href)}
const tier = await openLevelTier({ path: process.argv[2], durability: process.argv[3] })
const pad = (i) => String(i).padStart(8, '0')
const deadline = Date.now() + 60_000
for (let i = 0; i < 200_000 && Date.now() < deadline; i++) {
  await tier.write({
    chunks: [{ stream: 'crash/0', baseOffset: i * 10, lastOffset: i * 10 + 9, data: testBytes(i, 4096 + (i % 7) * 1000) }],
    meta: [{ key: 'acked/' + pad(i), value: testBytes(i, 16) }],
  })
  process.stdout.write(i + '\\n') // pipes are synchronous on POSIX: the line is out before the next batch starts
}
await tier.close()
`

// 'none' promises the same against a process crash: a resolved write is in the OS page cache.
for (const durability of ['fsync', 'none'] as const) test(`kill -9 of a writer (${durability}): every acknowledged batch survives, the batch in flight is all or nothing`, () => withDir(async (dir, opened) => {
  const script = join(dir, 'writer.mjs')
  await writeFile(script, CHILD)
  const path = join(dir, 'db')
  const child = spawn(process.execPath, [script, path, durability], { stdio: ['ignore', 'pipe', 'pipe'] })
  let acked = -1
  let buffered = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (s: string) => { stderr += s })
  // 'close', not 'exit': it comes after the last stdout data, so every ack line has been read.
  const closed = new Promise<void>(resolve => child.once('close', () => resolve()))
  const gotAcks = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for acks (got ${acked + 1}); stderr: ${stderr}`)), 30_000)
    child.stdout.on('data', (s: string) => {
      buffered += s
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) {
        if (Number(line) !== acked + 1) { reject(new Error(`ack ${line} after ${acked}`)); return }
        acked = acked + 1
      }
      if (acked >= 200) { clearTimeout(timer); resolve() }
    })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`writer exited early (${code}): ${stderr}`)) })
  })
  try {
    await gotAcks
  } finally {
    child.kill('SIGKILL')
    const timeout = new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('writer did not die')), 10_000).unref())
    await Promise.race([closed, timeout])
  }
  // Every line read before the pipe closed is an acknowledged batch, including those read after the kill.
  assert.ok(acked >= 200)

  const tier = await openLevelTier({ path })
  opened.push(tier)
  const chunks = await tier.readChunks('crash/0', 0, Number.POSITIVE_INFINITY)
  const meta = await tier.listMeta('acked/')
  assert.ok(chunks.length >= acked + 1, `${chunks.length} chunks on disk, ${acked + 1} acknowledged`)
  assert.ok(chunks.length <= acked + 2, 'at most the one batch in flight beyond the acknowledged ones')
  assert.equal(meta.length, chunks.length, 'chunks and metadata of a batch land together')
  for (const [i, c] of chunks.entries()) {
    assert.equal(c.baseOffset, i * 10)
    assert.equal(c.lastOffset, i * 10 + 9)
    assert.deepEqual(c.data, testBytes(i, 4096 + (i % 7) * 1000), `chunk ${i} intact`)
    assert.equal(meta[i][0], `acked/${String(i).padStart(8, '0')}`)
    assert.deepEqual(meta[i][1], testBytes(i, 16))
  }
}))
