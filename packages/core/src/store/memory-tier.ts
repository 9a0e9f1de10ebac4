// MemoryTier: the StorageTier held in process memory, per stream a sorted array of chunks and one map of metadata.
// For tests, demos and the hot tier; nothing survives the process. It copies bytes in and out, never shares them.
import { GemError } from '../errors.ts'
import type { StorageTier, StoredChunk, TierWriteBatch } from './tier.ts'
import { checkBatch } from './tier-input.ts'

export class MemoryTier implements StorageTier {
  readonly name = 'memory'
  /** Per stream, chunks sorted by baseOffset; chunks of one stream never overlap. */
  private readonly streams = new Map<string, StoredChunk[]>()
  private readonly meta = new Map<string, Uint8Array>()
  private closed = false

  async write (batch: TierWriteBatch): Promise<void> {
    this.open()
    // Validate everything before changing anything: a refused batch leaves no trace.
    checkBatch(batch)
    // Copy in: the caller may reuse its buffers as soon as write() returns.
    for (const c of batch.chunks) {
      this.insert({ stream: c.stream, baseOffset: c.baseOffset, lastOffset: c.lastOffset, data: c.data.slice() })
    }
    for (const m of batch.meta) {
      if (m.value === null) this.meta.delete(m.key)
      else this.meta.set(m.key, m.value.slice())
    }
  }

  async readChunks (stream: string, fromOffset: number, maxBytes: number): Promise<StoredChunk[]> {
    this.open()
    const chunks = this.streams.get(stream)
    if (chunks === undefined) return []
    let i = lastAtOrBefore(chunks, fromOffset)
    if (i < 0 || chunks[i].lastOffset < fromOffset) i++
    const out: StoredChunk[] = []
    let bytes = 0
    for (; i < chunks.length; i++) {
      out.push(copy(chunks[i]))
      bytes += chunks[i].data.byteLength
      if (bytes >= maxBytes) break
    }
    return out
  }

  async lastChunk (stream: string): Promise<StoredChunk | undefined> {
    this.open()
    const last = this.streams.get(stream)?.at(-1)
    return last === undefined ? undefined : copy(last)
  }

  async deleteChunks (stream: string, baseOffsets: number[]): Promise<void> {
    this.open()
    const chunks = this.streams.get(stream)
    if (chunks === undefined) return
    const gone = new Set(baseOffsets)
    this.streams.set(stream, chunks.filter(c => !gone.has(c.baseOffset)))
  }

  async deleteChunksBefore (stream: string, beforeOffset: number): Promise<void> {
    this.open()
    const chunks = this.streams.get(stream)
    if (chunks === undefined) return
    // lastOffset rises with the index (chunks do not overlap): count the prefix below beforeOffset.
    let lo = 0
    let hi = chunks.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (chunks[mid].lastOffset < beforeOffset) lo = mid + 1; else hi = mid
    }
    if (lo === chunks.length) this.streams.delete(stream)
    else if (lo > 0) chunks.splice(0, lo)
  }

  async deleteStream (stream: string): Promise<void> {
    this.open()
    this.streams.delete(stream)
  }

  async getMeta (key: string): Promise<Uint8Array | undefined> {
    this.open()
    return this.meta.get(key)?.slice()
  }

  async listMeta (prefix: string): Promise<Array<[string, Uint8Array]>> {
    this.open()
    const out: Array<[string, Uint8Array]> = []
    for (const [k, v] of this.meta) if (k.startsWith(prefix)) out.push([k, v.slice()])
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }

  async close (): Promise<void> {
    this.closed = true
  }

  private open (): void {
    if (this.closed) throw new GemError('CLOSED', 'memory tier is closed')
  }

  /** Appends in the common case; otherwise inserts in order, replacing a chunk with the same base. */
  private insert (chunk: StoredChunk): void {
    let chunks = this.streams.get(chunk.stream)
    if (chunks === undefined) {
      chunks = []
      this.streams.set(chunk.stream, chunks)
    }
    const last = chunks.at(-1)
    if (last === undefined || last.baseOffset < chunk.baseOffset) { chunks.push(chunk); return }
    const i = lastAtOrBefore(chunks, chunk.baseOffset)
    if (i >= 0 && chunks[i].baseOffset === chunk.baseOffset) chunks[i] = chunk
    else chunks.splice(i + 1, 0, chunk)
  }
}

/** Index of the last chunk whose baseOffset <= offset, or -1. */
function lastAtOrBefore (chunks: StoredChunk[], offset: number): number {
  let lo = 0
  let hi = chunks.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (chunks[mid].baseOffset <= offset) lo = mid + 1; else hi = mid - 1
  }
  return hi
}

function copy (c: StoredChunk): StoredChunk {
  // Readers get their own bytes: a caller that decrypts or scribbles in place cannot corrupt the store.
  return { stream: c.stream, baseOffset: c.baseOffset, lastOffset: c.lastOffset, data: c.data.slice() }
}
