// A consumer group on one topic: which offsets are settled, in flight or due again, and who gets what.
// It owns ack deadlines, redelivery with backoff, the max-delivery rule and per-consumer credit;
// it never touches storage directly (state rides on the group committer; records come from the logs).
import type { ConsumerOptions, Delivery, GroupStats } from '../broker-types.ts'
import type { Clock, TimerHandle } from '../clock.ts'
import type { MetaSource } from '../log/group-committer.ts'
import type { PartitionLog } from '../log/partition-log.ts'
import type { GemRecord } from '../message.ts'
import type { MetaWrite } from '../store/tier.ts'
import { GemError } from '../errors.ts'
import { redeliveryDelay } from './backoff.ts'
import { MinHeap } from './min-heap.ts'

export type ResolvedConsumerOptions = Required<Omit<ConsumerOptions, 'group' | 'from'>>

/** What a group needs from the broker that hosts it. */
export interface GroupHost {
  readonly clock: Clock
  random(): number
  /** Writes the group's state in the next group commit (durable groups only). */
  markDirty(source: MetaSource): void
  /** Appends `record` to the dead-letter topic; resolves once durable. */
  deadLetter(group: ConsumerGroup, record: GemRecord, attempt: number, reason: string): Promise<void>
  delivered?(group: ConsumerGroup, d: Delivery): void
  acked?(group: ConsumerGroup, latencyMs: number): void
  redelivered?(group: ConsumerGroup, reason: 'deadline' | 'nack'): void
  deadLettered?(group: ConsumerGroup, reason: string): void
  expired?(group: ConsumerGroup): void
  error?(where: string, err: unknown): void
}

/** The durable part of a partition's position, as stored in tier metadata. */
export interface PartitionState {
  /** Every offset below is settled (acked, dead-lettered or expired). */
  floor: number
  /** Every offset below has been delivered at least once. */
  cursor: number
  /** Settled offsets at or above the floor (acked out of order). */
  settled: number[]
  /** Delivery counts above one, for offsets not yet settled: [offset, count]. */
  attempts: Array<[number, number]>
}

export interface Consumer {
  readonly id: string
  credit: number
  attached: boolean
  deliver(d: Delivery): void
  /** Called once if the group ends under the consumer (its topic was deleted). */
  ended?(err: GemError): void
}

interface InFlight {
  partition: number
  record: GemRecord
  attempt: number
  consumer: Consumer
  deliveredAt: number
}

interface Due {
  partition: number
  record: GemRecord
  /** Deliveries so far. */
  attempt: number
  /** Set when the record is waiting for the dead-letter topic, not a consumer. */
  deadLetter?: string
}

class PartitionCursor {
  readonly log: PartitionLog
  floor: number
  /** Next offset never handed to a consumer in this process. */
  cursor: number
  /** Offsets below this had been delivered before a restart (their next delivery is a redelivery). */
  deliveredBefore: number
  readonly settled = new Set<number>()
  readonly attempts = new Map<number, number>()
  readonly inFlight = new Map<number, InFlight>()
  /** Offsets waiting in the redelivery heap or for the dead-letter topic. */
  readonly waiting = new Set<number>()
  buffer: GemRecord[] = []
  bufferPos = 0
  fetching = false

  constructor (log: PartitionLog, state: PartitionState) {
    this.log = log
    this.floor = Math.max(state.floor, log.low)
    this.cursor = this.floor
    this.deliveredBefore = Math.max(state.cursor, this.floor)
    for (const o of state.settled) if (o >= this.floor) this.settled.add(o)
    for (const [o, n] of state.attempts) if (o >= this.floor) this.attempts.set(o, n)
    this.advanceFloor()
  }

  settle (offset: number): void {
    this.inFlight.delete(offset)
    this.attempts.delete(offset)
    this.waiting.delete(offset)
    if (offset < this.floor) return
    this.settled.add(offset)
    this.advanceFloor()
  }

  advanceFloor (): void {
    while (this.settled.has(this.floor)) this.settled.delete(this.floor++)
    if (this.cursor < this.floor) { this.cursor = this.floor; this.buffer = []; this.bufferPos = 0 }
  }

  /** Moves past records that retention deleted. */
  clampToLow (): void {
    const low = this.log.low
    if (this.floor >= low) return
    for (const o of this.settled) if (o < low) this.settled.delete(o)
    for (const o of this.attempts.keys()) if (o < low) this.attempts.delete(o)
    this.floor = low
    this.advanceFloor()
  }

