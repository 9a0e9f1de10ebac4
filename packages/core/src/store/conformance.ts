// The storage-tier conformance suite: the behaviour every StorageTier (memory, LevelDB, IndexedDB, S3) must show.
// Plain async functions with their own assertions: no test runner, no Node API, so it runs in any runtime and a browser.
import type { GemErrorCode } from '../errors.ts'
import type { StorageTier, StoredChunk, TierWriteBatch } from './tier.ts'

/** How a test runner hands a case its tier. Each case gets a fresh harness (fresh, empty storage). */
export interface TierHarness {
  /** Opens the tier on this harness's storage, empty at the first call. */
  open(): Promise<StorageTier>
  /**
   * Durable tiers only: opens the tier again on the same storage. Cases close the previous tier
   * themselves before calling it, so that a clean close is part of what they check.
   */
  reopen?(): Promise<StorageTier>
}

export interface TierConformanceCase {
  name: string
  /** 'reopen': the case needs `TierHarness.reopen`; runners skip it for tiers that keep nothing. */
  needs?: 'reopen'
  run(h: TierHarness): Promise<void>
}

export class ConformanceFailure extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConformanceFailure'
  }
}

export function check (cond: unknown, message: string): asserts cond {
  if (!cond) throw new ConformanceFailure(message)
}

/** Deep, strict equality; byte arrays compare by content whatever their subclass (Buffer, Uint8Array). */
export function equal (actual: unknown, expected: unknown, message: string): void {
  if (!deepEqual(actual, expected)) {
    throw new ConformanceFailure(`${message}\n  actual:   ${show(actual)}\n  expected: ${show(expected)}`)
  }
}

/** Resolves when `fn` rejects (or throws) with a GemError of `code`; fails otherwise. */
export async function rejectsWith (fn: () => Promise<unknown>, code: GemErrorCode, message: string): Promise<void> {
  try {
    await fn()
  } catch (err) {
    // By name and code rather than instanceof: a bundled tier may carry its own copy of GemError.
    const e = err as { name?: unknown, code?: unknown }
    if (e?.name === 'GemError' && e.code === code) return
    throw new ConformanceFailure(`${message}: expected GemError ${code}, got ${show(err)}`)
  }
  throw new ConformanceFailure(`${message}: expected GemError ${code}, but it succeeded`)
}

