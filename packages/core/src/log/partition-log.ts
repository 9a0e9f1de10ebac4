// One partition of a topic: dense offsets, its segment manifests and a bounded in-memory tail.
// It prepares writes and serves reads; the group committer decides when writes reach the tier.
import { GemError } from '../errors.ts'
import { decodeChunkRecords } from '../codec.ts'
import type { GemRecord } from '../message.ts'
import type { MetaWrite, StorageTier } from '../store/tier.ts'
import { streamId } from '../store/tier.ts'
import { decodeManifest, encodeManifest, segmentKey, segmentPrefix } from './segment.ts'
import type { SegmentManifest } from './segment.ts'

export interface TailSnapshot {
  next: number
  tail: SegmentManifest | undefined
}

interface HotChunk {
  base: number
  last: number
  /** Decoded records: kept only for the newest chunks (see DECODED_HOT_BYTES), or when there is no `data`. */
  records: GemRecord[] | undefined
  /** The chunk as encoded for the tier; older hot chunks keep only this and are decoded when read. */
  data: Uint8Array | undefined
  bytes: number
}

/**
 * Of the in-memory tail, this many bytes (the newest chunks) stay decoded; live tails and consumers that keep up
 * read there. Older hot chunks keep only their encoded bytes: a decoded record is several small heap objects that
 * would otherwise stay alive for seconds, so every young-generation GC would copy and promote each one of them
 * (the scavenge pause grows with the records retained since the last one), while one encoded buffer per chunk costs
 * the GC next to nothing.
 */
const DECODED_HOT_BYTES = 256 * 1024

/**
 * At most this many bytes of already-sequenced records may be visible before their tier write lands (and never more
 * than half the hot tail, so that the tail never evicts what the tier does not hold yet).
 */
const EARLY_MAX_BYTES = 4 * 1024 * 1024

export class PartitionLog {
  readonly topic: string
  readonly partition: number
  readonly stream: string
  /** Lowest offset still retained. */
  low = 0
  /** Next offset to be assigned (may run ahead of `high` while a commit is in flight). */
  next = 0
  /** Next offset after the last durable record: readers never see beyond it. */
  high = 0
  segments: SegmentManifest[] = []
  /** Bytes of sequenced records that readers already see (from the hot tail) whose tier write has not landed yet. */
  unwritten = 0
  /** Sequenced records queued the ordinary way (visible once written): records after them must wait their turn. */
  queuedLate = 0
  /** A tier write of records readers had already seen failed: the tier lacks them, so nothing more is appended. */
  broken: GemError | undefined

  private readonly tier: StorageTier
  private readonly hot: HotChunk[] = []
  private hotBytes = 0
  /** The newest `decodedCount` hot chunks hold decoded records, `decodedBytes` in all. */
  private decodedCount = 0
  private decodedBytes = 0
  private readonly hotLimit: number
  /** A segment also rolls once its first record is this old (0: only by size), so that a quiet partition's data is sealed too. */
  private readonly segmentMaxAgeMs: number

  constructor (tier: StorageTier, topic: string, partition: number, hotLimitBytes: number, segmentMaxAgeMs = 0) {
    this.tier = tier
    this.topic = topic
    this.partition = partition
    this.stream = streamId(topic, partition)
    this.hotLimit = hotLimitBytes
    this.segmentMaxAgeMs = segmentMaxAgeMs
  }

  /**
   * Whether `bytes` more of sequenced records starting at `high` may be shown now, before their write: only with a hot
   * tail to serve them from, nothing queued ahead of them, and within the bound above.
   */
  mayShowEarly (bytes: number): boolean {
    return this.hotLimit > 0 && this.broken === undefined && this.queuedLate === 0 && this.unwritten + bytes <= Math.min(EARLY_MAX_BYTES, this.hotLimit / 2)
  }

