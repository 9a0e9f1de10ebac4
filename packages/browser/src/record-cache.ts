// RecordCache: the partitions this browser consumes, kept in its local tier (IndexedDB) as they arrive, so reads keep
// working offline and after a reload. A cache, not a log: gaps are allowed, overlaps never written.
import { decodeChunkRecords, encodeRecords, streamId } from '@gem-mesh/core'
import type { GemRecord, ReadResult, StorageTier, StoredChunk } from '@gem-mesh/core'

export class RecordCache {
  private readonly tier: StorageTier
  /** Highest offset stored per stream (loaded from the tier on first use). */
  private readonly high = new Map<string, number>()
  private readonly loading = new Map<string, Promise<number>>()
  private chain: Promise<void> = Promise.resolve()
  private readonly onError: (err: unknown) => void

  constructor (tier: StorageTier, onError: (err: unknown) => void = () => {}) {
    this.tier = tier
    this.onError = onError
  }

  /** Stores the records it does not hold yet (in the background, in arrival order). */
  add (records: readonly GemRecord[]): void {
    if (records.length === 0) return
    const batch = [...records]
    this.chain = this.chain.then(() => this.store(batch)).catch(err => { this.onError(err) })
  }

  /** Resolves once every add() so far is in the tier. */
  flushed (): Promise<void> { return this.chain }

  async read (topic: string, partition: number, from: number, limit: number): Promise<ReadResult> {
    await this.chain
    const chunks = await this.tier.readChunks(streamId(topic, partition), from, 1 << 20)
    const messages: GemRecord[] = []
    for (const c of chunks) {
      for (const r of decodeChunkRecords(c.data, c.baseOffset, c.lastOffset)) {
        if (r.offset >= from && messages.length < limit) messages.push(r)
      }
    }
    return { messages, next: messages.length > 0 ? messages[messages.length - 1].offset + 1 : from }
  }

  private async highOf (stream: string): Promise<number> {
    const known = this.high.get(stream)
    if (known !== undefined) return known
    let p = this.loading.get(stream)
    if (p === undefined) {
      p = this.tier.lastChunk(stream).then(c => c?.lastOffset ?? -1)
      this.loading.set(stream, p)
    }
    const h = await p
    if (!this.high.has(stream)) this.high.set(stream, h)
    return this.high.get(stream)!
  }

  private async store (records: GemRecord[]): Promise<void> {
    // Per stream, runs of consecutive new offsets become one chunk each.
    const byStream = new Map<string, GemRecord[]>()
    for (const r of records) {
      const s = streamId(r.topic, r.partition)
      const list = byStream.get(s) ?? []
      list.push(r)
      byStream.set(s, list)
    }
    const chunks: StoredChunk[] = []
    for (const [stream, list] of byStream) {
      let high = await this.highOf(stream)
      const fresh = list.filter(r => r.offset > high).sort((a, b) => a.offset - b.offset)
      let run: GemRecord[] = []
      const close = (): void => {
        if (run.length === 0) return
        chunks.push({ stream, baseOffset: run[0].offset, lastOffset: run[run.length - 1].offset, data: encodeRecords(run) })
        run = []
      }
      for (const r of fresh) {
        if (r.offset <= high) continue
        if (run.length > 0 && r.offset !== run[run.length - 1].offset + 1) close()
        run.push(r)
        high = r.offset
      }
      close()
      this.high.set(stream, high)
    }
    // Losing the cache loses nothing the mesh does not hold: no fsync.
    if (chunks.length > 0) await this.tier.write({ chunks, meta: [], sync: false })
  }
}
