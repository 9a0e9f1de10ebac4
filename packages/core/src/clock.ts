// The clock the core reads time from and schedules timers with.
// Injected everywhere so that tests and the simulator can run the engine in virtual time.

export type TimerHandle = unknown

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  setTimer(ms: number, fn: () => void): TimerHandle
  clearTimer(handle: TimerHandle): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, ms)
    // A pending redelivery timer must not keep a Node process alive on its own.
    ;(t as { unref?: () => void }).unref?.()
    return t
  },
  clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

/** A clock that only moves when told to: for deterministic tests. */
export class ManualClock implements Clock {
  private time: number
  private seq = 0
  private readonly timers = new Map<number, { at: number, fn: () => void }>()

  constructor (start = 1_700_000_000_000) { this.time = start }

  now (): number { return this.time }

  setTimer (ms: number, fn: () => void): TimerHandle {
    const id = ++this.seq
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn })
    return id
  }

  clearTimer (handle: TimerHandle): void { this.timers.delete(handle as number) }

  /** Moves time forward, firing due timers in order. */
  advance (ms: number): void {
    const target = this.time + ms
    for (;;) {
      let nextId = -1
      let nextAt = Infinity
      for (const [id, t] of this.timers) if (t.at <= target && t.at < nextAt) { nextAt = t.at; nextId = id }
      if (nextId < 0) break
      const t = this.timers.get(nextId)!
      this.timers.delete(nextId)
      this.time = Math.max(this.time, t.at)
      t.fn()
    }
    this.time = target
  }
}
