// PartitionMirror: local copies of the partitions this node holds no replica of, for the consumers it serves: durable
// groups on their home node, ephemeral consumers where they attach. Their local broker must see every partition; the
// copies come over `/gem/1/read`.
import type { Broker } from '../broker.ts'
import type { Clock } from '../clock.ts'
import { GemError, toGemError } from '../errors.ts'
import type { RemotePartitions } from './remote-partitions.ts'

const PAGE = 1_000
const LONG_POLL_MS = 1_000
const RETRY_MS = 250
/** How often the set of mirrored topics is brought in line with the groups served here. */
const SYNC_MS = 500

export interface PartitionMirrorOptions {
  readonly local: Broker
  readonly remote: RemotePartitions
  readonly clock: Clock
  /** Whether this node holds a replica of the partition (then replication fills its log, not the mirror). */
  readonly holds: (topic: string, partition: number) => boolean
  /** The topics whose every partition this node must see now (durable groups served here, ephemeral consumers attached). */
  readonly wanted: () => Iterable<string>
  readonly onError?: (where: string, err: unknown) => void
}

/** One partition being copied: its loop runs until stopped or until this node becomes a replica. */
interface Copy {
  readonly topic: string
  readonly partition: number
  stopped: boolean
  /** Settles once the copy has reached what a replica had when the copy started (or failed for good). */
  readonly caughtUp: Promise<void>
  /** Why the copy stopped for good (a gap it cannot fill), if it did. */
  failed: GemError | undefined
}

/**
 * Why copies and not a group per partition leader: the consumer-group engine (acks, redelivery, dead letters,
 * committed offsets) runs on one local broker, and a copy lets it run unchanged. The copy is a cache: it is appended
 * like a follower's log, not fsynced, and after a crash it resumes from whatever survived locally.
 */
export class PartitionMirror {
  private readonly opts: PartitionMirrorOptions
  private readonly copies = new Map<string, Copy>()
  private timer: unknown
  private closed = false

  constructor (opts: PartitionMirrorOptions) {
    this.opts = opts
  }

  start (): void {
    this.arm()
  }

  /**
   * Copies every partition of `topic` this node holds no replica of, and resolves once each copy has caught up with
   * what its replica had (within `timeoutMs`; TIMEOUT after). A group created after this sees the partition's history.
   */
  async catchUp (topic: string, timeoutMs = 10_000): Promise<void> {
    const copies = this.ensure(topic)
    if (copies.length === 0) return
    let timer: unknown
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = this.opts.clock.setTimer(timeoutMs, () => { reject(new GemError('TIMEOUT', `copying ${topic}'s partitions held elsewhere took more than ${timeoutMs} ms`)) })
    })
    try {
      await Promise.race([Promise.all(copies.map(c => c.caughtUp)), deadline])
    } finally {
      this.opts.clock.clearTimer(timer)
    }
    const failed = copies.find(c => c.failed !== undefined)
    if (failed !== undefined) throw failed.failed!
  }

  close (): void {
    this.closed = true
    if (this.timer !== undefined) this.opts.clock.clearTimer(this.timer)
    for (const c of this.copies.values()) c.stopped = true
    this.copies.clear()
  }

  private arm (): void {
    if (this.closed) return
    this.timer = this.opts.clock.setTimer(SYNC_MS, () => {
      try { this.sync() } catch (err) { this.opts.onError?.('mirror-sync', err) }
      this.arm()
    })
  }

  /** Starts copies for wanted topics, stops those of topics no longer wanted and of partitions now held here. */
  private sync (): void {
    const wanted = new Set(this.opts.wanted())
    for (const [key, c] of this.copies) {
      // A copy that failed for good stays (and keeps failing catchUp with its reason) rather than retry every sync.
      if ((c.stopped && c.failed === undefined) || !wanted.has(c.topic) || !this.opts.local.hasTopic(c.topic) || this.opts.holds(c.topic, c.partition)) {
        c.stopped = true
        this.copies.delete(key)
      }
    }
    for (const topic of wanted) this.ensure(topic)
  }

  private ensure (topic: string): Copy[] {
    if (this.closed || !this.opts.local.hasTopic(topic)) return []
    const copies: Copy[] = []
    const partitions = this.opts.local.getTopic(topic).partitions
    for (let p = 0; p < partitions; p++) {
      if (this.opts.holds(topic, p)) continue
      const key = `${topic}\n${p}`
      let c = this.copies.get(key)
      if (c === undefined) {
        c = this.begin(topic, p)
        this.copies.set(key, c)
      }
      copies.push(c)
    }
    return copies
  }

  private begin (topic: string, partition: number): Copy {
    let done!: () => void
    const copy: Copy = { topic, partition, stopped: false, caughtUp: new Promise<void>(resolve => { done = resolve }), failed: undefined }
    void this.run(copy, done)
    return copy
  }

  private async run (copy: Copy, caughtUp: () => void): Promise<void> {
    const { local, remote, holds } = this.opts
    const { topic, partition } = copy
    let atEnd = false
    const fail = (err: GemError): void => {
      copy.failed = err
      copy.stopped = true
      this.opts.onError?.('mirror', err)
      caughtUp()
    }
    while (!copy.stopped && !this.closed) {
      try {
        if (!local.hasTopic(topic) || holds(topic, partition)) { copy.stopped = true; break }
        const range = local.getTopic(topic).offsets[partition]
        const from = range.high
        const page = await remote.read(topic, partition, from, PAGE, atEnd ? LONG_POLL_MS : 0)
        if (copy.stopped || this.closed || holds(topic, partition)) break
        const first = page.messages[0]?.offset ?? page.next
        if (first > from) {
          // The replicas no longer retain [from, first): an empty copy starts where they do, a partial one cannot go on.
          if (range.high === 0 && range.low === 0) { local.startPartitionAt(topic, partition, first); continue }
          fail(new GemError('UNAVAILABLE', `cannot copy ${topic}/${partition}: the replicas start at ${first}, the copy here ends at ${from}`))
          return
        }
        if (page.messages.length === 0) {
          if (!atEnd) { atEnd = true; caughtUp() }
          continue
        }
        await local.appendSequenced(topic, partition, page.messages)
      } catch (err) {
        if (copy.stopped || this.closed) break
        const e = toGemError(err)
        if (e.code === 'TOPIC_NOT_FOUND' || e.code === 'CLOSED') { copy.stopped = true; break }
        this.opts.onError?.('mirror', e)
        await new Promise<void>(resolve => this.opts.clock.setTimer(RETRY_MS, resolve))
      }
    }
    caughtUp()
  }
}