  state (): PartitionState {
    return {
      floor: this.floor,
      cursor: Math.max(this.cursor, this.deliveredBefore),
      settled: [...this.settled].sort((a, b) => a - b),
      attempts: [...this.attempts],
    }
  }
}

/** Records taken from the in-memory tail at once. */
const HOT_BATCH = 1024
/** Bytes of chunks read from the tier at once when a group is behind the in-memory tail. */
const FETCH_BYTES = 1024 * 1024

export class ConsumerGroup implements MetaSource {
  readonly topic: string
  readonly name: string
  readonly durable: boolean
  readonly options: ResolvedConsumerOptions
  private readonly host: GroupHost
  private readonly metaKey: string
  private readonly cursors: PartitionCursor[]
  private readonly consumers: Consumer[] = []
  private rrConsumer = 0
  private rrPartition = 0
  private readonly due = new MinHeap<Due>()
  /** Ack deadlines in delivery order; ackWait is constant so this stays sorted. */
  private deadlines: Array<{ at: number, partition: number, offset: number, attempt: number }> = []
  private deadlineHead = 0
  private deadlineTimer: TimerHandle | undefined
  private dueTimer: TimerHandle | undefined
  private dueTimerAt = Infinity
  private pumping = false
  private pumpAgain = false
  private closed = false
  private stateWaiters: Array<{ resolve(): void, reject(e: unknown): void }> = []
  private writingWaiters: Array<{ resolve(): void, reject(e: unknown): void }> = []

  constructor (opts: {
    topic: string
    name: string
    durable: boolean
    metaKey: string
    options: ResolvedConsumerOptions
    logs: PartitionLog[]
    initial: PartitionState[]
    host: GroupHost
  }) {
    this.topic = opts.topic
    this.name = opts.name
    this.durable = opts.durable
    this.metaKey = opts.metaKey
    this.options = opts.options
    this.host = opts.host
    this.cursors = opts.logs.map((log, i) => new PartitionCursor(log, opts.initial[i]))
  }

  get consumerCount (): number { return this.consumers.length }

  /** True while records are being read from storage for some partition. */
  get fetching (): boolean { return this.cursors.some(c => c.fetching) }

  // ---- consumers -----------------------------------------------------------------------------

  attach (consumer: Consumer): void {
    this.consumers.push(consumer)
    this.pump()
  }

  /**
   * Detaches a consumer. With `requeue`, what it still held becomes deliverable to the others at
   * once (a push consumer went away); without, its deliveries wait for acks or their deadlines
   * (a pull request ended but its caller still holds the messages).
   */
  detach (consumer: Consumer, requeue: boolean): void {
    consumer.attached = false
    const i = this.consumers.indexOf(consumer)
    if (i >= 0) this.consumers.splice(i, 1)
    if (!requeue) return
    const now = this.host.clock.now()
    for (let p = 0; p < this.cursors.length; p++) {
      const cur = this.cursors[p]
      for (const f of cur.inFlight.values()) {
        if (f.consumer !== consumer) continue
        cur.inFlight.delete(f.record.offset)
        cur.waiting.add(f.record.offset)
        this.due.push(now, { partition: p, record: f.record, attempt: f.attempt })
      }
    }
    this.pump()
  }

  // ---- acks ----------------------------------------------------------------------------------

  /** Settles a delivery. Resolves true once the group's state is durable, false for an unknown tag. */
  ack (tag: string): Promise<boolean> {
    const f = this.takeInFlight(tag)
    if (f === undefined) return this.lateAck(tag)
    const cur = this.cursors[f.partition]
    cur.settle(f.record.offset)
    this.host.acked?.(this, this.host.clock.now() - f.deliveredAt)
    this.pump()
    return this.persisted()
  }

  /**
   * An ack that arrives after its deadline, while the record waits for redelivery, still counts:
   * the consumer did process it, and redelivering it would only make a duplicate.
   */
  private lateAck (tag: string): Promise<boolean> {
    const parsed = parseTag(tag)
    const cur = parsed === undefined ? undefined : this.cursors[parsed.partition]
    if (parsed === undefined || cur === undefined || !cur.waiting.has(parsed.offset)) return Promise.resolve(false)
    cur.settle(parsed.offset)
    this.pump()
    return this.persisted()
  }

