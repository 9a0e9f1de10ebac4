// Publish admission: producers entering a node spend credit (a token bucket at credit x the node's recent publish
// rate); a publish waits for a token up to maxWaitMs, then fails with OVERLOADED. Credit 1 admits everything.
import type { Clock } from '../clock.ts'
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
  }

  get currentCredit (): number { return this.credit }
  stats (): { credit: number, rate: number | null, admitted: number, delayed: number, refused: number } {
    return { credit: this.credit, rate: Number.isFinite(this.rate) ? this.rate : null, admitted: this.admittedTotal, delayed: this.delayedTotal, refused: this.refusedTotal }
  }

  /** Resolves when the publish may go on; rejects with OVERLOADED when no credit comes within maxWaitMs. */
  async admit (): Promise<void> {
    if (!Number.isFinite(this.rate)) { this.admittedTotal++; return }
    this.refill()
    // Tokens go negative as publishes queue: each waits its turn at the current rate.
    this.tokens -= 1
    if (this.tokens >= 0) { this.admittedTotal++; return }
    const waitMs = (-this.tokens / this.rate) * 1000
    if (waitMs > this.maxWaitMs) {
      this.tokens += 1
      this.refusedTotal++
      throw new GemError('OVERLOADED', `this node predicts saturation and admits ${Math.round(this.rate)} publishes/s now (credit ${this.credit.toFixed(2)}); retry after a pause`, { credit: this.credit, retryAfterMs: Math.ceil(waitMs) })
    }
    this.delayedTotal++
    await new Promise<void>(resolve => this.clock.setTimer(Math.ceil(waitMs), resolve))
    this.admittedTotal++
  }

  private refill (): void {
    const now = this.clock.now()
    if (Number.isFinite(this.rate)) this.tokens = Math.min(this.rate / 10, this.tokens + (now - this.lastRefill) / 1000 * this.rate)
    this.lastRefill = now
  }
}
