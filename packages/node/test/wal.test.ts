// The LevelDB tier's write-ahead log: replay after a crash that LevelDB did not survive, laps of a small
// log, and the frames replay must refuse (torn tail, stale frames from the previous lap, flipped bits).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { cp, mkdtemp, readdir, rm, open as openFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { WriteAheadLog } from '../src/storage/wal.ts'
import { openLevelTier } from '../src/storage/leveldb-tier.ts'

async function withDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gem-wal-'))
  try { await fn(dir) } finally { await rm(dir, { recursive: true, force: true }) }
}

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill)

describe('write-ahead log', () => {
  test('frames come back in order after reopen, and a torn tail ends the log', () => withDir(async dir => {
    const path = join(dir, 'w')
    const noLap = async (): Promise<void> => { throw new Error('must not lap') }
    const { wal } = await WriteAheadLog.open({ path, maxBytes: 1 << 20, beforeLap: noLap })
    for (let i = 0; i < 10; i++) assert.equal(await wal.append(bytes(100 + i, i)), i + 1)
    await wal.close()
    // Tear the last frame: zero its final bytes, as a crash in the middle of the write would leave it.
    const fh = await openFile(path, 'r+')
    const end = 10 * 12 + (100 + 101 + 102 + 103 + 104 + 105 + 106 + 107 + 108 + 109) + 10 * 4
    await fh.write(new Uint8Array(3), 0, 3, end - 3)
    await fh.close()
    const { wal: again, frames } = await WriteAheadLog.open({ path, maxBytes: 1 << 20, beforeLap: noLap })
    assert.deepEqual(frames.map(f => f.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert.deepEqual(frames[4].payload, bytes(104, 4))
    await again.close()
  }))

  test('a flipped bit in a middle frame ends replay there', () => withDir(async dir => {
    const path = join(dir, 'w')
    const { wal } = await WriteAheadLog.open({ path, maxBytes: 1 << 20, beforeLap: async () => {} })
    for (let i = 0; i < 5; i++) await wal.append(bytes(50, i))
    await wal.close()
    const fh = await openFile(path, 'r+')
    const third = 2 * (12 + 50 + 4) + 12 + 7
    const b = new Uint8Array(1)
    await fh.read(b, 0, 1, third)
    b[0] ^= 0x10
    await fh.write(b, 0, 1, third)
    await fh.close()
    const { wal: again, frames } = await WriteAheadLog.open({ path, maxBytes: 1 << 20, beforeLap: async () => {} })
    assert.deepEqual(frames.map(f => f.seq), [1, 2])
    await again.close()
  }))

  test('the writer laps after beforeLap, and stale frames of the previous lap are not replayed', () => withDir(async dir => {
    const path = join(dir, 'w')
    let laps = 0
    const { wal } = await WriteAheadLog.open({ path, maxBytes: 64 * 1024, beforeLap: async () => { laps++ } })
    for (let i = 0; i < 100; i++) await wal.append(bytes(1000, i & 0xff))
    assert.ok(laps >= 1)
    assert.ok((await stat(path)).size <= 64 * 1024)
    await wal.close()
    const { wal: again, frames } = await WriteAheadLog.open({ path, maxBytes: 64 * 1024, beforeLap: async () => {} })
    // Only the current lap: consecutive seqs ending at 100, all starting at file offset 0.
    assert.equal(frames.at(-1)!.seq, 100)
    for (let i = 1; i < frames.length; i++) assert.equal(frames[i].seq, frames[i - 1].seq + 1)
    assert.ok(frames.length < 100)
    await again.close()
  }))

  test('a frame larger than the log is refused with PAYLOAD_TOO_LARGE', () => withDir(async dir => {
    const { wal } = await WriteAheadLog.open({ path: join(dir, 'w'), maxBytes: 64 * 1024, beforeLap: async () => {} })
    await assert.rejects(wal.append(bytes(70 * 1024, 1)), { code: 'PAYLOAD_TOO_LARGE' })
    await wal.close()
  }))
})

describe('LevelDB tier over its write-ahead log', () => {
  test('a tier whose log laps many times keeps every chunk and every metadata value across reopen', () => withDir(async dir => {
    const path = join(dir, 'db')
    const tier = await openLevelTier({ path, walBytes: 64 * 1024 })
    for (let i = 0; i < 200; i++) {
      await tier.write({
        chunks: [{ stream: 's/0', baseOffset: i, lastOffset: i, data: bytes(900, i & 0xff) }],
        meta: [{ key: 'floor', value: Uint8Array.of(i & 0xff) }],
      })
    }
    await tier.deleteChunksBefore('s/0', 50)
    await tier.close()
    const back = await openLevelTier({ path, walBytes: 64 * 1024 })
    const chunks = await back.readChunks('s/0', 0, Infinity)
    assert.equal(chunks.length, 150)
    assert.equal(chunks[0].baseOffset, 50)
    assert.deepEqual(chunks[149].data, bytes(900, 199))
    assert.deepEqual(await back.getMeta('floor'), Uint8Array.of(199))
    await back.close()
  }))
})

// The child writes batch i as chunk s/0@i with metadata n=i; after batch 9 it closes (a checkpoint) and copies
// LevelDB's files aside; then it writes batches 10..59 and waits to be killed.
const CHILD = (tierUrl: string): string => `
import { cp } from 'node:fs/promises'
import { openLevelTier } from ${JSON.stringify(tierUrl)}
const [path, snap] = process.argv.slice(2)
const batch = i => ({ chunks: [{ stream: 's/0', baseOffset: i, lastOffset: i, data: new Uint8Array(300).fill(i) }], meta: [{ key: 'n', value: Uint8Array.of(i) }] })
let tier = await openLevelTier({ path })
for (let i = 0; i < 10; i++) await tier.write(batch(i))
await tier.close()
await cp(path, snap, { recursive: true, filter: src => !src.endsWith('gem.wal') })
tier = await openLevelTier({ path })
for (let i = 10; i < 60; i++) await tier.write(batch(i))
process.stdout.write('ok\\n')
setInterval(() => {}, 1000)
`

test('LevelDB losing every write since its last sync, as an OS crash may do, is repaired from the WAL', () => withDir(async dir => {
  const path = join(dir, 'db')
  const snap = join(dir, 'snap')
  const script = join(dir, 'child.mjs')
  await writeFile(script, CHILD(pathToFileURL(join(import.meta.dirname, '../src/storage/leveldb-tier.ts')).href))
  const child = spawn(process.execPath, [script, path, snap], { stdio: ['ignore', 'pipe', 'pipe'] })
  try {
    let err = ''
    child.stderr.on('data', d => { err += String(d) })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child timed out: ' + err)), 30_000)
      child.stdout.on('data', d => { if (String(d).includes('ok')) { clearTimeout(timer); resolve() } })
      child.once('exit', code => { clearTimeout(timer); reject(new Error(`child exited ${code}: ${err}`)) })
    })
  } finally {
    child.kill('SIGKILL')
  }
  await new Promise(resolve => child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve))
  // Roll LevelDB back to its last synced state; keep only the WAL from the crashed run.
  for (const f of await readdir(path)) if (f !== 'gem.wal') await rm(join(path, f), { recursive: true })
  await cp(snap, path, { recursive: true })
  const tier = await openLevelTier({ path })
  try {
    const chunks = await tier.readChunks('s/0', 0, Infinity)
    assert.deepEqual(chunks.map(c => c.baseOffset), Array.from({ length: 60 }, (_, i) => i))
    assert.deepEqual(chunks[59].data, new Uint8Array(300).fill(59))
    assert.deepEqual(await tier.getMeta('n'), Uint8Array.of(59))
  } finally {
    await tier.close()
  }
}))
