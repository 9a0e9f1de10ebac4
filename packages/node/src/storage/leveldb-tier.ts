// LevelTier: the StorageTier on LevelDB (classic-level via `level`), one atomic LevelDB batch per write().
// It owns the on-disk key layout below; it never decodes records (chunks are opaque bytes behind a small header).
//
// Durability (the `durability` option):
//   'fsync' (default): every write() is a LevelDB batch with sync: true, so it resolves only after the
//     write-ahead log is fsync'd. Survives a process crash, an OS crash and power loss (on a disk that honours
//     fsync). A group commit is one write() and therefore one fsync, however many chunks and publishes it carries.
//   'none': write() resolves once the batch is in the OS page cache, not fsync'd. Survives a process crash
//     (kill -9 included). An OS crash or power loss may lose recently resolved writes.
// Either way a batch is all-or-nothing after any crash (one checksummed log record). Deletes follow the same mode.
//
// Key layout (binary keys, so that byte order is the order we need):
//   chunk:    'c' <utf-8 stream> 0x00 <baseOffset as u64 big-endian>  -> f64 baseOffset, f64 lastOffset, data
//   metadata: 'm' <utf-8 key>                                          -> value
// The 0x00 after the stream keeps 'a/1' apart from 'a/10' (a stream may not contain NUL), and big-endian
// offsets sort numerically. The header carries both offsets so reads never parse keys or records.
import { Level } from 'level'
import { GemError } from '@gem-mesh/core'
import type { StorageTier, StoredChunk, TierWriteBatch } from '@gem-mesh/core'

export type LevelDurability = 'fsync' | 'none'

export interface LevelTierOptions {
  /** Directory of the LevelDB database; created if missing. */
  path: string
  durability?: LevelDurability
}

type Db = Level<Uint8Array, Uint8Array>
/** On Node, `level` is classic-level, which also compacts a key range on request (its types do not say so). */
type Compactable = { compactRange?: (start: Uint8Array, end: Uint8Array) => Promise<void> }
type ValueIterator = { nextv(size: number): Promise<Uint8Array[]>, close(): Promise<void> }
type BatchOp = { type: 'put', key: Uint8Array, value: Uint8Array } | { type: 'del', key: Uint8Array }

const CHUNK_TAG = 0x63 // 'c'
const META_TAG = 0x6d // 'm'
const HEADER_BYTES = 16
/** One past the largest offset: a valid bound for ranges, never a stored offset. */
const OFFSET_LIMIT = 2 ** 53
/** Keys deleted per LevelDB batch when a range goes: bounds the memory a big delete holds. */
const DELETE_PAGE = 4096
/** Deletes by key pending before the deleted range is compacted, or how long after the first (see compactSoon). */
const COMPACT_AFTER_KEYS = 2048
const COMPACT_AFTER_MS = 5_000
/** Largest read-ahead of one iterator step; nextv stops early once it passes this many bytes. */
const MAX_READ_AHEAD = 64 * 1024 * 1024

const te = new TextEncoder()
const td = new TextDecoder()

/** Opens (creating if needed) the LevelDB database at `path`. Open errors (e.g. LEVEL_LOCKED) pass through unchanged. */
export async function openLevelTier (opts: LevelTierOptions): Promise<LevelTier> {
  const durability = opts.durability ?? 'fsync'
  if (durability !== 'fsync' && durability !== 'none') throw new GemError('BAD_REQUEST', `durability must be 'fsync' or 'none', not ${String(durability)}`)
  const db: Db = new Level<Uint8Array, Uint8Array>(opts.path, { keyEncoding: 'view', valueEncoding: 'view' })
  await db.open()
  return new LevelTier(db, opts.path, durability)
}

export class LevelTier implements StorageTier {
  readonly name = 'leveldb'
  readonly path: string
  readonly durability: LevelDurability
  private readonly db: Db
  private readonly sync: boolean
  private closed = false
  /** Encoded stream prefixes: a partition's key prefix is built once, not per read. */
  private readonly prefixes = new Map<string, Uint8Array>()
  /** Ranges deleted by key and not compacted yet, per stream (start, end), and the compaction running now. */
  private readonly toCompact = new Map<string, [Uint8Array, Uint8Array]>()
  private compacting: Promise<void> | undefined
  private compactTimer: ReturnType<typeof setTimeout> | undefined
  private pendingDeletes = 0

