// IndexedDbTier: the StorageTier of browser peers, one IndexedDB database (opened through idb-keyval) per tier.
// Chunks and metadata share one object store under array keys, so a batch is one transaction: all or nothing.
import { createStore, promisifyRequest } from 'idb-keyval'
import { GemError } from '@gem-mesh/core'
import type { StorageTier, StoredChunk, TierWriteBatch } from '@gem-mesh/core'

const STORE = 'gem'
/** Key space: [CHUNK, stream, baseOffset] and [META, key]; array keys order element by element, numbers numerically. */
const CHUNK = 0
const META = 1

interface ChunkRow { stream: string, baseOffset: number, lastOffset: number, data: Uint8Array }

export interface IndexedDbTierOptions {
  /**
   * 'strict' (default): a write resolves once the browser has flushed it to disk, so it survives a crash of the
   * browser, not only a reload. 'relaxed' is faster and survives reloads and tab closes, not power loss.
   */
  durability?: 'strict' | 'relaxed'
}

export class IndexedDbTier implements StorageTier {
  readonly name = 'indexeddb'
  readonly database: string
  private readonly db: IDBDatabase
  private readonly durability: 'strict' | 'relaxed'
  private closed = false

  private constructor (database: string, db: IDBDatabase, durability: 'strict' | 'relaxed') {
    this.database = database
    this.db = db
    this.durability = durability
  }

  /** Opens (creating on first use) the IndexedDB database `database`. */
  static async open (database: string, options: IndexedDbTierOptions = {}): Promise<IndexedDbTier> {
    if (typeof indexedDB === 'undefined') throw new GemError('UNAVAILABLE', 'IndexedDB is not available in this runtime')
    // idb-keyval creates the object store on first open; the transaction it hands over leads to the database itself,
    // which this tier drives directly for cursors, key ranges and the durability hint idb-keyval does not expose.
    const store = createStore(database, STORE)
    const db = await store('readonly', s => s.transaction.db)
    // Another tab deleting or upgrading the database: let it, and fail our calls with CLOSED rather than block it.
    const tier = new IndexedDbTier(database, db, options.durability ?? 'strict')
    db.onversionchange = () => { void tier.close() }
    return tier
  }

  /** Deletes the whole database (tests, "forget this device"). Close every tier on it first. */
  static async destroy (database: string): Promise<void> {
    await promisifyRequest(indexedDB.deleteDatabase(database))
  }

  async write (batch: TierWriteBatch): Promise<void> {
    this.open()
    for (const c of batch.chunks) checkChunk(c)
    for (const m of batch.meta) {
      if (typeof m.key !== 'string') throw new GemError('BAD_REQUEST', 'metadata key must be a string')
      if (m.value !== null && !(m.value instanceof Uint8Array)) throw new GemError('BAD_REQUEST', `metadata ${m.key}: value must be a Uint8Array or null`)
    }
    if (batch.chunks.length === 0 && batch.meta.length === 0) return
    const durability = batch.sync === false ? 'relaxed' : this.durability
    const tx = this.db.transaction(STORE, 'readwrite', { durability })
    const store = tx.objectStore(STORE)
    // Structured clone copies the bytes at put(): the caller may reuse its buffers at once.
    for (const c of batch.chunks) {
      const row: ChunkRow = { stream: c.stream, baseOffset: c.baseOffset, lastOffset: c.lastOffset, data: plain(c.data) }
      store.put(row, [CHUNK, c.stream, c.baseOffset])
    }
    for (const m of batch.meta) {
      if (m.value === null) store.delete([META, m.key])
      else store.put(plain(m.value), [META, m.key])
    }
    await done(tx)
  }

  async readChunks (stream: string, fromOffset: number, maxBytes: number): Promise<StoredChunk[]> {
    this.open()
    const store = this.db.transaction(STORE, 'readonly').objectStore(STORE)
    // The chunk holding fromOffset is the last one starting at or before it, if it reaches that far.
    const before = await firstValue<ChunkRow>(store.openCursor(IDBKeyRange.bound([CHUNK, stream, -Infinity], [CHUNK, stream, fromOffset]), 'prev'))
    const range = before !== undefined && before.lastOffset >= fromOffset
      ? IDBKeyRange.bound([CHUNK, stream, before.baseOffset], [CHUNK, stream, Infinity])
      : IDBKeyRange.bound([CHUNK, stream, fromOffset], [CHUNK, stream, Infinity], true)
    const out: StoredChunk[] = []
    let bytes = 0
    await eachCursor<ChunkRow>(store.openCursor(range), row => {
      out.push(toChunk(row))
      bytes += row.data.byteLength
      return bytes < maxBytes
    })
    return out
  }

