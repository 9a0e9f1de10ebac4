// GroupJournal: which offsets this browser has processed (acked) per group and partition, kept in the local tier.
// The server commits an ack after we send it, so after a reload it may redeliver what we already processed: the
// journal is written before each ack leaves and drops those redeliveries. It never decides what the group commits.
import type { StorageTier } from '@gem-mesh/core'

interface PartitionState {
  /** Every offset <= floor was processed. */
  floor: number
  /** Processed offsets above floor + 1 (acks out of order). */
  above: number[]
}

const te = new TextEncoder()
const td = new TextDecoder()
/** Out-of-order acks kept per partition; beyond it the oldest holes are given up (they can only cause a duplicate, never a gap). */
const MAX_ABOVE = 4_096

export class GroupJournal {
  private readonly tier: StorageTier
  private readonly key: string
  private readonly parts = new Map<number, PartitionState>()
  private writing: Promise<void> | undefined
  private dirty = false
  private waiters: Array<{ resolve: () => void, reject: (e: unknown) => void }> = []

  private constructor (tier: StorageTier, key: string) {
    this.tier = tier
    this.key = key
  }

  static async open (tier: StorageTier, topic: string, group: string): Promise<GroupJournal> {
    const j = new GroupJournal(tier, `journal/${topic}/${group}`)
    const raw = await tier.getMeta(j.key)
    if (raw !== undefined) {
      try {
        const saved = JSON.parse(td.decode(raw)) as Record<string, PartitionState>
        for (const [p, s] of Object.entries(saved)) {
          if (Number.isSafeInteger(s.floor) && Array.isArray(s.above)) j.parts.set(Number(p), { floor: s.floor, above: s.above.filter(Number.isSafeInteger) })
        }
      } catch {
        // A damaged journal costs duplicates after this reload, never a gap: start afresh.
      }
    }
    return j
  }

  /** Already processed (a redelivery of something acked before the reload, or before the server learnt of the ack). */
  processed (partition: number, offset: number): boolean {
    const s = this.parts.get(partition)
    return s !== undefined && (offset <= s.floor || s.above.includes(offset))
  }

  /** The first delivery of a partition since the journal knew it: everything before it is the group's business. */
  seen (partition: number, offset: number): void {
    if (!this.parts.has(partition)) this.parts.set(partition, { floor: offset - 1, above: [] })
  }

  /** Records `offset` as processed; resolves once that is in the tier (one write covers every mark made meanwhile). */
  mark (partition: number, offset: number): Promise<void> {
    this.seen(partition, offset)
    const s = this.parts.get(partition)!
    if (offset > s.floor && !s.above.includes(offset)) {
      s.above.push(offset)
      s.above.sort((a, b) => a - b)
      while (s.above.length > 0 && s.above[0] <= s.floor + 1) { s.floor = Math.max(s.floor, s.above.shift()!) }
      if (s.above.length > MAX_ABOVE) { s.floor = s.above[s.above.length - MAX_ABOVE - 1]; s.above = s.above.filter(o => o > s.floor) }
    }
    this.dirty = true
    const p = new Promise<void>((resolve, reject) => { this.waiters.push({ resolve, reject }) })
    this.kick()
    return p
  }

  /** The committed position per partition as this browser knows it (floor + 1 = the next offset to process). */
  positions (): Record<number, number> {
    const out: Record<number, number> = {}
    for (const [p, s] of this.parts) out[p] = s.floor + 1
    return out
  }

  /** Resolves once every mark made so far is in the tier. */
  async flushed (): Promise<void> {
    while (this.writing !== undefined) await this.writing.catch(() => {})
  }

  private kick (): void {
    if (this.writing !== undefined || !this.dirty) return
    this.dirty = false
    const waiters = this.waiters
    this.waiters = []
    const value = te.encode(JSON.stringify(Object.fromEntries(this.parts)))
    this.writing = this.tier.write({ chunks: [], meta: [{ key: this.key, value }] }).then(
      () => { for (const w of waiters) w.resolve() },
      err => { for (const w of waiters) w.reject(err) },
    ).finally(() => { this.writing = undefined; this.kick() })
  }
}
