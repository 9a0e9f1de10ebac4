// The simulator's disk for one replica: writes become durable only after a delay, a crash loses the ones
// still pending, and the fault injector can flip bytes in a stored entry or cut the log's tail.
import { crc32c } from '../crc32c.ts'
import type { Entry, ReplicaMeta, ReplicaWrite } from '../replication/messages.ts'
import type { RecoveredState } from '../replication/replica.ts'
import type { Prng } from './prng.ts'
import type { SimScheduler } from './scheduler.ts'

interface StoredEntry { epoch: number, json: string, crc: number }

const te = new TextEncoder()
const checksum = (epoch: number, json: string): number => crc32c(te.encode(`${epoch}|${json}`))

export class SimDisk<T> {
  /** Entries from `base` on (below it the replica compacted its log). */
  private entries: StoredEntry[] = []
  private base = 0
  private meta: ReplicaMeta = { epoch: 0, votedFor: null, end: 0, repairing: false, commit: 0, groups: {} }
  /** Writes issued but not yet durable, in order; `generation` invalidates them on a crash. */
  private pending = 0
  private generation = 0
  private busyUntil = 0
  writes = 0

  private readonly sched: SimScheduler
  private readonly rng: Prng
  private readonly latency: { min: number, max: number }

  constructor (sched: SimScheduler, rng: Prng, latency = { min: 0, max: 2 }) { this.sched = sched; this.rng = rng; this.latency = latency }

  /** Applies `w` after the disk's latency, in issue order, then calls `done` (unless the node crashed first). */
  write (w: ReplicaWrite<T>, done: () => void): void {
    const gen = this.generation
    // The caller may keep mutating what it handed us; the disk keeps its own copy as bytes.
    const stored = w.entries.map(e => { const json = JSON.stringify(e.value); return { epoch: e.epoch, json, crc: checksum(e.epoch, json) } })
    // Metadata copied field by field (structuredClone was half the simulator's time); the membership in it is never
    // mutated by the replica (it is replaced), so it may be shared.
    const meta = { ...w.meta, groups: { ...w.meta.groups } }
    const truncateFrom = w.truncateFrom
    const compactTo = w.compactTo
    this.pending++
    // Mostly quick, sometimes stalled (a flush, another process's I/O): a crash then catches writes in flight.
    const delay = this.rng.chance(0.1) ? this.rng.int(this.latency.max, this.latency.max * 15) : this.rng.int(this.latency.min, this.latency.max)
    this.busyUntil = Math.max(this.busyUntil, this.sched.now) + delay
    this.sched.at(this.busyUntil, () => {
      if (gen !== this.generation) return
      this.pending--
      if (compactTo !== undefined && compactTo > this.base) { this.entries.splice(0, compactTo - this.base); this.base = compactTo }
      if (truncateFrom !== undefined) this.entries.length = Math.max(0, Math.min(this.entries.length, truncateFrom - this.base))
      this.entries.push(...stored)
      this.meta = meta
      this.writes++
      done()
    })
  }

  /** The process died: writes not yet durable are lost. */
  crash (): void { this.generation++; this.pending = 0; this.busyUntil = 0 }

  /** Flips a byte of the entry at `offset` (a bit rot the checksum must catch). */
  corrupt (offset: number): boolean {
    const e = this.entries[offset]
    if (e === undefined) return false
    const i = this.rng.int(0, e.json.length - 1)
    const flipped = String.fromCharCode(e.json.charCodeAt(i) ^ (1 << this.rng.int(0, 6)))
    this.entries[offset] = { ...e, json: e.json.slice(0, i) + flipped + e.json.slice(i + 1) }
    return true
  }

  /** Loses the newest `count` durable entries (a torn or lost tail). */
  truncateTail (count: number): void { this.entries.length = Math.max(0, this.entries.length - count) }

  /** Entries held (from the base). */
  get length (): number { return this.entries.length }

  /** What a restarting replica reads back: entries up to the first that fails its checksum. */
  recover (): RecoveredState<T> {
    const entries: Array<Entry<T>> = []
    let damaged = false
    for (const e of this.entries) {
      if (checksum(e.epoch, e.json) !== e.crc) { damaged = true; break }
      entries.push({ epoch: e.epoch, value: JSON.parse(e.json) as T })
    }
    if (damaged) this.entries.length = entries.length
    return { meta: structuredClone(this.meta), entries, damaged }
  }
}
