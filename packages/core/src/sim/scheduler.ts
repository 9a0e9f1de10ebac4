// Virtual time for the simulator: a queue of callbacks ordered by due time, run one at a time.
// Time only moves when the next event runs, so a simulated minute costs what its events cost.
import { MinHeap } from '../delivery/min-heap.ts'

export class SimScheduler {
  now = 0
  // Keyed by time; the heap pops equal keys first in, first out, so events due at the same moment run in the order
  // they were set.
  private readonly queue = new MinHeap<() => void>()
  events = 0

  at (time: number, fn: () => void): void {
    this.queue.push(Math.max(time, this.now), fn)
  }

  after (ms: number, fn: () => void): void { this.at(this.now + ms, fn) }

  /** Runs events until `until` (virtual ms) or until `stop()` says so; returns false if it ran out of events. */
  run (until: number, stop: () => boolean = () => false): boolean {
    for (;;) {
      const t = this.queue.peekKey()
      if (t === undefined) return false
      if (t > until) { this.now = until; return true }
      const fn = this.queue.pop()!
      this.now = t
      this.events++
      fn()
      if (stop()) return true
    }
  }
}