export function tierConformanceCases (): TierConformanceCase[] {
  return CASES.map(c => ({ ...c }))
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/** Deterministic bytes (xorshift32), always holding 0x00 and 0xff: the bytes that break text encodings. */
export function testBytes (seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = (seed * 2654435761 + 1) >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  if (length > 0) out[0] = 0x00
  if (length > 1) out[length - 1] = 0xff
  if (length > 2) out[length >> 1] = 0x00
  return out
}

function hash (s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

function chunk (stream: string, baseOffset: number, lastOffset = baseOffset, size = 64): StoredChunk {
  return { stream, baseOffset, lastOffset, data: testBytes(hash(stream) ^ (baseOffset % 0x7fffffff), size) }
}

const te = new TextEncoder()
const td = new TextDecoder()
const text = (s: string): Uint8Array => te.encode(s)

function batch (chunks: StoredChunk[], meta: TierWriteBatch['meta'] = []): TierWriteBatch {
  return { chunks, meta }
}

function label (c: StoredChunk): string {
  return `${c.stream}@${c.baseOffset}..${c.lastOffset}`
}

/** Chunks equal field by field, bytes by content; data must be a Uint8Array. */
function sameChunks (actual: StoredChunk[], expected: StoredChunk[], message: string): void {
  check(Array.isArray(actual), `${message}: expected an array, got ${show(actual)}`)
  equal(actual.map(label), expected.map(label), `${message}: which chunks`)
  for (let i = 0; i < expected.length; i++) sameChunk(actual[i], expected[i], message)
}

function sameChunk (actual: StoredChunk | undefined, expected: StoredChunk, message: string): void {
  check(actual !== undefined, `${message}: expected ${label(expected)}, got nothing`)
  equal(label(actual), label(expected), message)
  check(actual.data instanceof Uint8Array, `${message}: ${label(expected)} data is not a Uint8Array (${show(actual.data)})`)
  check(sameBytes(actual.data, expected.data), `${message}: ${label(expected)} data differs: ${show(actual.data)} vs ${show(expected.data)}`)
}

/** Every chunk of `stream` from offset 0, in one unbounded read. */
async function allChunks (tier: StorageTier, stream: string): Promise<StoredChunk[]> {
  return tier.readChunks(stream, 0, Number.POSITIVE_INFINITY)
}

/** Opens a tier, runs `fn`, and closes whatever tier is current when it ends, even on failure. */
async function withTier (h: TierHarness, fn: (t: { tier: StorageTier }) => Promise<void>): Promise<void> {
  const t = { tier: await h.open() }
  try {
    await fn(t)
  } finally {
    await t.tier.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Cases

const CASES: TierConformanceCase[] = [
  {
    name: 'write then read back chunks in offset order',
    run: h => withTier(h, async ({ tier }) => {
      const s = 'orders/0'
      const cs = [chunk(s, 0, 9), chunk(s, 10, 19), chunk(s, 20, 20), chunk(s, 21, 40)]
      await tier.write(batch([cs[0], cs[1]]))
      await tier.write(batch([cs[2]]))
      await tier.write(batch([cs[3]]))
      sameChunks(await allChunks(tier, s), cs, 'all chunks')
      sameChunks(await tier.readChunks(s, 10, Number.POSITIVE_INFINITY), cs.slice(1), 'from a chunk base')
      sameChunks(await tier.readChunks('orders/1', 0, Number.POSITIVE_INFINITY), [], 'a stream never written')
    }),
  },
  {
    name: 'readChunks from inside a chunk starts with that chunk',
    run: h => withTier(h, async ({ tier }) => {
      const s = 't/0'
      const cs = [chunk(s, 0, 9), chunk(s, 10, 19), chunk(s, 20, 29)]
      await tier.write(batch(cs))
      sameChunks(await tier.readChunks(s, 15, Number.POSITIVE_INFINITY), cs.slice(1), 'from 15')
      sameChunks(await tier.readChunks(s, 19, Number.POSITIVE_INFINITY), cs.slice(1), 'from 19 (a last offset)')
      sameChunks(await tier.readChunks(s, 29, Number.POSITIVE_INFINITY), cs.slice(2), 'from the very last offset')
      sameChunks(await tier.readChunks(s, 1, Number.POSITIVE_INFINITY), cs, 'from 1')
    }),
  },
  {
    name: 'readChunks from a gap starts with the next chunk; from past the end returns nothing',
    run: h => withTier(h, async ({ tier }) => {
      const s = 't/0'
      const cs = [chunk(s, 100, 109), chunk(s, 200, 209)]
      await tier.write(batch(cs))
      sameChunks(await tier.readChunks(s, 0, Number.POSITIVE_INFINITY), cs, 'before the first chunk')
      sameChunks(await tier.readChunks(s, 150, Number.POSITIVE_INFINITY), cs.slice(1), 'in the gap')
      sameChunks(await tier.readChunks(s, 110, Number.POSITIVE_INFINITY), cs.slice(1), 'right after a chunk')
      sameChunks(await tier.readChunks(s, 210, Number.POSITIVE_INFINITY), [], 'right after the end')
      sameChunks(await tier.readChunks(s, 1e9, Number.POSITIVE_INFINITY), [], 'far past the end')
    }),
  },
  {
    name: 'readChunks continues while the bytes read are below maxBytes, and returns at least one chunk',
    run: h => withTier(h, async ({ tier }) => {
      const s = 't/0'
      const cs = [0, 1, 2, 3, 4].map(i => chunk(s, i * 10, i * 10 + 9, 100))
      await tier.write(batch(cs))
      sameChunks(await tier.readChunks(s, 0, 250), cs.slice(0, 3), 'maxBytes 250: the third chunk crosses it')
      sameChunks(await tier.readChunks(s, 0, 200), cs.slice(0, 2), 'maxBytes 200: two chunks reach it exactly')
      sameChunks(await tier.readChunks(s, 0, 201), cs.slice(0, 3), 'maxBytes 201')
      sameChunks(await tier.readChunks(s, 0, 1), cs.slice(0, 1), 'maxBytes 1')
      sameChunks(await tier.readChunks(s, 0, 0), cs.slice(0, 1), 'maxBytes 0 still returns one chunk')
      sameChunks(await tier.readChunks(s, 25, 150), cs.slice(2, 4), 'from inside a chunk, bytes counted from there')
      sameChunks(await tier.readChunks(s, 45, 0), cs.slice(4), 'the last chunk alone')
      const big = chunk('t/1', 0, 0, 1000)
      await tier.write(batch([big, chunk('t/1', 1, 1, 10)]))
      sameChunks(await tier.readChunks('t/1', 0, 10), [big], 'one chunk larger than maxBytes')
    }),
  },
  {
    name: 'lastChunk returns the chunk with the highest offsets',
    run: h => withTier(h, async ({ tier }) => {
      const s = 't/0'
      equal(await tier.lastChunk(s), undefined, 'an empty stream has no last chunk')
      const a = chunk(s, 0, 9)
      await tier.write(batch([a]))
      sameChunk(await tier.lastChunk(s), a, 'after one chunk')
      const b = chunk(s, 10, 99)
      const c = chunk(s, 100, 100)
      await tier.write(batch([b, c]))
      sameChunk(await tier.lastChunk(s), c, 'after a batch of two')
      await tier.write(batch([chunk('t/1', 500, 600)]))
      sameChunk(await tier.lastChunk(s), c, 'another stream does not change it')
    }),
  },
  {
    name: 'streams are isolated, even when one name is a prefix of another',
    run: h => withTier(h, async ({ tier }) => {
      // Each pair is a key-prefix trap for a naive `${stream}${offset}` layout.
      const streams = ['a/1', 'a/10', 'a/100', 'a/2', 'a.b/1', 'a-/1', 'a_/1', 'ab/1', 'A/1', 'a.b.c/1', `${'x'.repeat(200)}/7`]
      const expected = new Map<string, StoredChunk[]>()
      for (const [i, s] of streams.entries()) {
        const cs = [chunk(s, 0, 4, 16 + i), chunk(s, 5, 9, 16 + i), chunk(s, 10, 10 + i, 16 + i)]
        expected.set(s, cs)
        await tier.write(batch(cs))
      }
      for (const s of streams) {
        const cs = expected.get(s)!
        sameChunks(await allChunks(tier, s), cs, `stream ${s}`)
        sameChunks(await tier.readChunks(s, 7, Number.POSITIVE_INFINITY), cs.slice(1), `stream ${s} from 7`)
        sameChunk(await tier.lastChunk(s), cs[2], `lastChunk of ${s}`)
      }
      sameChunks(await allChunks(tier, 'a'), [], 'stream "a" was never written')
      sameChunks(await allChunks(tier, 'a/'), [], 'stream "a/" was never written')
      equal(await tier.lastChunk('a/1000'), undefined, 'lastChunk of a stream never written')
    }),
  },
  {
    name: 'metadata put, overwrite, get and delete; an empty value is a value',
    run: h => withTier(h, async ({ tier }) => {
      equal(await tier.getMeta('k'), undefined, 'missing key')
      await tier.write(batch([], [{ key: 'k', value: text('one') }, { key: 'e', value: new Uint8Array(0) }]))
      equal(td.decode(await tier.getMeta('k')), 'one', 'after put')
      const empty = await tier.getMeta('e')
      check(empty instanceof Uint8Array && empty.byteLength === 0, `an empty value reads back as empty bytes, got ${show(empty)}`)
      await tier.write(batch([], [{ key: 'k', value: text('two') }]))
      equal(td.decode(await tier.getMeta('k')), 'two', 'after overwrite')
      await tier.write(batch([], [{ key: 'k', value: null }, { key: 'never-written', value: null }]))
      equal(await tier.getMeta('k'), undefined, 'after delete')
      equal((await tier.listMeta('')).map(([k]) => k), ['e'], 'what is left')
      const odd = 'seg/ü/ключ/日本/\u{1F600}/ !"#$%&\'()*+,-.:;<=>?@[\\]^_`{|}~'
      await tier.write(batch([], [{ key: odd, value: testBytes(7, 300) }]))
      equal(await tier.getMeta(odd), testBytes(7, 300), 'a key with non-ASCII and punctuation')
    }),
  },
  {
    name: 'listMeta returns the keys under a prefix in key order, and nothing else',
    run: h => withTier(h, async ({ tier }) => {
      const keys = ['seg/a/1/0000000000000010', 'seg/a/1/0000000000000000', 'seg/a/10/0000000000000000', 'seg/a/1', 'seg/a.b/1/0',
        'seg/a/2/0000000000000000', 'seg/a/1/', 'grp/g/a/1', 'seg/a/1/0000000000000005', 'seg', 'seg/', 'sef', 'seh', 'a', 'a/', 'a/b', 'ab', 'b']
      await tier.write(batch([], keys.map((k, i) => ({ key: k, value: text(`v${i}:${k}`) }))))
      const sorted = [...keys].sort()
      const list = async (prefix: string): Promise<string[]> => {
        const entries = await tier.listMeta(prefix)
        for (const [k, v] of entries) {
          check(v instanceof Uint8Array, `listMeta(${prefix}): value of ${k} is not a Uint8Array`)
          equal(td.decode(v), `v${keys.indexOf(k)}:${k}`, `listMeta(${prefix}): value of ${k}`)
        }
        return entries.map(([k]) => k)
      }
      equal(await list(''), sorted, 'every key')
      equal(await list('seg/a/1/'), ['seg/a/1/', 'seg/a/1/0000000000000000', 'seg/a/1/0000000000000005', 'seg/a/1/0000000000000010'], 'seg/a/1/')
      equal(await list('seg/a/1'), ['seg/a/1', 'seg/a/1/', 'seg/a/1/0000000000000000', 'seg/a/1/0000000000000005', 'seg/a/1/0000000000000010', 'seg/a/10/0000000000000000'], 'seg/a/1 (no slash)')
      equal(await list('seg/a/10/'), ['seg/a/10/0000000000000000'], 'seg/a/10/')
      equal(await list('seg/a.b/'), ['seg/a.b/1/0'], 'seg/a.b/')
      equal(await list('a'), ['a', 'a/', 'a/b', 'ab'], 'a')
      equal(await list('a/'), ['a/', 'a/b'], 'a/')
      equal(await list('seg/a/1/0000000000000005'), ['seg/a/1/0000000000000005'], 'a whole key as prefix')
      equal(await list('seg/a/3'), [], 'a prefix nothing has')
      equal(await list('c'), [], 'between existing keys')
      equal(await list('z'), [], 'after every key')
    }),
  },
  {
    name: 'metadata writes in one batch apply in order',
    run: h => withTier(h, async ({ tier }) => {
      await tier.write(batch([], [{ key: 'x', value: text('1') }, { key: 'x', value: null }, { key: 'y', value: null }, { key: 'y', value: text('2') }, { key: 'z', value: text('3') }, { key: 'z', value: text('4') }]))
      equal(await tier.getMeta('x'), undefined, 'put then delete')
      equal(td.decode(await tier.getMeta('y')), '2', 'delete then put')
      equal(td.decode(await tier.getMeta('z')), '4', 'put then put')
    }),
  },
  {
    name: 'a batch of chunks and metadata becomes visible all at once',
    run: h => withTier(h, async ({ tier }) => {
      const cs = [chunk('p/0', 0, 99, 64 * 1024), chunk('p/1', 0, 99, 64 * 1024), chunk('q/0', 0, 0, 10)]
      const meta = [{ key: 'seg/p/0/0', value: text('m0') }, { key: 'seg/p/1/0', value: text('m1') }]
      let done = false
      const writing = tier.write(batch(cs, meta)).finally(() => { done = true })
      // Reads one after another while the write is in flight: once one read sees any part of the batch,
      // every later read must see its part too. (Concurrent reads prove nothing: each is its own instant.)
      const probes: Array<() => Promise<unknown>> = [
        () => tier.getMeta('seg/p/0/0'), () => tier.lastChunk('p/0'), () => tier.lastChunk('p/1'),
        () => tier.lastChunk('q/0'), () => tier.getMeta('seg/p/1/0'),
      ]
      for (let i = 0; i < 100_000 && !done; i++) {
        let seen = -1
        for (const [j, probe] of probes.entries()) {
          const visible = (await probe()) !== undefined
          if (seen >= 0) check(visible, `probe ${seen} saw the batch, but the later probe ${j} does not: part of a batch is visible without the rest`)
          if (visible && seen < 0) seen = j
        }
      }
      await writing
      for (const c of cs) sameChunks(await allChunks(tier, c.stream), [c], `stream ${c.stream} after the batch`)
      equal((await tier.listMeta('seg/')).map(([k, v]) => `${k}=${td.decode(v)}`), ['seg/p/0/0=m0', 'seg/p/1/0=m1'], 'metadata after the batch')
    }),
  },
  {
    name: 'deleteChunksBefore deletes whole chunks only',
    run: h => withTier(h, async ({ tier }) => {
      const s = 'a/1'
      const cs = [chunk(s, 0, 9), chunk(s, 10, 19), chunk(s, 20, 29), chunk(s, 30, 39)]
      const neighbours = [chunk('a/10', 0, 9), chunk('a/10', 10, 19), chunk('a/1x', 0, 50)]
      await tier.write(batch([...cs, ...neighbours], [{ key: 'seg/a/1/0', value: text('m') }]))
      await tier.deleteChunksBefore(s, 0)
      sameChunks(await allChunks(tier, s), cs, 'before 0 deletes nothing')
      await tier.deleteChunksBefore(s, 9)
      sameChunks(await allChunks(tier, s), cs, 'before 9: chunk 0..9 straddles the boundary and stays')
      await tier.deleteChunksBefore(s, 15)
      sameChunks(await allChunks(tier, s), cs.slice(1), 'before 15: 0..9 goes, 10..19 stays')
      sameChunks(await tier.readChunks(s, 0, 0), cs.slice(1, 2), 'a read from 0 starts at the first chunk left')
      await tier.deleteChunksBefore(s, 30)
      sameChunks(await allChunks(tier, s), cs.slice(3), 'before 30: up to 29 goes')
      sameChunk(await tier.lastChunk(s), cs[3], 'lastChunk is unchanged')
      await tier.deleteChunksBefore(s, 10)
      sameChunks(await allChunks(tier, s), cs.slice(3), 'a lower boundary later is a no-op')
      sameChunks(await allChunks(tier, 'a/10'), neighbours.slice(0, 2), 'stream a/10 is untouched')
      sameChunks(await allChunks(tier, 'a/1x'), neighbours.slice(2), 'stream a/1x is untouched')
      equal(td.decode(await tier.getMeta('seg/a/1/0')), 'm', 'metadata is untouched')
      await tier.deleteChunksBefore(s, Number.MAX_SAFE_INTEGER)
      sameChunks(await allChunks(tier, s), [], 'before 2^53-1 deletes everything')
      equal(await tier.lastChunk(s), undefined, 'no last chunk')
      await tier.deleteChunksBefore('never/0', 100)
      await tier.write(batch([chunk(s, 40, 49)]))
      sameChunks(await allChunks(tier, s), [chunk(s, 40, 49)], 'the stream takes new chunks after')
    }),
  },
  {
    name: 'deleteChunks (where a tier has it) deletes the chunks starting at the offsets given, and nothing else',
    run: h => withTier(h, async ({ tier }) => {
      if (tier.deleteChunks === undefined) return
      const s = 'k/1'
      const cs = [chunk(s, 0, 9), chunk(s, 10, 19), chunk(s, 20, 29), chunk(s, 30, 39)]
      const neighbour = chunk('k/10', 0, 9)
      await tier.write(batch([...cs, neighbour], [{ key: 'seg/k/1/0', value: text('m') }]))
      await tier.deleteChunks(s, [])
      sameChunks(await allChunks(tier, s), cs, 'no offsets deletes nothing')
      await tier.deleteChunks(s, [0, 10, 5, 1_000])
      sameChunks(await allChunks(tier, s), cs.slice(2), 'the chunks at 0 and 10 go; 5 and 1000 start no chunk')
      sameChunks(await tier.readChunks(s, 0, 0), cs.slice(2, 3), 'a read from 0 starts at the first chunk left')
      await tier.deleteChunks('never/0', [0])
      await tier.deleteChunks(s, [30])
      sameChunks(await allChunks(tier, s), cs.slice(2, 3), 'the last chunk can go too')
      sameChunks(await allChunks(tier, 'k/10'), [neighbour], 'another stream is untouched')
      equal(td.decode(await tier.getMeta('seg/k/1/0')), 'm', 'metadata is untouched')
    }),
  },
  {
    name: 'deleteStream deletes every chunk of one stream and nothing else',
    run: h => withTier(h, async ({ tier }) => {
      const streams = ['a/1', 'a/10', 'a/1.x', 'a.b/1', 'a/0']
      for (const s of streams) await tier.write(batch([chunk(s, 0, 9), chunk(s, 10, 19)], [{ key: `seg/${s}/0`, value: text(s) }]))
      await tier.deleteStream('a/1')
      sameChunks(await allChunks(tier, 'a/1'), [], 'a/1 is gone')
      equal(await tier.lastChunk('a/1'), undefined, 'a/1 has no last chunk')
      for (const s of streams.slice(1)) sameChunks(await allChunks(tier, s), [chunk(s, 0, 9), chunk(s, 10, 19)], `${s} is untouched`)
      equal((await tier.listMeta('seg/')).length, streams.length, 'metadata is untouched')
      await tier.deleteStream('a/1')
      await tier.deleteStream('never/0')
      await tier.write(batch([chunk('a/1', 0, 0)]))
      sameChunks(await allChunks(tier, 'a/1'), [chunk('a/1', 0, 0)], 'a deleted stream can be written again')
    }),
  },
  {
    name: 'data comes back byte for byte',
    run: h => withTier(h, async ({ tier }) => {
      const sizes = [1, 2, 3, 255, 256, 4096, 65_536, 65_537, 1_048_576 + 13]
      const cs = sizes.map((n, i) => ({ stream: 'bytes/0', baseOffset: i, lastOffset: i, data: testBytes(1000 + i, n) }))
      cs.push({ stream: 'bytes/0', baseOffset: cs.length, lastOffset: cs.length, data: new Uint8Array(300) }) // all zeros
      cs.push({ stream: 'bytes/0', baseOffset: cs.length, lastOffset: cs.length, data: new Uint8Array(300).fill(0xff) })
      // A view into the middle of a larger buffer: a tier must store the view, not its whole ArrayBuffer.
      const backing = testBytes(99, 1000)
      cs.push({ stream: 'bytes/0', baseOffset: cs.length, lastOffset: cs.length, data: backing.subarray(100, 200) })
      await tier.write(batch(cs.slice(0, 5)))
      await tier.write(batch(cs.slice(5)))
      sameChunks(await allChunks(tier, 'bytes/0'), cs, 'every chunk')
      for (const c of cs) sameChunks(await tier.readChunks('bytes/0', c.baseOffset, 0), [c], `chunk ${c.baseOffset} alone`)
      const meta = [testBytes(5, 1), new Uint8Array(64).fill(0), new Uint8Array(64).fill(0xff), testBytes(6, 70_000), backing.subarray(10, 20)]
      await tier.write(batch([], meta.map((v, i) => ({ key: `bin/${i}`, value: v }))))
      for (const [i, v] of meta.entries()) equal(await tier.getMeta(`bin/${i}`), v, `metadata bin/${i}`)
      equal((await tier.listMeta('bin/')).map(([, v]) => v), meta, 'listMeta values')
    }),
  },
  {
    name: 'stored bytes are shared with neither the writer nor the reader',
    run: h => withTier(h, async ({ tier }) => {
      const c = chunk('alias/0', 0, 9, 256)
      const original = c.data.slice()
      const value = testBytes(3, 32)
      const originalValue = value.slice()
      await tier.write(batch([c], [{ key: 'k', value }]))
      c.data.fill(0xaa)
      value.fill(0xbb)
      sameChunks(await allChunks(tier, 'alias/0'), [{ ...c, data: original }], 'mutating the written buffer after write()')
      equal(await tier.getMeta('k'), originalValue, 'mutating the written metadata value after write()')
      const [read] = await allChunks(tier, 'alias/0')
      read.data.fill(0xcc)
      const last = await tier.lastChunk('alias/0')
      last?.data.fill(0xdd)
      const got = await tier.getMeta('k')
      got?.fill(0xee)
      for (const [, v] of await tier.listMeta('k')) v.fill(0xee)
      sameChunks(await allChunks(tier, 'alias/0'), [{ ...c, data: original }], 'mutating chunks that were read')
      equal(await tier.getMeta('k'), originalValue, 'mutating metadata that was read')
    }),
  },
  {
    name: 'offsets up to 2^53-1 order numerically',
    run: h => withTier(h, async ({ tier }) => {
      const s = 'big/0'
      const bases = [0, 1, 2, 9, 10, 11, 99, 100, 101, 255, 256, 999, 1000, 65_535, 65_536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
        2 ** 32 + 1, 1e12, 2 ** 48, 2 ** 52, 2 ** 53 - 3]
      const cs = bases.map(b => chunk(s, b, b, 8))
      cs.push(chunk(s, 2 ** 53 - 2, 2 ** 53 - 1, 8))
      // Written out of order, in several batches, so that order must come from the offsets.
      const shuffled = [...cs].sort((a, b) => hash(String(a.baseOffset)) - hash(String(b.baseOffset)))
      for (let i = 0; i < shuffled.length; i += 5) await tier.write(batch(shuffled.slice(i, i + 5)))
      sameChunks(await allChunks(tier, s), cs, 'all, in numeric order')
      sameChunk(await tier.lastChunk(s), cs.at(-1)!, 'lastChunk')
      sameChunks(await tier.readChunks(s, 2 ** 53 - 1, 0), cs.slice(-1), 'from 2^53-1, inside the last chunk')
      sameChunks(await tier.readChunks(s, 12, Number.POSITIVE_INFINITY), cs.slice(bases.indexOf(99)), 'from 12')
      sameChunks(await tier.readChunks(s, 2 ** 32 - 1, 0), [chunk(s, 2 ** 32 - 1, 2 ** 32 - 1, 8)], 'from 2^32-1')
      sameChunks(await tier.readChunks(s, 2 ** 32 + 2, 0), [chunk(s, 1e12, 1e12, 8)], 'from 2^32+2')
      await tier.deleteChunksBefore(s, 2 ** 32)
      sameChunks(await allChunks(tier, s), cs.slice(bases.indexOf(2 ** 32)), 'deleteChunksBefore 2^32')
      await tier.deleteChunksBefore(s, 2 ** 53 - 1)
      sameChunks(await allChunks(tier, s), cs.slice(-1), 'deleteChunksBefore 2^53-1 keeps the chunk holding it')
    }),
  },
  {
    name: 'rewriting a chunk at the same base replaces it',
    run: h => withTier(h, async ({ tier }) => {
      const s = 'r/0'
      await tier.write(batch([chunk(s, 0, 9), chunk(s, 10, 19)]))
      const again = { stream: s, baseOffset: 10, lastOffset: 14, data: testBytes(77, 40) }
      await tier.write(batch([again]))
      sameChunks(await allChunks(tier, s), [chunk(s, 0, 9), again], 'the new chunk replaces the old one')
      sameChunk(await tier.lastChunk(s), again, 'lastChunk')
    }),
  },
  {
    name: 'an empty batch is fine',
    run: h => withTier(h, async ({ tier }) => {
      await tier.write(batch([]))
      await tier.write(batch([chunk('e/0', 0, 0)], [{ key: 'k', value: text('v') }]))
      await tier.write(batch([]))
      sameChunks(await allChunks(tier, 'e/0'), [chunk('e/0', 0, 0)], 'chunks unchanged')
      equal((await tier.listMeta('')).length, 1, 'metadata unchanged')
    }),
  },
  {
    name: 'an invalid batch is refused whole with BAD_REQUEST',
    run: h => withTier(h, async ({ tier }) => {
      const good = chunk('v/0', 0, 0)
      const bad: Array<[string, StoredChunk]> = [
        ['a negative base', { ...chunk('v/0', 1, 1), baseOffset: -1 }],
        ['last before base', { ...chunk('v/0', 1, 1), baseOffset: 5, lastOffset: 4 }],
        ['a fractional offset', { ...chunk('v/0', 1, 1), lastOffset: 1.5 }],
        ['an offset of 2^53', { ...chunk('v/0', 1, 1), lastOffset: 2 ** 53 }],
        ['NaN', { ...chunk('v/0', 1, 1), baseOffset: Number.NaN }],
        ['data that is not bytes', { ...chunk('v/0', 1, 1), data: 'text' as unknown as Uint8Array }],
      ]
      for (const [what, c] of bad) {
        await rejectsWith(() => tier.write(batch([good, c], [{ key: 'k', value: text('v') }])), 'BAD_REQUEST', what)
      }
      sameChunks(await allChunks(tier, 'v/0'), [], 'no chunk of a refused batch was written')
      equal(await tier.getMeta('k'), undefined, 'no metadata of a refused batch was written')
    }),
  },
  {
    name: 'after close every operation rejects with CLOSED',
    run: async h => {
      const tier = await h.open()
      await tier.write(batch([chunk('c/0', 0, 0)], [{ key: 'k', value: text('v') }]))
      await tier.close()
      await rejectsWith(() => tier.write(batch([chunk('c/0', 1, 1)])), 'CLOSED', 'write')
      await rejectsWith(() => tier.write(batch([])), 'CLOSED', 'an empty write')
      await rejectsWith(() => tier.readChunks('c/0', 0, 100), 'CLOSED', 'readChunks')
      await rejectsWith(() => tier.lastChunk('c/0'), 'CLOSED', 'lastChunk')
      await rejectsWith(() => tier.deleteChunksBefore('c/0', 10), 'CLOSED', 'deleteChunksBefore')
      await rejectsWith(() => tier.deleteStream('c/0'), 'CLOSED', 'deleteStream')
      await rejectsWith(() => tier.getMeta('k'), 'CLOSED', 'getMeta')
      await rejectsWith(() => tier.listMeta(''), 'CLOSED', 'listMeta')
      await tier.close() // a second close is harmless
    },
  },
  {
    name: 'everything survives close and reopen, and the reopened tier carries on',
    needs: 'reopen',
    run: async h => {
      check(h.reopen !== undefined, 'this case needs a harness with reopen()')
      const reopen = h.reopen.bind(h)
      const a = [chunk('d/0', 0, 9, 1000), chunk('d/0', 10, 19, 70_000), chunk('d/0', 20, 29, 1_048_576), chunk('d/0', 30, 39, 1)]
      const b = [chunk('d/1', 0, 0), chunk('d/1', 1, 1)]
      const gone = [chunk('d/10', 0, 5)]
      const t = { tier: await h.open() }
      try {
        await t.tier.write(batch([a[0], b[0], gone[0]], [{ key: 'seg/d/0/0', value: text('a') }, { key: 'tmp', value: text('x') }]))
        await t.tier.write(batch([a[1], a[2]], [{ key: 'seg/d/1/0', value: text('b') }]))
        await t.tier.write(batch([a[3], b[1]], [{ key: 'tmp', value: null }, { key: 'empty', value: new Uint8Array(0) }]))
        await t.tier.deleteChunksBefore('d/0', 15)
        await t.tier.deleteStream('d/10')
        await t.tier.close()

        t.tier = await reopen()
        sameChunks(await allChunks(t.tier, 'd/0'), a.slice(1), 'd/0 after reopen')
        sameChunks(await allChunks(t.tier, 'd/1'), b, 'd/1 after reopen')
        sameChunks(await allChunks(t.tier, 'd/10'), [], 'a deleted stream stays deleted')
        sameChunk(await t.tier.lastChunk('d/0'), a[3], 'lastChunk after reopen')
        equal((await t.tier.listMeta('')).map(([k, v]) => `${k}=${td.decode(v)}`), ['empty=', 'seg/d/0/0=a', 'seg/d/1/0=b'], 'metadata after reopen')

        const more = chunk('d/0', 40, 49)
        await t.tier.write(batch([more], [{ key: 'seg/d/0/0', value: text('a2') }]))
        sameChunks(await allChunks(t.tier, 'd/0'), [...a.slice(1), more], 'appending after reopen')
        await t.tier.close()

        t.tier = await reopen()
        sameChunks(await allChunks(t.tier, 'd/0'), [...a.slice(1), more], 'after a second reopen')
        equal(td.decode(await t.tier.getMeta('seg/d/0/0')), 'a2', 'metadata after a second reopen')
      } finally {
        await t.tier.close()
      }
    },
  },
]

// ---------------------------------------------------------------------------------------------
// Equality and display, small and dependency-free

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

function deepEqual (a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && sameBytes(a, b)
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as unknown[]
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]))
  }
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every(k => Object.prototype.hasOwnProperty.call(b, k) &&
    deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

function show (v: unknown): string {
  if (v instanceof Uint8Array) {
    const head = Array.from(v.subarray(0, 16), x => x.toString(16).padStart(2, '0')).join('')
    return `<${v.constructor.name} ${v.byteLength} bytes ${head}${v.byteLength > 16 ? '…' : ''}>`
  }
  if (v instanceof Error) return `${v.name}${'code' in v ? ` ${String((v as { code: unknown }).code)}` : ''}: ${v.message}`
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`
  if (typeof v === 'object' && v !== null) return `{ ${Object.entries(v).map(([k, x]) => `${k}: ${show(x)}`).join(', ')} }`
  if (typeof v === 'string') return JSON.stringify(v)
  return String(v)
}