  /** Loads the segment manifests and checks the tail chunk against them (its checksums included). */
  async recover (): Promise<void> {
    const entries = await this.tier.listMeta(segmentPrefix(this.stream))
    this.segments = entries.map(([, v]) => decodeManifest(v))
    const last = this.segments.at(-1)
    this.low = this.segments[0]?.base ?? 0
    this.next = last === undefined ? 0 : last.last + 1
    this.high = this.next
    const tail = await this.tier.lastChunk(this.stream)
    if (tail !== undefined) {
      // Throws CORRUPT_RECORD on a damaged tail (or one cut between frames): never serve it silently.
      decodeChunkRecords(tail.data, tail.baseOffset, tail.lastOffset)
      if (tail.lastOffset + 1 !== this.next) {
        throw new Error(`partition ${this.stream}: tail chunk ends at ${tail.lastOffset} but manifests say ${this.next - 1}`)
      }
    }
    // Chunks below `low` may outlive their manifests if a retention pass was cut short.
    if (this.low > 0) await this.tier.deleteChunksBefore(this.stream, this.low)
  }

  /**
   * Moves an empty partition that never held a record to start at `offset`: a local copy of a partition held elsewhere
   * whose replicas no longer retain its beginning. Throws INTERNAL on a log that has or had records.
   */
  startAt (offset: number): void {
    if (this.next !== 0 || this.segments.length > 0) throw new GemError('INTERNAL', `${this.stream}: only an empty log can move its start (next is ${this.next})`)
    this.low = this.next = this.high = offset
  }

  /**
   * Updates the manifests for a chunk of `records` (already holding their offsets) and returns
   * the metadata writes that must go into the same tier batch as the chunk.
   */
  prepareAppend (records: GemRecord[], chunkBytes: number, segmentBytes: number): MetaWrite[] {
    const first = records[0]
    const lastRec = records[records.length - 1]
    let seg = this.segments.at(-1)
    const tooOld = seg !== undefined && this.segmentMaxAgeMs > 0 && first.timestamp - seg.firstTs >= this.segmentMaxAgeMs
    if (seg === undefined || (seg.bytes > 0 && (seg.bytes + chunkBytes > segmentBytes || tooOld))) {
      seg = { base: first.offset, last: first.offset - 1, bytes: 0, firstTs: first.timestamp, lastTs: first.timestamp }
      this.segments.push(seg)
    }
    seg.last = lastRec.offset
    seg.bytes += chunkBytes
    seg.lastTs = lastRec.timestamp
    this.next = lastRec.offset + 1
    return [{ key: segmentKey(this.stream, seg.base), value: encodeManifest(seg) }]
  }

  /**
   * What prepareAppend may change: `next`, the newest segment, and segments added after it.
   * Retention only ever drops older segments, so restoring this tail cannot undo a retention pass.
   */
  snapshot (): TailSnapshot {
    const tail = this.segments.at(-1)
    return { next: this.next, tail: tail === undefined ? undefined : { ...tail } }
  }

  /** Undoes prepareAppend after a failed tier write. */
  restore (snap: TailSnapshot): void {
    this.next = snap.next
    if (snap.tail === undefined) { this.segments = []; return }
    const base = snap.tail.base
    this.segments = this.segments.filter(s => s.base < base)
    this.segments.push(snap.tail)
  }

  /**
   * Marks a chunk durable: readers may see it; it joins the in-memory tail, bounded by bytes. `data`, the chunk as
   * encoded (`bytes` long), lets the tail drop the decoded records once they are no longer among the newest.
   */
  committed (records: GemRecord[], bytes: number, data?: Uint8Array): void {
    this.high = records[records.length - 1].offset + 1
    if (this.hotLimit <= 0) return
    this.hot.push({ base: records[0].offset, last: records[records.length - 1].offset, records, data, bytes })
    this.hotBytes += bytes
    this.decodedCount++
    this.decodedBytes += bytes
    while (this.hotBytes > this.hotLimit && this.hot.length > 1) this.dropOldestHot()
    while (this.decodedBytes > DECODED_HOT_BYTES && this.decodedCount > 1) {
      const c = this.hot[this.hot.length - this.decodedCount]
      this.decodedCount--
      this.decodedBytes -= c.bytes
      if (c.data !== undefined) c.records = undefined
    }
  }

  private dropOldestHot (): void {
    const c = this.hot.shift()!
    this.hotBytes -= c.bytes
    if (this.decodedCount > this.hot.length) {
      this.decodedCount--
      this.decodedBytes -= c.bytes
    }
  }