  /** Use openLevelTier(). */
  constructor (db: Db, path: string, durability: LevelDurability) {
    this.db = db
    this.path = path
    this.durability = durability
    this.sync = durability === 'fsync'
  }

  async write (batch: TierWriteBatch): Promise<void> {
    this.ensureOpen()
    const ops: BatchOp[] = []
    for (const c of batch.chunks) {
      checkChunk(c)
      ops.push({ type: 'put', key: chunkKey(this.prefix(c.stream), c.baseOffset), value: encodeChunk(c) })
    }
    for (const m of batch.meta) {
      if (typeof m.key !== 'string') throw new GemError('BAD_REQUEST', 'metadata key must be a string')
      if (m.value === null) ops.push({ type: 'del', key: metaKey(m.key) })
      else if (m.value instanceof Uint8Array) ops.push({ type: 'put', key: metaKey(m.key), value: m.value.slice() })
      else throw new GemError('BAD_REQUEST', `metadata ${m.key}: value must be a Uint8Array or null`)
    }
    if (ops.length === 0) return
    try {
      await this.db.batch(ops, { sync: this.sync && batch.sync !== false })
    } catch (err) {
      throw levelError(err, 'write')
    }
  }

  async readChunks (stream: string, fromOffset: number, maxBytes: number): Promise<StoredChunk[]> {
    this.ensureOpen()
    const p = this.prefix(stream)
    const from = offsetArg(fromOffset, 'fromOffset')
    const out: StoredChunk[] = []
    let bytes = 0
    let it: ValueIterator | undefined
    try {
      // The chunk holding `from` is the last one whose base is <= from (if it reaches `from`). This lookup
      // alone answers the common small read; a read at a chunk base (the previous lastOffset + 1) finds it exactly.
      const start = chunkKey(p, from)
      const [head] = await this.db.values({ gte: p, lte: start, reverse: true, limit: 1 }).all()
      if (head !== undefined && chunkLast(head) >= from) {
        const c = decodeChunk(stream, head)
        out.push(c)
        bytes += c.data.byteLength
        if (bytes >= maxBytes) return out
      }
      it = this.db.values({ gt: start, lt: streamEnd(p), highWaterMarkBytes: readAhead(maxBytes - bytes) })
      for (;;) {
        const values = await it.nextv(1000)
        if (values.length === 0) return out
        for (const v of values) {
          const c = decodeChunk(stream, v)
          out.push(c)
          bytes += c.data.byteLength
          if (bytes >= maxBytes) return out
        }
      }
    } catch (err) {
      throw levelError(err, 'readChunks')
    } finally {
      await it?.close().catch(() => {})
    }
  }

  async lastChunk (stream: string): Promise<StoredChunk | undefined> {
    this.ensureOpen()
    const p = this.prefix(stream)
    try {
      const [v] = await this.db.values({ gte: p, lt: streamEnd(p), reverse: true, limit: 1 }).all()
      return v === undefined ? undefined : decodeChunk(stream, v)
    } catch (err) {
      throw levelError(err, 'lastChunk')
    }
  }

  async deleteChunksBefore (stream: string, beforeOffset: number): Promise<void> {
    this.ensureOpen()
    const p = this.prefix(stream)
    const before = offsetArg(beforeOffset, 'beforeOffset')
    try {
      // Chunks never overlap: every chunk starting below `before` goes, except the last one if it reaches `before`.
      const [last] = await this.db.values({ gte: p, lt: chunkKey(p, before), reverse: true, limit: 1 }).all()
      if (last === undefined) return
      const end = chunkLast(last) >= before ? chunkKey(p, chunkBase(last)) : chunkKey(p, before)
      await this.deleteRange(p, end)
    } catch (err) {
      throw levelError(err, 'deleteChunksBefore')
    }
  }

  async deleteChunks (stream: string, baseOffsets: number[]): Promise<void> {
    this.ensureOpen()
    const p = this.prefix(stream)
    const keys = baseOffsets.map(b => chunkKey(p, offsetArg(b, 'baseOffsets')))
    try {
      for (let i = 0; i < keys.length; i += DELETE_PAGE) {
        await this.db.batch(keys.slice(i, i + DELETE_PAGE).map(key => ({ type: 'del' as const, key })), { sync: this.sync })
      }
    } catch (err) {
      throw levelError(err, 'deleteChunks')
    }
    if (keys.length > 0) this.compactSoon(stream, p, keys.reduce((a, b) => (Buffer.compare(a, b) > 0 ? a : b)), keys.length)
  }

