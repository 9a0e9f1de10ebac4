// ColdReadCache: the few most recent runs of chunks read from the cold (remote) tier, bounded by bytes, LRU.
// A sequential reader asks for a few records at a time; the cache lets one remote request serve many such reads.
import type { StoredChunk } from './tier.ts'

interface Run {
  stream: string
  /** Contiguous chunks in offset order, as the remote returned them. */
  chunks: StoredChunk[]
  bytes: number
}

export class ColdReadCache {
  private readonly maxBytes: number
  /** Insertion order is recency order: a hit moves its run to the end. */
  private readonly runs = new Map<string, Run>()
  private bytes = 0

  constructor (maxBytes: number) {
    this.maxBytes = maxBytes
  }

  /** The cached chunks from the one holding `offset` on, while below `maxBytes` (at least one), copied; undefined on a miss. */
  get (stream: string, offset: number, maxBytes = Number.POSITIVE_INFINITY): StoredChunk[] | undefined {
    for (const [key, run] of this.runs) {
      if (run.stream !== stream) continue
      const first = run.chunks[0]
      const last = run.chunks[run.chunks.length - 1]
      if (offset < first.baseOffset || offset > last.lastOffset) continue
      let i = 0
      while (run.chunks[i].lastOffset < offset) i++
      this.runs.delete(key)
      this.runs.set(key, run)
      // Readers get their own bytes, as from any tier.
      const out: StoredChunk[] = []
      let bytes = 0
      for (; i < run.chunks.length && (out.length === 0 || bytes < maxBytes); i++) {
        const c = run.chunks[i]
        out.push({ ...c, data: c.data.slice() })
        bytes += c.data.byteLength
      }
      return out
    }
    return undefined
  }

  put (stream: string, chunks: StoredChunk[]): void {
    if (this.maxBytes <= 0 || chunks.length === 0) return
    let bytes = 0
    for (const c of chunks) bytes += c.data.byteLength
    if (bytes > this.maxBytes) return
    const key = `${stream}\u0000${chunks[0].baseOffset}`
    this.drop(key)
    this.runs.set(key, { stream, chunks: chunks.map(c => ({ ...c, data: c.data.slice() })), bytes })
    this.bytes += bytes
    for (const [k] of this.runs) {
      if (this.bytes <= this.maxBytes) break
      this.drop(k)
    }
  }

  /** Forgets runs of `stream` that hold any offset below `before` (retention), or all of them. */
  dropStream (stream: string, before = Number.POSITIVE_INFINITY): void {
    for (const [key, run] of [...this.runs]) {
      if (run.stream === stream && run.chunks[0].baseOffset < before) this.drop(key)
    }
  }

  clear (): void {
    this.runs.clear()
    this.bytes = 0
  }

  get size (): number { return this.bytes }

  private drop (key: string): void {
    const run = this.runs.get(key)
    if (run === undefined) return
    this.runs.delete(key)
    this.bytes -= run.bytes
  }
}
