// Durable replica state on any StorageTier: each write's run of entries under one key, plus the replica's metadata.
// Writes from every partition that arrive together go to the tier in one atomic write (one fsync), in order.
import { GemError } from '../errors.ts'
import type { StorageTier, MetaWrite } from '../store/tier.ts'
import type { Entry, ReplicaMeta, ReplicaWrite } from './messages.ts'
import type { RecoveredState } from './replica.ts'

const te = new TextEncoder()
const td = new TextDecoder()
const pad = (n: number): string => n.toString().padStart(15, '0')

interface Queued { stream: string, write: ReplicaWrite<Uint8Array>, done: (err?: unknown) => void }

/** A run of consecutive entries stored under one key, `r/<stream>/c/<first offset>`. */
interface Run { first: number, count: number }

/*
 * Run value: u32 count, then per entry u32 epoch and u32 length, then the entries' bytes back to back.
 * One key per write instead of one per entry: LevelDB's cost is mostly per key, and replica writes are small and many.
 */
function encodeRun (entries: ReadonlyArray<Entry<Uint8Array>>): Uint8Array {
  let size = 4 + 8 * entries.length
  for (const e of entries) size += e.value.byteLength
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  view.setUint32(0, entries.length)
  let at = 4 + 8 * entries.length
  entries.forEach((e, i) => {
    view.setUint32(4 + 8 * i, e.epoch)
    view.setUint32(8 + 8 * i, e.value.byteLength)
    out.set(e.value, at)
    at += e.value.byteLength
  })
  return out
}

/** Decodes a run; undefined when its framing is broken (a damaged disk). */
function decodeRun (bytes: Uint8Array): Array<Entry<Uint8Array>> | undefined {
  if (bytes.byteLength < 4) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const count = view.getUint32(0)
  if (4 + 8 * count > bytes.byteLength) return undefined
  const out: Array<Entry<Uint8Array>> = []
  let at = 4 + 8 * count
  for (let i = 0; i < count; i++) {
    const epoch = view.getUint32(4 + 8 * i)
    const n = view.getUint32(8 + 8 * i)
    if (at + n > bytes.byteLength) return undefined
    out.push({ epoch, value: bytes.slice(at, at + n) })
    at += n
  }
  return at === bytes.byteLength ? out : undefined
}

export class TierReplicaStore {
  private readonly tier: StorageTier
  /** The runs on disk (or queued) per stream, in offset order, so truncation and compaction know what to delete. */
  private readonly runs = new Map<string, Run[]>()
  private queue: Queued[] = []
  private writing = false

  /** `verify` checks an entry's bytes (e.g. the record frame's CRC32C); false marks the log damaged from there. */
  private readonly verify: (value: Uint8Array) => boolean

  constructor (tier: StorageTier, verify: (value: Uint8Array) => boolean = () => true) {
    this.tier = tier
    this.verify = verify
  }

  static prefix (stream: string): string { return `r/${stream}/` }

  async recover (stream: string): Promise<RecoveredState<Uint8Array>> {
    const prefix = TierReplicaStore.prefix(stream)
    const metaBytes = await this.tier.getMeta(prefix + 'meta')
    const meta: ReplicaMeta = metaBytes === undefined
      ? { epoch: 0, votedFor: null, end: 0, repairing: false, commit: 0, groups: {} }
      : JSON.parse(td.decode(metaBytes)) as ReplicaMeta
    const entries: Array<Entry<Uint8Array>> = []
    const base = meta.base ?? 0
    const runs: Run[] = []
    let damaged = false
    for (const [key, value] of await this.tier.listMeta(prefix + 'c/')) {
      const first = Number(key.slice(prefix.length + 2))
      const run = decodeRun(value)
      if (run === undefined) { damaged = true; runs.push({ first, count: 0 }); continue }
      runs.push({ first, count: run.length })
      if (damaged) continue
      for (let i = 0; i < run.length; i++) {
        const offset = first + i
        if (offset < base) continue // compacted; its delete may not have reached the disk before a crash
        if (offset !== base + entries.length || !this.verify(run[i].value)) { damaged = true; break }
        entries.push(run[i])
      }
    }
    this.runs.set(stream, runs)
    return { meta, entries, damaged }
  }

  /** Queues `write`; resolves once it is durable. Writes are applied in the order they were queued. */
  write (stream: string, write: ReplicaWrite<Uint8Array>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ stream, write, done: err => err === undefined ? resolve() : reject(err) })
      if (!this.writing) void this.flush()
    })
  }

  /** Deletes every key of `stream` (its topic was deleted). */
  async drop (stream: string): Promise<void> {
    const keys = await this.tier.listMeta(TierReplicaStore.prefix(stream))
    this.runs.delete(stream)
    if (keys.length > 0) await this.tier.write({ chunks: [], meta: keys.map(([key]) => ({ key, value: null })) })
  }

  private async flush (): Promise<void> {
    this.writing = true
    // Let everything issued in this turn of the event loop join the batch.
    await Promise.resolve()
    while (this.queue.length > 0) {
      const batch = this.queue
      this.queue = []
      try {
        const meta: MetaWrite[] = []
        for (const q of batch) meta.push(...await this.toWrites(q.stream, q.write))
        await this.tier.write({ chunks: [], meta })
        for (const q of batch) q.done()
      } catch (err) {
        for (const q of batch) q.done(err)
      }
    }
    this.writing = false
  }

  private async toWrites (stream: string, w: ReplicaWrite<Uint8Array>): Promise<MetaWrite[]> {
    const prefix = TierReplicaStore.prefix(stream)
    const key = (first: number): string => `${prefix}c/${pad(first)}`
    const out: MetaWrite[] = []
    let runs = this.runs.get(stream) ?? []
    if (w.compactTo !== undefined) {
      // Runs wholly below the new base go; one that straddles it stays (recovery skips its compacted part).
      const keep = runs.filter(r => r.first + r.count > w.compactTo!)
      for (const r of runs) if (r.first + r.count <= w.compactTo) out.push({ key: key(r.first), value: null })
      runs = keep
    }
    if (w.truncateFrom !== undefined) {
      const t = w.truncateFrom
      const kept: Run[] = []
      for (const r of runs) {
        if (r.first >= t) { out.push({ key: key(r.first), value: null }); continue }
        if (r.first + r.count > t) {
          // The run straddles the cut: rewrite its part below it. Conflicts are rare, so reading it back is fine.
          const bytes = await this.tier.getMeta(key(r.first))
          const run = bytes === undefined ? undefined : decodeRun(bytes)
          if (run === undefined) throw new GemError('INTERNAL', `replica store ${stream}: run at ${r.first} is unreadable`)
          const head = run.slice(0, t - r.first)
          out.push({ key: key(r.first), value: encodeRun(head) })
          kept.push({ first: r.first, count: head.length })
          continue
        }
        kept.push(r)
      }
      runs = kept
    }
    if (w.entries.length > 0) {
      // The metadata's end is the replica's log end with these entries: they start just below it.
      const first = w.meta.end - w.entries.length
      out.push({ key: key(first), value: encodeRun(w.entries) })
      runs.push({ first, count: w.entries.length })
    }
    this.runs.set(stream, runs)
    out.push({ key: prefix + 'meta', value: te.encode(JSON.stringify(w.meta)) })
    return out
  }
}
