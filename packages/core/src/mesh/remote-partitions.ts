// RemotePartitions: reads and live tails of partitions this node holds no replica of, served by a node that does
// (`/gem/1/read`, long-polled), so that any node's gateway reads and subscribes to every partition, not only its own.
import type { BrokerApi } from '../broker-types.ts'
import type { Clock } from '../clock.ts'
import { GemError, toGemError } from '../errors.ts'
import type { GemRecord } from '../message.ts'
import { decodeRecordsFrame, encodeRecordsFrame } from './client-wire.ts'
import type { MeshTransport } from './transport.ts'

export const READ_PROTOCOL = '/gem/1/read'

/** A follower's long poll: how long a read at the end of a partition waits for the next record. */
const LONG_POLL_MS = 1_000
const RETRY_MS = 200
const PAGE = 1_000

export interface RemotePartitionsOptions {
  readonly transport: MeshTransport
  /** The local broker: what this node serves to others (only partitions it hosts). */
  readonly local: Pick<BrokerApi, 'read' | 'tail' | 'getTopic'>
  readonly clock: Clock
  /** Whether this node holds a replica of the partition (then its applied log is the partition's committed log). */
  readonly hosts: (topic: string, partition: number) => boolean
  /** Nodes to ask, best first (the leader, then the other replicas). */
  readonly replicasOf: (topic: string, partition: number) => string[]
  readonly onError?: (where: string, err: unknown) => void
}

/** A live follow of one remote partition: records reach `onRecords` in offset order from `from`. */
export interface RemoteFollow {
  readonly from: number
  close(): void
}

interface ReadRequest { topic: string, partition: number, from: number | null, back: number, limit: number, waitMs: number }

const te = new TextEncoder()
const td = new TextDecoder()

export class RemotePartitions {
  private readonly opts: RemotePartitionsOptions

  constructor (opts: RemotePartitionsOptions) {
    this.opts = opts
  }

  async start (): Promise<void> {
    await this.opts.transport.handle(READ_PROTOCOL, (_from, frame) => this.onRead(frame))
  }

  async stop (): Promise<void> {
    await this.opts.transport.unhandle(READ_PROTOCOL).catch(() => {})
  }

  /** One page of a remote partition, from a node that holds it; at the partition's end it waits up to `waitMs` for more. */
  async read (topic: string, partition: number, from: number, limit: number, waitMs = 0): Promise<{ messages: GemRecord[], next: number }> {
    const r = await this.ask({ topic, partition, from, back: 0, limit, waitMs })
    return { messages: r.records, next: r.next }
  }

  /**
   * Follows a remote partition live from `from` (null: from its end, less `back` records), long-polling a node that
   * holds it and moving to another replica when that one fails. Resolves once the start is known.
   */
  async follow (topic: string, partition: number, from: number | null, back: number, onRecords: (records: GemRecord[]) => void, onEnd: (err: GemError) => void): Promise<RemoteFollow> {
    const first = await this.ask({ topic, partition, from, back, limit: PAGE, waitMs: 0 })
    const start = first.records[0]?.offset ?? first.next
    let closed = false
    if (first.records.length > 0) onRecords(first.records)
    let next = first.next
    void (async () => {
      while (!closed) {
        try {
          const r = await this.ask({ topic, partition, from: next, back: 0, limit: PAGE, waitMs: LONG_POLL_MS })
          if (closed) return
          if (r.records.length > 0) onRecords(r.records)
          next = r.next
        } catch (err) {
          if (closed) return
          const e = toGemError(err)
          if (e.code === 'TOPIC_NOT_FOUND' || e.code === 'BAD_REQUEST') { closed = true; onEnd(e); return }
          this.opts.onError?.('remote-follow', e)
          await new Promise<void>(resolve => this.opts.clock.setTimer(RETRY_MS, resolve))
        }
      }
    })()
    return { from: start, close: () => { closed = true } }
  }

  private async ask (req: ReadRequest): Promise<{ next: number, records: GemRecord[] }> {
    const peers = this.opts.replicasOf(req.topic, req.partition)
    let last: GemError = new GemError('UNAVAILABLE', `no replica of ${req.topic}/${req.partition} is known`)
    for (const peer of peers) {
      try {
        const answer = await this.opts.transport.request(peer, READ_PROTOCOL, te.encode(JSON.stringify(req)), { timeoutMs: 5_000 + req.waitMs })
        return decodeRecordsFrame(answer)
      } catch (err) {
        last = toGemError(err)
        if (last.code === 'TOPIC_NOT_FOUND' || last.code === 'BAD_REQUEST') throw last
      }
    }
    throw last
  }

  private async onRead (frame: Uint8Array): Promise<Uint8Array> {
    let req: Partial<ReadRequest>
    try { req = JSON.parse(td.decode(frame)) as Partial<ReadRequest> } catch { throw new GemError('BAD_REQUEST', 'read: not JSON') }
    const { topic, partition } = req
    const nonNegative = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0
    if (typeof topic !== 'string' || !nonNegative(partition) || !(req.from === null || nonNegative(req.from)) ||
      !nonNegative(req.back) || !nonNegative(req.limit) || !nonNegative(req.waitMs)) {
      throw new GemError('BAD_REQUEST', 'read: needs topic, partition, from (or null), back, limit, waitMs')
    }
    const p = partition as number
    // Only a replica's log is the partition's committed log; anything else here would be a stale copy.
    if (!this.opts.hosts(topic, p)) throw new GemError('UNAVAILABLE', `this node holds no replica of ${topic}/${p}`)
    const info = this.opts.local.getTopic(topic)
    const range = info.offsets[p]
    if (range === undefined) throw new GemError('BAD_REQUEST', `topic ${topic} has no partition ${p}`)
    const from = req.from ?? Math.max(range.low, range.high - (req.back as number))
    const limit = Math.min(req.limit as number, 10_000)
    let r = await this.opts.local.read(topic, p, from, limit)
    const waitMs = Math.min(req.waitMs as number, 10_000)
    if (r.messages.length === 0 && waitMs > 0 && from >= range.high) {
      // A long poll at the end: answer as soon as the partition grows, or empty after waitMs. The tail is in place
      // before the second look, so a record appended in between is not waited past.
      let wake: () => void = () => {}
      const grown = new Promise<void>(resolve => { wake = resolve })
      const handle = await this.opts.local.tail(topic, {}, records => { if (records.some(x => x.partition === p)) wake() }, () => wake())
      try {
        r = await this.opts.local.read(topic, p, from, limit)
        if (r.messages.length === 0) {
          const timer = this.opts.clock.setTimer(waitMs, wake)
          await grown
          this.opts.clock.clearTimer(timer)
          r = await this.opts.local.read(topic, p, from, limit)
        }
      } finally {
        handle.close()
      }
    }
    return encodeRecordsFrame(r.messages.length > 0 ? r.next : Math.max(from, r.next), r.messages)
  }
}