  /** Hands a delivery back for redelivery after `delayMs` (default: at once). */
  nack (tag: string, delayMs = 0): Promise<boolean> {
    const f = this.takeInFlight(tag)
    if (f === undefined) return Promise.resolve(false)
    this.host.redelivered?.(this, 'nack')
    this.scheduleAgain(f.partition, f.record, f.attempt, Math.max(0, delayMs), 'nacked')
    this.pump()
    return this.persisted()
  }

  private takeInFlight (tag: string): InFlight | undefined {
    const parsed = parseTag(tag)
    if (parsed === undefined) return undefined
    const cur = this.cursors[parsed.partition]
    if (cur === undefined) return undefined
    const f = cur.inFlight.get(parsed.offset)
    // A tag from an earlier attempt must not settle (or snatch back) the current delivery,
    // which may be held by another consumer.
    if (f === undefined || f.attempt !== parsed.attempt) return undefined
    cur.inFlight.delete(parsed.offset)
    if (f.consumer.attached) f.consumer.credit++
    return f
  }

  /** Either redeliver after `delayMs`, or dead-letter when the delivery budget is spent. */
  private scheduleAgain (partition: number, record: GemRecord, attempt: number, delayMs: number, why: string): void {
    const cur = this.cursors[partition]
    cur.waiting.add(record.offset)
    if (attempt >= this.options.maxDeliver) {
      this.sendToDeadLetter({ partition, record, attempt, deadLetter: `${why}: ${attempt} deliveries without ack (max_deliver ${this.options.maxDeliver})` })
    } else {
      this.due.push(this.host.clock.now() + delayMs, { partition, record, attempt })
      this.armDueTimer()
    }
    this.markDirty()
  }

  private sendToDeadLetter (d: Due): void {
    const reason = d.deadLetter!
    this.host.deadLetter(this, d.record, d.attempt, reason).then(() => {
      if (this.closed) return
      this.cursors[d.partition].settle(d.record.offset)
      this.host.deadLettered?.(this, reason)
      this.markDirty()
      this.pump()
    }, (err: unknown) => {
      if (this.closed) return
      this.host.error?.('dead-letter', err)
      // The record stays unsettled; try the dead-letter topic again later.
      this.due.push(this.host.clock.now() + this.options.backoffMs, d)
      this.armDueTimer()
    })
  }

  // ---- dispatch ------------------------------------------------------------------------------

  /** Hands out records while some consumer has credit. Safe to call at any time. */
  pump (): void {
    if (this.closed) return
    if (this.pumping) { this.pumpAgain = true; return }
    this.pumping = true
    try {
      do {
        this.pumpAgain = false
        this.pumpOnce()
      } while (this.pumpAgain)
    } finally {
      this.pumping = false
    }
    this.armDueTimer()
  }

  private pumpOnce (): void {
    const now = this.host.clock.now()
    for (;;) {
      const ci = this.nextConsumer()
      if (ci < 0) return
      const consumer = this.consumers[ci]
      // Redeliveries that are due go first: they are the oldest work.
      if (this.due.size > 0 && this.due.peekKey()! <= now) {
        const d = this.due.pop()!
        if (d.deadLetter !== undefined) { this.sendToDeadLetter(d); continue }
        const cur = this.cursors[d.partition]
        cur.waiting.delete(d.record.offset)
        if (d.record.offset < cur.floor || cur.settled.has(d.record.offset)) continue
        // The turn passes only when a consumer is given work; set before dispatch, which may detach it.
        this.rrConsumer = (ci + 1) % this.consumers.length
        this.dispatch(consumer, d.partition, d.record, d.attempt)
        continue
      }
      const fresh = this.nextFresh(now)
      if (fresh === undefined) return
      const cur = this.cursors[fresh.partition]
      const o = fresh.record.offset
      this.rrConsumer = (ci + 1) % this.consumers.length
      this.dispatch(consumer, fresh.partition, fresh.record, cur.attempts.get(o) ?? (o < cur.deliveredBefore ? 1 : 0))
    }
  }

  /** Index of the next consumer with credit, round-robin from the current turn; -1 if none. */
  private nextConsumer (): number {
    const n = this.consumers.length
    for (let i = 0; i < n; i++) {
      const ci = (this.rrConsumer + i) % n
      if (this.consumers[ci].credit > 0) return ci
    }
    return -1
  }

