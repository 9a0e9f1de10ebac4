// A binary min-heap keyed by a number, first in first out among equal keys: the redelivery schedule orders pending
// redeliveries by due time with it, and deliveries requeued together (same due time) keep the order they were given.

export class MinHeap<T> {
  private readonly keys: number[] = []
  private readonly items: T[] = []
  /** Insertion sequence per slot: the tie-break that makes equal keys pop in push order (a plain heap reverses them). */
  private readonly seqs: number[] = []
  private nextSeq = 0

  get size (): number { return this.items.length }

  push (key: number, item: T): void {
    this.keys.push(key)
    this.items.push(item)
    this.seqs.push(this.nextSeq++)
    this.up(this.items.length - 1)
  }

  peekKey (): number | undefined { return this.keys[0] }
  peek (): T | undefined { return this.items[0] }

  pop (): T | undefined {
    const n = this.items.length
    if (n === 0) return undefined
    const top = this.items[0]
    const lastKey = this.keys.pop()!
    const lastItem = this.items.pop()!
    const lastSeq = this.seqs.pop()!
    if (n > 1) {
      this.keys[0] = lastKey
      this.items[0] = lastItem
      this.seqs[0] = lastSeq
      this.down(0)
    }
    return top
  }

  /** Removes every item matching `pred` (O(n)); used when a consumer or topic goes away. */
  removeWhere (pred: (item: T) => boolean): void {
    const kept: Array<[number, number, T]> = []
    for (let i = 0; i < this.items.length; i++) if (!pred(this.items[i])) kept.push([this.keys[i], this.seqs[i], this.items[i]])
    // Re-pushed in their old order, so that equal keys keep popping first in, first out.
    kept.sort((a, b) => a[1] - b[1])
    this.keys.length = 0
    this.items.length = 0
    this.seqs.length = 0
    for (const [k, , it] of kept) this.push(k, it)
  }

  /** Whether slot a comes out before slot b. */
  private before (a: number, b: number): boolean {
    const { keys, seqs } = this
    return keys[a] < keys[b] || (keys[a] === keys[b] && seqs[a] < seqs[b])
  }

  private up (i: number): void {
    const { keys, items, seqs } = this
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.before(i, p)) break
      swap(keys, i, p); swap(items, i, p); swap(seqs, i, p)
      i = p
    }
  }

  private down (i: number): void {
    const { keys, items, seqs } = this
    const n = items.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < n && this.before(l, m)) m = l
      if (r < n && this.before(r, m)) m = r
      if (m === i) break
      swap(keys, i, m); swap(items, i, m); swap(seqs, i, m)
      i = m
    }
  }
}

function swap<T> (a: T[], i: number, j: number): void {
  const t = a[i]; a[i] = a[j]; a[j] = t
}