  /**
   * Deletes by key leave tombstones that nothing reads past, so LevelDB would not compact them for a long time and
   * the evicted bytes would stay on disk. The deleted range is compacted in the background, one compaction at a
   * time, once COMPACT_AFTER_KEYS deletes are pending or COMPACT_AFTER_MS after the first: each compaction flushes the
   * memtable and rewrites what overlaps the range, so one per eviction cost more CPU than the evictions themselves.
   */
  private compactSoon (stream: string, p: Uint8Array, lastKey: Uint8Array, deleted: number): void {
    const end = new Uint8Array(lastKey.length + 1)
    end.set(lastKey)
    const prev = this.toCompact.get(stream)
    this.toCompact.set(stream, [p, prev !== undefined && Buffer.compare(prev[1], end) > 0 ? prev[1] : end])
    this.pendingDeletes += deleted
    if (this.pendingDeletes >= COMPACT_AFTER_KEYS) this.compactNow()
    else this.compactTimer ??= setTimeout(() => { this.compactNow() }, COMPACT_AFTER_MS)
  }

  private compactNow (): void {
    if (this.compactTimer !== undefined) { clearTimeout(this.compactTimer); this.compactTimer = undefined }
    if (this.compacting !== undefined || this.closed) return
    this.pendingDeletes = 0
    this.compacting = (async () => {
      while (this.toCompact.size > 0 && !this.closed) {
        const [key, [start, stop]] = this.toCompact.entries().next().value!
        this.toCompact.delete(key)
        try { await (this.db as unknown as Compactable).compactRange?.(start, stop) } catch { /* best effort: LevelDB compacts by itself eventually */ }
      }
      this.compacting = undefined
    })()
  }

  async deleteStream (stream: string): Promise<void> {
    this.ensureOpen()
    const p = this.prefix(stream)
    try {
      await this.deleteRange(p, streamEnd(p))
    } catch (err) {
      throw levelError(err, 'deleteStream')
    }
  }

  async getMeta (key: string): Promise<Uint8Array | undefined> {
    this.ensureOpen()
    try {
      const v = await this.db.get(metaKey(key))
      return v === undefined ? undefined : plain(v, 0)
    } catch (err) {
      throw levelError(err, 'getMeta')
    }
  }

  async listMeta (prefix: string): Promise<Array<[string, Uint8Array]>> {
    this.ensureOpen()
    const gte = metaKey(prefix)
    // UTF-8 never holds 0xff, so bumping the last byte gives the first key past the prefix.
    const lt = gte.slice()
    lt[lt.length - 1]++
    try {
      const entries = await this.db.iterator({ gte, lt }).all()
      return entries.map(([k, v]) => [td.decode(k.subarray(1)), plain(v, 0)])
    } catch (err) {
      throw levelError(err, 'listMeta')
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.compactTimer !== undefined) clearTimeout(this.compactTimer)
    await this.compacting
    await this.db.close()
  }

  private ensureOpen (): void {
    if (this.closed) throw new GemError('CLOSED', `LevelDB tier ${this.path} is closed`)
  }

  private prefix (stream: string): Uint8Array {
    let p = this.prefixes.get(stream)
    if (p !== undefined) return p
    if (typeof stream !== 'string' || stream === '' || stream.includes('\0')) {
      throw new GemError('BAD_REQUEST', `stream ${JSON.stringify(stream)} must be a non-empty string without NUL`)
    }
    const name = te.encode(stream)
    p = new Uint8Array(name.length + 2)
    p[0] = CHUNK_TAG
    p.set(name, 1)
    p[p.length - 1] = 0x00
    if (this.prefixes.size >= 10_000) this.prefixes.clear() // bounded: streams come and go
    this.prefixes.set(stream, p)
    return p
  }

  /** Deletes the keys in [gte, lt), a page per batch, each synced as the tier's durability says. */
  private async deleteRange (gte: Uint8Array, lt: Uint8Array): Promise<void> {
    const it = this.db.keys({ gte, lt })
    try {
      for (;;) {
        const keys = await it.nextv(DELETE_PAGE)
        if (keys.length === 0) return
        await this.db.batch(keys.map(key => ({ type: 'del' as const, key })), { sync: this.sync })
      }
    } finally {
      await it.close().catch(() => {})
    }
  }
}

