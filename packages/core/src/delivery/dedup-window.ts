// The idempotency window: producer-chosen message ids seen recently, mapped to where they were stored.
// Bounded by age and by entry count; it never touches storage (the broker rebuilds it on open).

export interface DedupEntry {
  partition: number
  offset: number
  at: number
}

export class DedupWindow {
  // A Map iterates in insertion order, and entries are inserted in time order,
  // so the oldest entry is always the first one: eviction is O(1) amortised.
  private readonly entries = new Map<string, DedupEntry>()
  private readonly windowMs: number
  private readonly maxEntries: number

  constructor (windowMs: number, maxEntries: number) {
    this.windowMs = windowMs
    this.maxEntries = maxEntries
  }

  get size (): number { return this.entries.size }

  get (topic: string, id: string, now: number): DedupEntry | undefined {
    const e = this.entries.get(key(topic, id))
    if (e === undefined || now - e.at > this.windowMs) return undefined
    return e
  }

  remember (topic: string, id: string, entry: DedupEntry): void {
    if (this.windowMs <= 0) return
    const k = key(topic, id)
    this.entries.delete(k)
    this.entries.set(k, entry)
    this.evict(entry.at)
  }

  forgetTopic (topic: string): void {
    const prefix = topic + '\u0000'
    for (const k of this.entries.keys()) if (k.startsWith(prefix)) this.entries.delete(k)
  }

  private evict (now: number): void {
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && now - e.at <= this.windowMs) break
      this.entries.delete(k)
    }
  }
}

function key (topic: string, id: string): string {
  return topic + '\u0000' + id
}
