// Group commit: every append and metadata change waiting at one moment goes to the tier in ONE
// atomic, durable write (one fsync). Exactly one write is in flight; the next batch forms meanwhile.
import { concatFrames, encodeRecords } from '../codec.ts'
import type { Clock } from '../clock.ts'
import { GemError } from '../errors.ts'
import type { GemRecord } from '../message.ts'
import type { MetaWrite, StorageTier, StoredChunk } from '../store/tier.ts'
import type { PartitionLog } from './partition-log.ts'

export interface PendingAppend {
  /** Offset and timestamp are filled in when the batch forms, unless `sequenced`. */
  record: GemRecord
  /** A partition leader already gave the record its offset and timestamp (replication's apply step). */
  sequenced?: boolean
  /** The record already encoded (a replicated entry): used as it is when every record of the batch has one. */
  frame?: Uint8Array
  /**
   * Already visible (sequenced, shown from the hot tail before this write; see Broker.appendSequenced): the write only
   * puts it on disk. Early items of a log always come before its other items in a batch.
   */
  early?: boolean
  resolve(record: GemRecord): void
  reject(err: unknown): void
}

/** A source of metadata (e.g. a consumer group's state) that wants to ride on the next write. */
export interface MetaSource {
  /** Called when a batch forms; returns the writes to include now. */
  collect(): MetaWrite[]
  /** Called once the write that carried collect()'s output settled. */
  settled(err?: unknown): void
}

export interface CommitListener {
  /** A chunk of `log` became durable. */
  committed(log: PartitionLog, records: GemRecord[]): void
  /** A write of records readers had already seen failed: `log` is broken (see PartitionLog.broken). */
  failed?(log: PartitionLog, err: GemError): void
  batch?(info: { records: number, bytes: number, durationMs: number }): void
}

interface OneOffMeta {
  writes: MetaWrite[]
  resolve(): void
  reject(err: unknown): void
}

