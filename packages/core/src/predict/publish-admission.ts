// Publish admission: producers entering a node spend credit (a token bucket at credit x the node's recent publish
// rate); a publish waits for a token up to maxWaitMs, then fails with OVERLOADED. Credit 1 admits everything.
// Waiters are released first in, first out, so a pipelined producer's publishes keep their order through admission.
import type { Clock, TimerHandle } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { GemError } from '../errors.ts'

export interface PublishAdmissionOptions {
  clock?: Clock
  /** Longest a publish waits for credit before OVERLOADED (ms, default 1,000). */
  maxWaitMs?: number
  /** The rate never drops below this (publishes/s, default 50): slowing producers, never stopping them. */
  minRate?: number
}

export class PublishAdmission {
  private readonly clock: Clock
  private readonly maxWaitMs: number
  private readonly minRate: number
  private credit = 1
  private rate = Infinity
  private tokens = 0
  private lastRefill: number
  private admittedTotal = 0
  private refusedTotal = 0
  private delayedTotal = 0
  /** Publishes waiting for a token, oldest first; one timer releases them in this order. */
  private readonly waiters: Array<() => void> = []
  private timer: TimerHandle | undefined

  constructor (options: PublishAdmissionOptions = {}) {
    this.clock = options.clock ?? systemClock
    this.maxWaitMs = options.maxWaitMs ?? 1_000
    this.minRate = options.minRate ?? 50
    this.lastRefill = this.clock.now()
  }

  /** Sets the credit (0-1) against the publish rate the node served lately (publishes/s). */
  setCredit (credit: number, recentRate: number): void {
    this.refill()
    this.credit = Math.max(0, Math.min(1, credit))
    this.rate = this.credit >= 1 ? Infinity : Math.max(this.minRate, this.credit * recentRate)
    // A burst of at most a tenth of a second at the new rate: credit that was not used does not pile up.
    if (Number.isFinite(this.rate)) this.tokens = Math.min(this.tokens, this.rate / 10)
    // The rate changed: whoever waits is released on the new schedule (at once when credit is back to 1).
    this.reschedule()
  }

  get currentCredit (): number { return this.credit }
  stats (): { credit: number, rate: number | null, admitted: number, delayed: number, refused: number } {
    return { credit: this.credit, rate: Number.isFinite(this.rate) ? this.rate : null, admitted: this.admittedTotal, delayed: this.delayedTotal, refused: this.refusedTotal }
  }

  /** Resolves when the publish may go on; rejects with OVERLOADED when no credit comes within maxWaitMs. */
  async admit (): Promise<void> {
    if (!Number.isFinite(this.rate) && this.waiters.length === 0) { this.admittedTotal++; return }
    this.refill()
    // Nobody waiting and a token at hand: go. Otherwise queue behind whoever waits, never past them: a later publish
    // taking a token that refilled while earlier ones wait would reorder one producer's stream.
    if (this.waiters.length === 0 && this.tokens >= 1) { this.tokens -= 1; this.admittedTotal++; return }
    const waitMs = Number.isFinite(this.rate) ? (this.waiters.length + 1 - this.tokens) / this.rate * 1000 : 0
    if (waitMs > this.maxWaitMs) {
      this.refusedTotal++
      throw new GemError('OVERLOADED', `this node predicts saturation and admits ${Math.round(this.rate)} publishes/s now (credit ${this.credit.toFixed(2)}); retry after a pause`, { credit: this.credit, retryAfterMs: Math.ceil(waitMs) })
    }
    this.delayedTotal++
    await new Promise<void>(resolve => { this.waiters.push(resolve); this.reschedule() })
    this.admittedTotal++
  }

  /** Releases the waiters a token (or unlimited credit) allows, oldest first, and sets the timer for the next. */
  private release (): void {
    this.timer = undefined
    this.refill()
    while (this.waiters.length > 0 && (!Number.isFinite(this.rate) || this.tokens >= 1)) {
      if (Number.isFinite(this.rate)) this.tokens -= 1
      this.waiters.shift()!()
    }
    if (this.waiters.length > 0) this.reschedule()
  }

  private reschedule (): void {
    if (this.timer !== undefined) { this.clock.clearTimer(this.timer); this.timer = undefined }
    if (this.waiters.length === 0) return
    const ms = Number.isFinite(this.rate) ? Math.max(0, (1 - this.tokens) / this.rate * 1000) : 0
    this.timer = this.clock.setTimer(Math.ceil(ms), () => this.release())
  }

  private refill (): void {
    const now = this.clock.now()
    if (Number.isFinite(this.rate)) this.tokens = Math.min(this.rate / 10, this.tokens + (now - this.lastRefill) / 1000 * this.rate)
    this.lastRefill = now
  }
}
