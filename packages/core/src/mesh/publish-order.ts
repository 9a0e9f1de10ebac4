// PublishOrder: keeps the publishes an entry node forwards to one partition in their arrival order across retries.
// Without it a leader change reorders a pipelined producer: its failed publishes retry after later ones went through.
import type { Clock } from '../clock.ts'

/** One publish's place in its partition's order. */
export interface OrderTurn {
  readonly seq: number
  readonly gate: Gate
}

export interface Gate {
  readonly stream: string
  next: number
  /** Publishes with an attempt outstanding. */
  readonly pending: Set<number>
  /** Pending attempts that are retries: until they succeed, new publishes wait behind them. */
  readonly retrying: Set<number>
  /** Publishes waiting to (re)send, in publish order. */
  held: Array<{ seq: number, retry: boolean, go: () => void }>
  timer: boolean
}

/**
 * Per partition: `open` a turn, await `ready` (at once unless earlier publishes are being retried), attempt; after a
 * retryable failure await `retry` (after `retryMs`, once every earlier publish was re-sent or settled); `done` when
 * the publish settled for good. Order holds as long as attempts to one leader travel one ordered channel.
 */
export class PublishOrder {
  private readonly gates = new Map<string, Gate>()
  private readonly clock: Clock
  private readonly retryMs: number

  constructor (clock: Clock, retryMs: number) {
    this.clock = clock
    this.retryMs = retryMs
  }

  /** Partitions with publishes held back or retrying (for tests and stats). */
  get blocked (): number {
    let n = 0
    for (const g of this.gates.values()) if (g.held.length > 0 || g.retrying.size > 0) n++
    return n
  }

  open (stream: string): OrderTurn {
    let gate = this.gates.get(stream)
    if (gate === undefined) {
      gate = { stream, next: 0, pending: new Set(), retrying: new Set(), held: [], timer: false }
      this.gates.set(stream, gate)
    }
    return { seq: gate.next++, gate }
  }

  ready (turn: OrderTurn): Promise<void> | undefined {
    const g = turn.gate
    if (g.held.length === 0 && g.retrying.size === 0) { g.pending.add(turn.seq); return undefined }
    return this.hold(turn, false).then(() => { g.pending.add(turn.seq) })
  }

  retry (turn: OrderTurn): Promise<void> {
    const g = turn.gate
    g.pending.delete(turn.seq)
    g.retrying.delete(turn.seq)
    return this.hold(turn, true).then(() => { g.pending.add(turn.seq); g.retrying.add(turn.seq) })
  }

  done (turn: OrderTurn): void {
    const g = turn.gate
    g.pending.delete(turn.seq)
    g.retrying.delete(turn.seq)
    if (g.held.length > 0) this.schedule(g)
    else if (g.pending.size === 0 && g.retrying.size === 0 && this.gates.get(g.stream) === g) this.gates.delete(g.stream)
  }

  private hold (turn: OrderTurn, retry: boolean): Promise<void> {
    const g = turn.gate
    return new Promise<void>(resolve => {
      // Sorted by seq: a retry goes back to its place, ahead of later publishes already waiting.
      let i = g.held.length
      while (i > 0 && g.held[i - 1].seq > turn.seq) i--
      g.held.splice(i, 0, { seq: turn.seq, retry, go: resolve })
      this.schedule(g)
    })
  }

  /**
   * Every `retryMs` while publishes are held: release, in order, those with no earlier attempt still outstanding (it
   * could fail and retry behind them). Publishes not tried yet wait until every retry ahead of them has succeeded.
   */
  private schedule (g: Gate): void {
    if (g.timer) return
    g.timer = true
    this.clock.setTimer(this.retryMs, () => {
      g.timer = false
      let first = Infinity
      for (const s of g.pending) if (s < first) first = s
      let n = 0
      let retries = g.retrying.size > 0
      for (; n < g.held.length && g.held[n].seq < first && (g.held[n].retry || !retries); n++) if (g.held[n].retry) retries = true
      for (const h of g.held.splice(0, n)) h.go()
      if (g.held.length > 0) this.schedule(g)
    })
  }
}