/** Bounds one tier write so that a huge backlog does not become one enormous fsync. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024

export class GroupCommitter {
  private readonly tier: StorageTier
  private readonly clock: Clock
  private readonly listener: CommitListener
  private readonly segmentBytes: number
  private readonly pending = new Map<PartitionLog, PendingAppend[]>()
  private readonly sources = new Set<MetaSource>()
  private oneOff: OneOffMeta[] = []
  private writing = false
  private scheduled = false
  private idleWaiters: Array<() => void> = []

  constructor (tier: StorageTier, clock: Clock, segmentBytes: number, listener: CommitListener) {
    this.tier = tier
    this.clock = clock
    this.segmentBytes = segmentBytes
    this.listener = listener
  }

  append (log: PartitionLog, item: PendingAppend): void {
    let q = this.pending.get(log)
    if (q === undefined) { q = []; this.pending.set(log, q) }
    q.push(item)
    this.schedule()
  }

  /** `source.collect()` is called when the next batch forms. */
  markDirty (source: MetaSource): void {
    this.sources.add(source)
    this.schedule()
  }

  /** Writes metadata on its own (topic create/delete), durably, in the next batch. */
  writeMeta (writes: MetaWrite[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.oneOff.push({ writes, resolve, reject })
      this.schedule()
    })
  }

  /** Drops the pending appends of a log (its topic is being deleted). */
  discard (log: PartitionLog, err: unknown): void {
    const q = this.pending.get(log)
    if (q === undefined) return
    this.pending.delete(log)
    for (const p of q) p.reject(err)
  }

  /** Resolves once nothing is pending or being written. */
  idle (): Promise<void> {
    if (!this.writing && !this.hasWork()) return Promise.resolve()
    return new Promise(resolve => this.idleWaiters.push(resolve))
  }

  private hasWork (): boolean {
    return this.pending.size > 0 || this.sources.size > 0 || this.oneOff.length > 0
  }

  private schedule (): void {
    if (this.writing || this.scheduled) return
    this.scheduled = true
    // A microtask lets every publish issued in the same tick join this batch.
    queueMicrotask(() => { this.scheduled = false; void this.flush() })
  }

  private async flush (): Promise<void> {
    if (this.writing) return
    this.writing = true
    try {
      while (this.hasWork()) await this.writeOneBatch()
    } finally {
      this.writing = false
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  private async writeOneBatch (): Promise<void> {
    const now = this.clock.now()
    const chunks: StoredChunk[] = []
    const meta: MetaWrite[] = []
    const appended: Array<{ log: PartitionLog, items: PendingAppend[], records: GemRecord[], data: Uint8Array, snap: ReturnType<PartitionLog['snapshot']> }> = []
    let batchBytes = 0

    for (const [log, queue] of this.pending) {
      if (batchBytes >= MAX_BATCH_BYTES) break
      let take = queue.length
      let est = 0
      for (let i = 0; i < queue.length; i++) {
        est += queue[i].record.payload.byteLength + 128
        if (batchBytes + est > MAX_BATCH_BYTES && i > 0) { take = i; break }
      }
      const whole = take === queue.length
      const items = whole ? queue : queue.splice(0, take)
      if (whole) this.pending.delete(log)
      const snap = log.snapshot()
      const records = new Array<GemRecord>(items.length)
      let offset = log.next
      for (let i = 0; i < items.length; i++) {
        const r = items[i].record
        if (items[i].sequenced !== true) { r.offset = offset; r.timestamp = now }
        offset++
        records[i] = r
      }
      let data: Uint8Array
      try {
        const gap = records.find((r, i) => r.offset !== log.next + i)
        if (gap !== undefined) throw new GemError('INTERNAL', `${log.stream}: sequenced record at offset ${gap.offset} does not follow the log`)
        data = items.every(it => it.frame !== undefined) ? concatFrames(items.map(it => it.frame!)) : encodeRecords(records)
      } catch (err) {
        for (const it of items) it.reject(err)
        continue
      }
      meta.push(...log.prepareAppend(records, data.byteLength, this.segmentBytes))
      chunks.push({ stream: log.stream, baseOffset: records[0].offset, lastOffset: offset - 1, data })
      appended.push({ log, items, records, data, snap })
      batchBytes += data.byteLength
    }

    const sources = [...this.sources]
    this.sources.clear()
    for (const s of sources) meta.push(...s.collect())
    const oneOff = this.oneOff
    this.oneOff = []
    for (const o of oneOff) meta.push(...o.writes)

    if (chunks.length === 0 && meta.length === 0) {
      for (const s of sources) s.settled()
      for (const o of oneOff) o.resolve()
      return
    }

    // Records a partition leader sequenced are already durable in a majority's replica logs and are re-applied from
    // there after a crash; a batch of nothing else skips the fsync.
    const sync = sources.length > 0 || oneOff.length > 0 || appended.some(a => a.items.some(it => it.sequenced !== true))
    const started = performance.now()
    try {
      await this.tier.write({ chunks, meta, sync })
    } catch (err) {
      const e = GemError.is(err) ? err : new GemError('UNAVAILABLE', `storage write failed: ${(err as Error)?.message ?? err}`)
      for (const a of appended) {
        a.log.restore(a.snap)
        for (const it of a.items) it.reject(e)
        if (a.items[0].early === true) {
          // Readers saw these records and the tier does not hold them: appending after them would leave a hole on disk.
          a.log.broken = new GemError('UNAVAILABLE', `${a.log.stream}: a write of records already served failed (${e.message}); restart the node to re-apply them`)
          this.listener.failed?.(a.log, a.log.broken)
        }
      }
      for (const s of sources) s.settled(e)
      for (const o of oneOff) o.reject(e)
      return
    }
    const durationMs = performance.now() - started

    let records = 0
    const shown: Array<{ log: PartitionLog, records: GemRecord[] }> = []
    for (const a of appended) {
      records += a.records.length
      // Items [0, seen) were shown before this write (early ones come first); the rest become visible now.
      let seen = 0
      while (seen < a.items.length && a.items[seen].early === true) seen++
      if (seen > 0) {
        let bytes = 0
        for (let i = 0; i < seen; i++) bytes += a.items[i].frame?.byteLength ?? 0
        a.log.unwritten -= bytes
      }
      if (seen < a.items.length) {
        const fresh = seen === 0 ? a.records : a.records.slice(seen)
        const bytes = seen === 0 ? a.data.byteLength : fresh.reduce((n, r, i) => n + (a.items[seen + i].frame?.byteLength ?? r.payload.byteLength + 64), 0)
        a.log.committed(fresh, bytes, seen === 0 ? a.data : undefined)
        shown.push({ log: a.log, records: fresh })
      }
      for (let i = 0; i < a.items.length; i++) a.items[i].resolve(a.records[i])
    }
    for (const s of sources) s.settled()
    for (const o of oneOff) o.resolve()
    for (const a of shown) this.listener.committed(a.log, a.records)
    this.listener.batch?.({ records, bytes: batchBytes, durationMs })
  }
}
