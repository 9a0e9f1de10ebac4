// The simulator's network: it drops, delays, duplicates and reorders messages and cuts the nodes into partitions.
// Every choice comes from the seeded generator; a message is copied on send so no two nodes share an object.
import type { Prng } from './prng.ts'
import type { SimScheduler } from './scheduler.ts'

export interface LinkFaults {
  /** Probability that a message is lost. */
  drop: number
  /** Probability that a message arrives twice. */
  duplicate: number
  /** One-way delay in ms, uniform in [min, max]; messages overtake each other when it varies. */
  minDelayMs: number
  maxDelayMs: number
}

export const CALM: LinkFaults = { drop: 0, duplicate: 0, minDelayMs: 1, maxDelayMs: 3 }

export class SimNetwork<M> {
  faults: LinkFaults = { ...CALM }
  private readonly handlers = new Map<string, (from: string, message: M) => void>()
  /** Node id -> partition side; nodes on different sides cannot talk. Nodes without a side reach everyone. */
  private sides = new Map<string, number>()
  sent = 0
  dropped = 0

  private readonly sched: SimScheduler
  private readonly rng: Prng

  constructor (sched: SimScheduler, rng: Prng) { this.sched = sched; this.rng = rng }

  /** Attaches (or re-attaches after a restart) the receiver for `id`; undefined detaches it (crash). */
  attach (id: string, handler: ((from: string, message: M) => void) | undefined): void {
    if (handler === undefined) this.handlers.delete(id); else this.handlers.set(id, handler)
  }

  partition (groups: readonly (readonly string[])[]): void {
    this.sides = new Map()
    groups.forEach((g, i) => { for (const id of g) this.sides.set(id, i) })
  }

  heal (): void { this.sides = new Map() }

  connected (a: string, b: string): boolean {
    const sa = this.sides.get(a)
    const sb = this.sides.get(b)
    return sa === undefined || sb === undefined || sa === sb
  }

  send (from: string, to: string, message: M): void {
    this.sent++
    if (!this.connected(from, to) || this.rng.chance(this.faults.drop)) { this.dropped++; return }
    const copies = this.rng.chance(this.faults.duplicate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const copy = structuredClone(message)
      this.sched.after(this.rng.int(this.faults.minDelayMs, this.faults.maxDelayMs), () => {
        // The partition is checked again on arrival: a cut made while the message was in flight loses it.
        if (!this.connected(from, to)) { this.dropped++; return }
        this.handlers.get(to)?.(from, copy)
      })
    }
  }
}
