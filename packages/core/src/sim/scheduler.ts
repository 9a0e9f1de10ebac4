// Virtual time for the simulator: a queue of callbacks ordered by due time, run one at a time.
// Time only moves when the next event runs, so a simulated minute costs what its events cost.
import { MinHeap } from '../delivery/min-heap.ts'

export class SimScheduler {
  now = 0
  private seq = 0
  // Keyed by time, then insertion order, so events due at the same moment run in the order they were set.
  private readonly queue = new MinHeap<() => void>()
  events = 0

  at (time: number, fn: () => void): void {
    this.queue.push(Math.max(time, this.now) * 2 ** 20 + (this.seq++ % 2 ** 20), fn)
  }

  after (ms: number, fn: () => void): void { this.at(this.now + ms, fn) }

  /** Runs events until `until` (virtual ms) or until `stop()` says so; returns false if it ran out of events. */
  run (until: number, stop: () => boolean = () => false): boolean {
    for (;;) {
      const key = this.queue.peekKey()
      if (key === undefined) return false
      const t = Math.floor(key / 2 ** 20)
      if (t > until) { this.now = until; return true }
      const fn = this.queue.pop()!
      this.now = t
      this.events++
      fn()
      if (stop()) return true
    }
  }
}
