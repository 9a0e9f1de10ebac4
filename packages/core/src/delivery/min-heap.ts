// A binary min-heap keyed by a number: the redelivery schedule orders pending
// redeliveries by due time with it. Generic and allocation-light.

export class MinHeap<T> {
  private readonly keys: number[] = []
  private readonly items: T[] = []

  get size (): number { return this.items.length }

  push (key: number, item: T): void {
    this.keys.push(key)
    this.items.push(item)
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
    if (n > 1) {
      this.keys[0] = lastKey
      this.items[0] = lastItem
      this.down(0)
    }
    return top
  }

  /** Removes every item matching `pred` (O(n)); used when a consumer or topic goes away. */
  removeWhere (pred: (item: T) => boolean): void {
    const kept: Array<[number, T]> = []
    for (let i = 0; i < this.items.length; i++) if (!pred(this.items[i])) kept.push([this.keys[i], this.items[i]])
    this.keys.length = 0
    this.items.length = 0
    for (const [k, it] of kept) this.push(k, it)
  }

  private up (i: number): void {
    const { keys, items } = this
    while (i > 0) {
      const p = (i - 1) >> 1
      if (keys[p] <= keys[i]) break
      swap(keys, i, p); swap(items, i, p)
      i = p
    }
  }

  private down (i: number): void {
    const { keys, items } = this
    const n = items.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < n && keys[l] < keys[m]) m = l
      if (r < n && keys[r] < keys[m]) m = r
      if (m === i) break
      swap(keys, i, m); swap(items, i, m)
      i = m
    }
  }
}

function swap<T> (a: T[], i: number, j: number): void {
  const t = a[i]; a[i] = a[j]; a[j] = t
}
