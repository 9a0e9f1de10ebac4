// A bounded history of load features per series (a node or a partition), one sample a second: the predictors' input.
// Fixed memory per series and a bounded number of series; series that stop reporting are forgotten.
import type { LoadFeatures } from './features.ts'

export interface LoadHistoryOptions {
  /** Samples kept per series (default 120: two minutes at one a second). */
  readonly capacity?: number
  /** Series kept at most; the one updated longest ago goes first (default 4,096). */
  readonly maxSeries?: number
  /** A series with no sample for this long is dropped (ms, default 60 s). */
  readonly staleMs?: number
}

interface Series { samples: LoadFeatures[], next: number, size: number, lastAt: number }

export class LoadHistory {
  private readonly capacity: number
  private readonly maxSeries: number
  private readonly staleMs: number
  private readonly series = new Map<string, Series>()

  constructor (options: LoadHistoryOptions = {}) {
    this.capacity = Math.max(1, Math.floor(options.capacity ?? 120))
    this.maxSeries = Math.max(1, Math.floor(options.maxSeries ?? 4096))
    this.staleMs = options.staleMs ?? 60_000
  }

  /** Appends one sample of `key` taken at `now` (ms). */
  add (key: string, sample: LoadFeatures, now: number): void {
    let s = this.series.get(key)
    if (s === undefined) {
      if (this.series.size >= this.maxSeries) this.evictOldest()
      s = { samples: new Array<LoadFeatures>(this.capacity), next: 0, size: 0, lastAt: now }
      this.series.set(key, s)
    }
    s.samples[s.next] = sample
    s.next = (s.next + 1) % this.capacity
    s.size = Math.min(this.capacity, s.size + 1)
    s.lastAt = now
  }

  /** The newest `n` loads of `key`, oldest first (fewer if the series is younger). */
  loads (key: string, n: number): number[] {
    const s = this.series.get(key)
    if (s === undefined) return []
    const count = Math.min(n, s.size)
    const out = new Array<number>(count)
    for (let i = 0; i < count; i++) out[i] = s.samples[(s.next - count + i + this.capacity) % this.capacity].load
    return out
  }

  /** The newest sample of `key`. */
  latest (key: string): LoadFeatures | undefined {
    const s = this.series.get(key)
    return s === undefined || s.size === 0 ? undefined : s.samples[(s.next - 1 + this.capacity) % this.capacity]
  }

  keys (): string[] { return [...this.series.keys()] }
  get size (): number { return this.series.size }

  /** Drops series not sampled within staleMs of `now`. */
  prune (now: number): void {
    for (const [k, s] of this.series) if (now - s.lastAt > this.staleMs) this.series.delete(k)
  }

  private evictOldest (): void {
    let oldestKey: string | undefined
    let oldestAt = Infinity
    for (const [k, s] of this.series) if (s.lastAt < oldestAt) { oldestAt = s.lastAt; oldestKey = k }
    if (oldestKey !== undefined) this.series.delete(oldestKey)
  }
}