  async lastChunk (stream: string): Promise<StoredChunk | undefined> {
    this.open()
    const store = this.db.transaction(STORE, 'readonly').objectStore(STORE)
    const row = await firstValue<ChunkRow>(store.openCursor(streamRange(stream), 'prev'))
    return row === undefined ? undefined : toChunk(row)
  }

  async deleteChunksBefore (stream: string, beforeOffset: number): Promise<void> {
    this.open()
    const tx = this.db.transaction(STORE, 'readwrite', { durability: this.durability })
    const store = tx.objectStore(STORE)
    // Chunks of a stream never overlap, so lastOffset rises with the key: stop at the first one to keep.
    await eachCursor<ChunkRow>(store.openCursor(streamRange(stream)), (row, cursor) => {
      if (row.lastOffset >= beforeOffset) return false
      cursor.delete()
      return true
    })
    await done(tx)
  }

  async deleteStream (stream: string): Promise<void> {
    this.open()
    const tx = this.db.transaction(STORE, 'readwrite', { durability: this.durability })
    tx.objectStore(STORE).delete(streamRange(stream))
    await done(tx)
  }

  async getMeta (key: string): Promise<Uint8Array | undefined> {
    this.open()
    const store = this.db.transaction(STORE, 'readonly').objectStore(STORE)
    const v = await promisifyRequest(store.get([META, key])) as Uint8Array | undefined
    return v === undefined ? undefined : plain(v)
  }

  async listMeta (prefix: string): Promise<Array<[string, Uint8Array]>> {
    this.open()
    const store = this.db.transaction(STORE, 'readonly').objectStore(STORE)
    const out: Array<[string, Uint8Array]> = []
    // From the prefix up to the end of the metadata key space, while keys still start with it (string keys sort by
    // UTF-16 code units, like JavaScript's own comparison).
    await eachCursor<Uint8Array>(store.openCursor(IDBKeyRange.bound([META, prefix], [META + 1], false, true)), (value, cursor) => {
      const key = (cursor.key as [number, string])[1]
      if (!key.startsWith(prefix)) return false
      out.push([key, plain(value)])
      return true
    })
    return out
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }

  private open (): void {
    if (this.closed) throw new GemError('CLOSED', `indexeddb tier ${this.database} is closed`)
  }
}

function streamRange (stream: string): IDBKeyRange {
  return IDBKeyRange.bound([CHUNK, stream, -Infinity], [CHUNK, stream, Infinity])
}

function toChunk (row: ChunkRow): StoredChunk {
  return { stream: row.stream, baseOffset: row.baseOffset, lastOffset: row.lastOffset, data: plain(row.data) }
}

/** A plain Uint8Array over exactly its bytes (a subclass or a view into a larger buffer would clone the whole buffer). */
function plain (v: Uint8Array): Uint8Array {
  return v.constructor === Uint8Array && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? v : new Uint8Array(v)
}

function done (tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    const fail = (): void => reject(new GemError('UNAVAILABLE', `indexeddb write failed: ${tx.error?.message ?? 'aborted'}`))
    tx.onabort = fail
    tx.onerror = fail
  })
}

function firstValue<T> (req: IDBRequest<IDBCursorWithValue | null>): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result === null ? undefined : req.result.value as T)
    req.onerror = () => reject(new GemError('UNAVAILABLE', `indexeddb read failed: ${req.error?.message ?? 'unknown'}`))
  })
}

/** Walks a cursor while `visit` returns true. */
function eachCursor<T> (req: IDBRequest<IDBCursorWithValue | null>, visit: (value: T, cursor: IDBCursorWithValue) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => {
      const cursor = req.result
      if (cursor === null) { resolve(); return }
      if (visit(cursor.value as T, cursor)) cursor.continue(); else resolve()
    }
    req.onerror = () => reject(new GemError('UNAVAILABLE', `indexeddb cursor failed: ${req.error?.message ?? 'unknown'}`))
  })
}

function checkChunk (c: StoredChunk): void {
  if (typeof c.stream !== 'string' || c.stream === '') throw new GemError('BAD_REQUEST', 'chunk stream must be a non-empty string')
  if (!Number.isSafeInteger(c.baseOffset) || !Number.isSafeInteger(c.lastOffset) || c.baseOffset < 0 || c.lastOffset < c.baseOffset) {
    throw new GemError('BAD_REQUEST', `chunk ${c.stream}: offsets ${c.baseOffset}..${c.lastOffset} are not a range of offsets in [0, 2^53)`)
  }
  if (!(c.data instanceof Uint8Array)) throw new GemError('BAD_REQUEST', `chunk ${c.stream}@${c.baseOffset}: data must be a Uint8Array`)
}