  /** Records from `from` served from memory, or undefined when `from` is older than the hot tail. */
  readHot (from: number, limit: number): GemRecord[] | undefined {
    if (from >= this.high) return []
    const hot = this.hot
    if (hot.length === 0 || from < hot[0].base) return undefined
    let lo = 0
    let hi = hot.length - 1
    while (lo < hi) { // last chunk whose base <= from
      const mid = (lo + hi + 1) >> 1
      if (hot[mid].base <= from) lo = mid; else hi = mid - 1
    }
    const out: GemRecord[] = []
    for (let i = lo; i < hot.length && out.length < limit; i++) {
      const c = hot[i]
      const records = c.records ?? decodeChunkRecords(c.data!, c.base, c.last)
      const start = i === lo ? from - c.base : 0
      for (let j = start; j < records.length && out.length < limit; j++) out.push(records[j])
    }
    return out
  }

  /** Up to `limit` records from offset `from` (clamped to `low`), from memory or the tier. */
  async read (from: number, limit: number, maxBytes = 4 * 1024 * 1024): Promise<GemRecord[]> {
    from = Math.max(from, this.low)
    if (limit <= 0 || from >= this.high) return []
    const hot = this.readHot(from, limit)
    if (hot !== undefined) return hot
    const out: GemRecord[] = []
    let cursor = from
    while (out.length < limit && cursor < this.high) {
      const chunks = await this.tier.readChunks(this.stream, cursor, maxBytes)
      if (chunks.length === 0) break
      for (const c of chunks) {
        // A read of a few records must not decode every chunk a large tier read returned.
        if (out.length >= limit) break
        for (const r of decodeChunkRecords(c.data, c.baseOffset, c.lastOffset)) {
          if (r.offset >= cursor && r.offset < this.high && out.length < limit) out.push(r)
        }
        cursor = c.lastOffset + 1
      }
      // A read that reaches the hot tail finishes from memory.
      const rest = this.readHot(cursor, limit - out.length)
      if (rest !== undefined) { out.push(...rest); break }
    }
    return out
  }

  /**
   * Every durable record from `from` in the chunks one tier read returns (about `maxBytes`),
   * for sequential consumers: keeping whole decoded chunks means no chunk is decoded twice.
   */
  async readBatch (from: number, maxBytes: number): Promise<GemRecord[]> {
    from = Math.max(from, this.low)
    if (from >= this.high) return []
    const hot = this.readHot(from, Infinity)
    if (hot !== undefined) return hot
    const out: GemRecord[] = []
    for (const c of await this.tier.readChunks(this.stream, from, maxBytes)) {
      for (const r of decodeChunkRecords(c.data, c.baseOffset, c.lastOffset)) if (r.offset >= from && r.offset < this.high) out.push(r)
    }
    return out
  }

  /** The first offset whose record timestamp is >= ts (or `next` if none). */
  async offsetForTimestamp (ts: number): Promise<number> {
    const seg = this.segments.find(s => s.last >= s.base && s.lastTs >= ts)
    // Records shown before their write (offsets from `next` on) are in no segment's stats yet: look at them too.
    let cursor = seg === undefined ? Math.max(this.next, this.low) : Math.max(seg.base, this.low)
    while (cursor < this.high) {
      const batch = await this.read(cursor, 1024)
      if (batch.length === 0) break
      for (const r of batch) if (r.timestamp >= ts) return r.offset
      cursor = batch[batch.length - 1].offset + 1
    }
    return this.high
  }

  /** Total bytes retained, as the manifests count them. */
  get bytes (): number {
    let n = 0
    for (const s of this.segments) n += s.bytes
    return n
  }

  /**
   * Segments that retention may drop now: all but the newest, oldest first, while they are older
   * than maxAgeMs or the partition is over maxBytes. The newest segment always stays.
   */
  expiredSegments (now: number, maxAgeMs: number, maxBytes: number): SegmentManifest[] {
    const out: SegmentManifest[] = []
    let total = this.bytes
    for (let i = 0; i < this.segments.length - 1; i++) {
      const s = this.segments[i]
      const tooOld = maxAgeMs > 0 && now - s.lastTs > maxAgeMs
      const tooBig = maxBytes > 0 && total > maxBytes
      if (!tooOld && !tooBig) break
      out.push(s)
      total -= s.bytes
    }
    return out
  }

  /** Forgets dropped segments in memory; the caller deletes their manifests and chunks. */
  dropSegments (count: number): void {
    this.segments.splice(0, count)
    this.low = this.segments[0]?.base ?? this.next
    while (this.hot.length > 0 && this.hot[0].last < this.low) this.dropOldestHot()
  }
}
