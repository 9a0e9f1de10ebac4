// The idempotency window: producer-chosen message ids seen recently, mapped to where they were stored.
// Bounded by age and by entry count; it never touches storage (the broker rebuilds it on open).
//
// Laid out for the garbage collector: on the mesh every publish carries an id, so the window holds up to
// `maxEntries` of them for the whole window. Per entry the heap keeps only the id string and one Map slot (id ->
// a sequence number, a small integer); partition, offset and time sit in typed arrays (off the scanned heap) in a
// ring indexed by that sequence number, which also gives the insertion order that eviction walks.

export interface DedupEntry {
  partition: number
  offset: number
  at: number
}

/** Sequence numbers wrap here so they stay small integers (no heap number per entry); the ring divides it. */
const SEQ_MASK = 2 ** 30 - 1
const MIN_CAPACITY = 1024

export class DedupWindow {
  private readonly windowMs: number
  private readonly maxEntries: number
  /** Per topic: id -> sequence number of its slot. */
  private readonly byTopic = new Map<string, Map<string, number>>()
  // The ring, a power of two long: slot of sequence number s is s & (capacity - 1). An undefined id marks a
  // slot whose entry was replaced or forgotten; eviction skips it.
  private capacity = 0
  private ids: Array<string | undefined> = []
  private maps: Array<Map<string, number> | undefined> = []
  private partitions = new Int32Array(0)
  private offsets = new Float64Array(0)
  private ats = new Float64Array(0)
  /** Sequence number of the oldest slot, and of the next one (both wrap at SEQ_MASK). */
  private head = 0
  private tail = 0
  private live = 0

  constructor (windowMs: number, maxEntries: number) {
    this.windowMs = windowMs
    this.maxEntries = maxEntries
  }

  get size (): number { return this.live }

  get (topic: string, id: string, now: number): DedupEntry | undefined {
    const seq = this.byTopic.get(topic)?.get(id)
    if (seq === undefined) return undefined
    const i = seq & (this.capacity - 1)
    if (now - this.ats[i] > this.windowMs) return undefined
    return { partition: this.partitions[i], offset: this.offsets[i], at: this.ats[i] }
  }

  remember (topic: string, id: string, entry: DedupEntry): void {
    if (this.windowMs <= 0) return
    let m = this.byTopic.get(topic)
    if (m === undefined) { m = new Map(); this.byTopic.set(topic, m) }
    const old = m.get(id)
    if (old !== undefined) this.kill(old)
    if (this.slotsUsed() >= this.capacity) this.grow()
    const seq = this.tail
    const i = seq & (this.capacity - 1)
    this.ids[i] = id
    this.maps[i] = m
    this.partitions[i] = entry.partition
    this.offsets[i] = entry.offset
    this.ats[i] = entry.at
    this.tail = (seq + 1) & SEQ_MASK
    m.set(id, seq)
    this.live++
    this.evict(entry.at)
  }

  forgetTopic (topic: string): void {
    const m = this.byTopic.get(topic)
    if (m === undefined) return
    this.byTopic.delete(topic)
    for (const seq of m.values()) this.kill(seq)
  }

  private slotsUsed (): number { return (this.tail - this.head) & SEQ_MASK }

  /** Marks the slot of `seq` dead; its Map entry is the caller's to drop or overwrite. */
  private kill (seq: number): void {
    const i = seq & (this.capacity - 1)
    this.ids[i] = undefined
    this.maps[i] = undefined
    this.live--
  }

  private grow (): void {
    const cap = Math.max(MIN_CAPACITY, this.capacity * 2)
    const ids = new Array<string | undefined>(cap)
    const maps = new Array<Map<string, number> | undefined>(cap)
    const partitions = new Int32Array(cap)
    const offsets = new Float64Array(cap)
    const ats = new Float64Array(cap)
    for (let s = this.head, n = this.slotsUsed(); n > 0; s = (s + 1) & SEQ_MASK, n--) {
      const from = s & (this.capacity - 1)
      const to = s & (cap - 1)
      ids[to] = this.ids[from]
      maps[to] = this.maps[from]
      partitions[to] = this.partitions[from]
      offsets[to] = this.offsets[from]
      ats[to] = this.ats[from]
    }
    this.capacity = cap
    this.ids = ids
    this.maps = maps
    this.partitions = partitions
    this.offsets = offsets
    this.ats = ats
  }

  /** Drops from the oldest end while the window is over its size or the oldest entry is past its age. */
  private evict (now: number): void {
    const mask = this.capacity - 1
    while (this.head !== this.tail) {
      const i = this.head & mask
      const id = this.ids[i]
      if (id !== undefined) {
        if (this.live <= this.maxEntries && now - this.ats[i] <= this.windowMs) break
        this.maps[i]!.delete(id)
        this.ids[i] = undefined
        this.maps[i] = undefined
        this.live--
      }
      this.head = (this.head + 1) & SEQ_MASK
    }
  }
}
