// Durable replica state on any StorageTier: one metadata key per log entry plus one for the replica's metadata.
// Writes from every partition that arrive together go to the tier in one atomic write (one fsync), in order.
import type { StorageTier, MetaWrite } from '../store/tier.ts'
import type { Entry, ReplicaMeta, ReplicaWrite } from './messages.ts'
import type { RecoveredState } from './replica.ts'

const te = new TextEncoder()
const td = new TextDecoder()
const pad = (n: number): string => n.toString().padStart(15, '0')

interface Queued { stream: string, write: ReplicaWrite<Uint8Array>, done: (err?: unknown) => void }

export class TierReplicaStore {
  private readonly tier: StorageTier
  /** Entries on disk (or queued) per stream, from base to end, so truncation and compaction know which keys to delete. */
  private readonly ends = new Map<string, number>()
  private readonly bases = new Map<string, number>()
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
    let damaged = false
    for (const [key, value] of await this.tier.listMeta(prefix + 'e/')) {
      const offset = Number(key.slice(prefix.length + 2))
      if (offset < base) continue // compacted; its delete may not have reached the disk before a crash
      if (damaged || offset !== base + entries.length || value.byteLength < 4) { damaged = true; continue }
      const bytes = value.slice(4)
      if (!this.verify(bytes)) { damaged = true; continue }
      entries.push({ epoch: new DataView(value.buffer, value.byteOffset).getUint32(0), value: bytes })
    }
    this.ends.set(stream, Math.max(base + entries.length, meta.end))
    this.bases.set(stream, base)
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
    this.ends.delete(stream)
    this.bases.delete(stream)
    if (keys.length > 0) await this.tier.write({ chunks: [], meta: keys.map(([key]) => ({ key, value: null })) })
  }

  private async flush (): Promise<void> {
    this.writing = true
    // Let everything issued in this turn of the event loop join the batch.
    await Promise.resolve()
    while (this.queue.length > 0) {
      const batch = this.queue
      this.queue = []
      const meta: MetaWrite[] = []
      for (const q of batch) meta.push(...this.toWrites(q.stream, q.write))
      try {
        await this.tier.write({ chunks: [], meta })
        for (const q of batch) q.done()
      } catch (err) {
        for (const q of batch) q.done(err)
      }
    }
    this.writing = false
  }

  private toWrites (stream: string, w: ReplicaWrite<Uint8Array>): MetaWrite[] {
    const prefix = TierReplicaStore.prefix(stream)
    const out: MetaWrite[] = []
    let end = this.ends.get(stream) ?? 0
    const base = this.bases.get(stream) ?? 0
    if (w.compactTo !== undefined && w.compactTo > base) {
      for (let o = base; o < Math.min(w.compactTo, end); o++) out.push({ key: `${prefix}e/${pad(o)}`, value: null })
      this.bases.set(stream, w.compactTo)
    }
    if (w.truncateFrom !== undefined && w.truncateFrom < end) {
      for (let o = w.truncateFrom; o < end; o++) out.push({ key: `${prefix}e/${pad(o)}`, value: null })
      end = w.truncateFrom
    }
    for (const e of w.entries) {
      const value = new Uint8Array(4 + e.value.byteLength)
      new DataView(value.buffer).setUint32(0, e.epoch)
      value.set(e.value, 4)
      out.push({ key: `${prefix}e/${pad(end++)}`, value })
    }
    this.ends.set(stream, end)
    out.push({ key: prefix + 'meta', value: te.encode(JSON.stringify(w.meta)) })
    return out
  }
}