  /** The next never-delivered record, round-robin over partitions; starts fetches as needed. */
  private nextFresh (now: number): { partition: number, record: GemRecord } | undefined {
    const n = this.cursors.length
    for (let i = 0; i < n; i++) {
      const p = (this.rrPartition + i) % n
      const cur = this.cursors[p]
      for (;;) {
        const record = this.peekBuffered(cur)
        if (record === undefined) break
        cur.bufferPos++
        cur.cursor = record.offset + 1
        const o = record.offset
        if (o < cur.floor || cur.settled.has(o) || cur.inFlight.has(o) || cur.waiting.has(o)) continue
        if (record.ttl > 0 && now > record.timestamp + record.ttl) {
          cur.settle(o)
          this.host.expired?.(this)
          this.markDirty()
          continue
        }
        this.rrPartition = (p + 1) % n
        return { partition: p, record }
      }
    }
    return undefined
  }

  private peekBuffered (cur: PartitionCursor): GemRecord | undefined {
    if (cur.bufferPos < cur.buffer.length) return cur.buffer[cur.bufferPos]
    cur.clampToLow()
    if (cur.cursor >= cur.log.high || cur.fetching) return undefined
    const hot = cur.log.readHot(cur.cursor, HOT_BATCH)
    if (hot !== undefined) {
      cur.buffer = hot
      cur.bufferPos = 0
      return hot[0]
    }
    cur.fetching = true
    const from = cur.cursor
    const retryLater = (err: unknown): void => {
      // `where` is a metric label: keep it to a fixed set; the stream and offset go in the error.
      this.host.error?.('consumer-read', new Error(`reading ${cur.log.stream} at ${from}: ${(err as Error)?.message ?? err}`))
      // Retry later rather than spin on a failing read.
      this.host.clock.setTimer(this.options.backoffMs, () => this.pump())
    }
    cur.log.readBatch(from, FETCH_BYTES).then(records => {
      cur.fetching = false
      if (records.length === 0 && from >= cur.log.low && from < cur.log.high) {
        retryLater(new Error(`no records at ${from} below the high watermark ${cur.log.high}`))
        return
      }
      if (cur.cursor === from && cur.bufferPos >= cur.buffer.length) { cur.buffer = records; cur.bufferPos = 0 }
      this.pump()
    }, (err: unknown) => {
      cur.fetching = false
      retryLater(err)
    })
    return undefined
  }

  /** `prior`: how many times the record was delivered before. */
  private dispatch (consumer: Consumer, partition: number, record: GemRecord, prior: number): void {
    const cur = this.cursors[partition]
    const o = record.offset
    const attempt = prior + 1
    // Only counts above one are stored: a first delivery is implied by the cursor.
    if (attempt > 1) cur.attempts.set(o, attempt)
    const now = this.host.clock.now()
    cur.inFlight.set(o, { partition, record, attempt, consumer, deliveredAt: now })
    consumer.credit--
    this.deadlines.push({ at: now + this.options.ackWaitMs, partition, offset: o, attempt })
    this.armDeadlineTimer()
    if (attempt > 1) this.markDirty()
    const d: Delivery = { tag: `${partition}.${o}.${attempt}`, topic: this.topic, group: this.name, attempt, record }
    this.host.delivered?.(this, d)
    try {
      consumer.deliver(d)
    } catch (err) {
      this.host.error?.('deliver', err)
    }
  }

  // ---- timers --------------------------------------------------------------------------------

  private armDeadlineTimer (): void {
    if (this.deadlineTimer !== undefined || this.deadlineHead >= this.deadlines.length || this.closed) return
    const wait = Math.max(0, this.deadlines[this.deadlineHead].at - this.host.clock.now())
    this.deadlineTimer = this.host.clock.setTimer(wait, () => {
      this.deadlineTimer = undefined
      this.expireDeadlines()
    })
  }

  private expireDeadlines (): void {
    const now = this.host.clock.now()
    while (this.deadlineHead < this.deadlines.length && this.deadlines[this.deadlineHead].at <= now) {
      const e = this.deadlines[this.deadlineHead++]
      const cur = this.cursors[e.partition]
      const f = cur.inFlight.get(e.offset)
      if (f === undefined || f.attempt !== e.attempt) continue // settled or delivered again since
      cur.inFlight.delete(e.offset)
      if (f.consumer.attached) f.consumer.credit++
      this.host.redelivered?.(this, 'deadline')
      const delay = redeliveryDelay(f.attempt, this.options.backoffMs, this.options.maxBackoffMs, () => this.host.random())
      this.scheduleAgain(e.partition, f.record, f.attempt, delay, 'ack deadline expired')
    }
    // Compact the consumed prefix now and then so the array does not grow without bound.
    if (this.deadlineHead > 4096 && this.deadlineHead * 2 > this.deadlines.length) {
      this.deadlines = this.deadlines.slice(this.deadlineHead)
      this.deadlineHead = 0
    }
    this.armDeadlineTimer()
    this.pump()
  }