function chunkKey (prefix: Uint8Array, offset: number): Uint8Array {
  const key = new Uint8Array(prefix.length + 8)
  key.set(prefix)
  const dv = new DataView(key.buffer, prefix.length, 8)
  dv.setUint32(0, Math.floor(offset / 2 ** 32))
  dv.setUint32(4, offset >>> 0)
  return key
}

/** The first key after every chunk key of the stream: the prefix with its 0x00 terminator bumped to 0x01. */
function streamEnd (prefix: Uint8Array): Uint8Array {
  const end = prefix.slice()
  end[end.length - 1] = 0x01
  return end
}

function metaKey (key: string): Uint8Array {
  const k = te.encode(key)
  const out = new Uint8Array(k.length + 1)
  out[0] = META_TAG
  out.set(k, 1)
  return out
}

function encodeChunk (c: StoredChunk): Uint8Array {
  const v = new Uint8Array(HEADER_BYTES + c.data.byteLength)
  const dv = new DataView(v.buffer)
  dv.setFloat64(0, c.baseOffset)
  dv.setFloat64(8, c.lastOffset)
  v.set(c.data, HEADER_BYTES)
  return v
}

function header (v: Uint8Array): DataView {
  if (v.byteLength < HEADER_BYTES) throw new GemError('CORRUPT_RECORD', `chunk value of ${v.byteLength} bytes is shorter than its header`)
  return new DataView(v.buffer, v.byteOffset, HEADER_BYTES)
}

function chunkBase (v: Uint8Array): number {
  return header(v).getFloat64(0)
}

function chunkLast (v: Uint8Array): number {
  return header(v).getFloat64(8)
}

function decodeChunk (stream: string, v: Uint8Array): StoredChunk {
  const h = header(v)
  return { stream, baseOffset: h.getFloat64(0), lastOffset: h.getFloat64(8), data: plain(v, HEADER_BYTES) }
}

/** A plain Uint8Array over LevelDB's Buffer (no copy): callers compare and subclass-check plain views. */
function plain (v: Uint8Array, skip: number): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset + skip, v.byteLength - skip)
}

/** nextv's byte budget: enough for the read in one step, bounded so an unbounded read streams in steps. */
function readAhead (maxBytes: number): number {
  return Math.max(1, Math.min(Number.isFinite(maxBytes) ? maxBytes : MAX_READ_AHEAD, MAX_READ_AHEAD))
}

/** An offset argument clamped to [0, 2^53]: below 0 means from the start, above every offset means past the end. */
function offsetArg (n: number, what: string): number {
  if (typeof n !== 'number' || Number.isNaN(n)) throw new GemError('BAD_REQUEST', `${what} must be a number, not ${String(n)}`)
  return Math.min(Math.max(0, Math.ceil(n)), OFFSET_LIMIT)
}

function checkChunk (c: StoredChunk): void {
  if (!Number.isSafeInteger(c.baseOffset) || !Number.isSafeInteger(c.lastOffset) || c.baseOffset < 0 || c.lastOffset < c.baseOffset) {
    throw new GemError('BAD_REQUEST', `chunk ${c.stream}: offsets ${c.baseOffset}..${c.lastOffset} are not a range of offsets in [0, 2^53)`)
  }
  if (!(c.data instanceof Uint8Array)) throw new GemError('BAD_REQUEST', `chunk ${c.stream}@${c.baseOffset}: data must be a Uint8Array`)
}

const CLOSED_CODES = new Set(['LEVEL_DATABASE_NOT_OPEN', 'LEVEL_ITERATOR_NOT_OPEN', 'LEVEL_BATCH_NOT_OPEN'])

/** LevelDB failures as GemErrors: a closed database is CLOSED, corruption is CORRUPT_RECORD, the rest UNAVAILABLE. */
function levelError (err: unknown, op: string): GemError {
  if (err instanceof GemError) return err
  const code = (err as { code?: unknown })?.code
  const message = err instanceof Error ? err.message : String(err)
  if (typeof code === 'string' && CLOSED_CODES.has(code)) return new GemError('CLOSED', `LevelDB tier is closed (${op})`)
  if (code === 'LEVEL_CORRUPTION') return new GemError('CORRUPT_RECORD', `LevelDB ${op}: ${message}`, { levelCode: code })
  return new GemError('UNAVAILABLE', `LevelDB ${op} failed: ${message}`, { levelCode: code })
}