  private armDueTimer (): void {
    if (this.closed || this.due.size === 0) return
    const at = this.due.peekKey()!
    if (this.dueTimer !== undefined) {
      if (at >= this.dueTimerAt) return
      this.host.clock.clearTimer(this.dueTimer)
    }
    this.dueTimerAt = at
    this.dueTimer = this.host.clock.setTimer(Math.max(0, at - this.host.clock.now()), () => {
      this.dueTimer = undefined
      this.dueTimerAt = Infinity
      this.pump()
    })
  }

  // ---- durable state -------------------------------------------------------------------------

  private markDirty (): void {
    if (this.durable && !this.closed) this.host.markDirty(this)
  }

  /** Resolves true once the state that includes the caller's change is durable. */
  private persisted (): Promise<boolean> {
    if (this.closed) return Promise.reject(new GemError('CLOSED', `consumer group ${this.name} is closed`))
    if (!this.durable) return Promise.resolve(true)
    return new Promise((resolve, reject) => {
      this.stateWaiters.push({ resolve: () => resolve(true), reject })
      this.host.markDirty(this)
    })
  }

  /** The durable state as stored: what `collect()` writes, for handing to another node. */
  exportState (): Uint8Array {
    return encodeGroupState({ options: this.options, partitions: this.cursors.map(c => c.state()) })
  }

  collect (): MetaWrite[] {
    this.writingWaiters = this.stateWaiters
    this.stateWaiters = []
    return [{ key: this.metaKey, value: this.exportState() }]
  }

  settled (err?: unknown): void {
    const waiters = this.writingWaiters
    this.writingWaiters = []
    for (const w of waiters) err === undefined ? w.resolve() : w.reject(err)
  }

  // ---- lifecycle and stats -------------------------------------------------------------------

  /** Closes the group; with `reason`, every attached consumer is told why (its topic is gone). */
  close (reason?: GemError): void {
    if (this.closed) return
    this.closed = true
    // Told while still attached (a pending pull answers with what it has), then detached.
    for (const c of [...this.consumers]) {
      if (reason !== undefined) {
        try { c.ended?.(reason) } catch (err) { this.host.error?.('consumer-ended', err) }
      }
      c.attached = false
    }
    this.consumers.length = 0
    if (this.deadlineTimer !== undefined) this.host.clock.clearTimer(this.deadlineTimer)
    if (this.dueTimer !== undefined) this.host.clock.clearTimer(this.dueTimer)
  }

  stats (): GroupStats {
    let backlog = 0
    let inFlight = 0
    const committed: GroupStats['committed'] = []
    for (let p = 0; p < this.cursors.length; p++) {
      const c = this.cursors[p]
      backlog += Math.max(0, c.log.high - Math.max(c.floor, c.log.low)) - c.settled.size
      inFlight += c.inFlight.size
      committed.push({ partition: p, offset: c.floor })
    }
    return { topic: this.topic, group: this.name, backlog, inFlight, consumers: this.consumers.length, committed }
  }
}

export function parseTag (tag: string): { partition: number, offset: number, attempt: number } | undefined {
  if (typeof tag !== 'string') return undefined
  const parts = tag.split('.')
  if (parts.length !== 3) return undefined
  const [p, o, a] = parts.map(Number)
  if (!Number.isSafeInteger(p) || !Number.isSafeInteger(o) || !Number.isSafeInteger(a) || p < 0 || o < 0 || a < 1) return undefined
  return { partition: p, offset: o, attempt: a }
}

const te = new TextEncoder()
const td = new TextDecoder()

/** A durable group as stored: its options are fixed when it is created, like a JetStream consumer's. */
export interface GroupState {
  options: ResolvedConsumerOptions
  partitions: PartitionState[]
}

export function encodeGroupState (state: GroupState): Uint8Array {
  return te.encode(JSON.stringify({ v: 1, ...state }))
}

export function decodeGroupState (bytes: Uint8Array): GroupState {
  const s = JSON.parse(td.decode(bytes)) as { v: number } & GroupState
  if (s.v !== 1) throw new Error(`unknown consumer-group state version ${s.v}`)
  return { options: s.options, partitions: s.partitions }
}
