// ClientService: the server-node side of `/gem/1/client` — edge peers (browsers) publish, subscribe, settle, read and
// manage topics through the node they are attached to, and are pointed at other browsers that can feed them live.
// It holds each edge peer's subscriptions while it is connected; it never stores anything of its own.
import type { AckResult, BrokerApi, ConsumerHandle, ConsumerOptions, Delivery, TailHandle, TailOptions, TopicConfig } from '../broker-types.ts'
import { GemError } from '../errors.ts'
import { decodeHeadBody } from '../head-body.ts'
import type { GemRecord, PublishInput } from '../message.ts'
import {
  CLIENT_DELIVER_PROTOCOL, CLIENT_PROTOCOL, encodeDeliveryBatch, encodeRecordsFrame,
} from './client-wire.ts'
import type { WireDelivery } from './client-wire.ts'
import type { MeshTransport } from './transport.ts'

export interface ClientServiceOptions {
  readonly transport: MeshTransport
  /** What clients use: the mesh broker (publishes go to partition leaders, groups to their home). */
  readonly api: BrokerApi
  /** Browsers one browser feeds live deliveries of one topic to. Default 4. */
  readonly maxFeedChildren?: number
  /** Batches sent to one edge peer and not yet accepted by its stream before its subscription ends SLOW_CONSUMER. Default 2,000. */
  readonly maxPendingBatches?: number
  readonly onError?: (where: string, err: unknown) => void
}

export interface ClientServiceStats {
  clients: number
  subscriptions: number
  /** Edge peers this node pointed at another browser for a topic's live deliveries, instead of serving them itself. */
  fedByBrowsers: number
}

/** A subscription of an edge peer: a tail (live, no acks) or a group consumer (acks come back as settle requests). */
interface ClientSub {
  readonly topic: string
  readonly mode: 'tail' | 'consume'
  handle: ConsumerHandle | TailHandle | undefined
  closed: boolean
  pending: WireDelivery[]
  scheduled: boolean
}

interface Session {
  readonly peer: string
  /** Order of arrival: a browser is only ever fed by one that came before it, so feeds never form a cycle. */
  readonly seq: number
  /** Its listen addresses (circuit-relay /webrtc ones): where another browser dials it to be fed. */
  addrs: string[]
  readonly subs: Map<string, ClientSub>
  /** topic -> the browser feeding it that topic (assigned by this node). */
  readonly fedBy: Map<string, string>
  /** Frames handed to the transport and not yet accepted (backpressure). */
  pendingSends: number
}

const te = new TextEncoder()
const MAX_SID_LENGTH = 64
/** Deliveries per client-deliver frame: ~150 KiB of 256-byte messages, far below the 8 MiB frame limit. */
const DELIVERIES_PER_FRAME = 512

export class ClientService {
  private readonly transport: MeshTransport
  private readonly api: BrokerApi
  private readonly maxFeedChildren: number
  private readonly maxPendingBatches: number
  private readonly onError: (where: string, err: unknown) => void
  private readonly sessions = new Map<string, Session>()
  private readonly offs: Array<() => void> = []
  private closed = false
  private sessionSeq = 0

  constructor (options: ClientServiceOptions) {
    this.transport = options.transport
    this.api = options.api
    this.maxFeedChildren = options.maxFeedChildren ?? 4
    this.maxPendingBatches = options.maxPendingBatches ?? 2_000
    this.onError = options.onError ?? (() => {})
  }

  async start (): Promise<void> {
    await this.transport.handle(CLIENT_PROTOCOL, (from, frame) => this.onRequest(from, frame))
    // An edge peer that goes away takes its subscriptions with it: unacknowledged group deliveries return to the group.
    this.offs.push(this.transport.on('disconnect', peer => { this.dropSession(peer) }))
  }

  stats (): ClientServiceStats {
    let subscriptions = 0
    let fed = 0
    for (const s of this.sessions.values()) { subscriptions += s.subs.size; fed += s.fedBy.size }
    return { clients: this.sessions.size, subscriptions, fedByBrowsers: fed }
  }

  /** Edge peers attached here (peer id and the addresses they reported). */
  clients (): Array<{ peerId: string, addrs: string[], subscriptions: number }> {
    return [...this.sessions.values()].map(s => ({ peerId: s.peer, addrs: [...s.addrs], subscriptions: s.subs.size }))
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const off of this.offs.splice(0)) off()
    for (const peer of [...this.sessions.keys()]) this.dropSession(peer)
    await this.transport.unhandle(CLIENT_PROTOCOL).catch(() => {})
  }

  // ---- requests ---------------------------------------------------------------------------------

  private async onRequest (from: string, frame: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new GemError('CLOSED', 'the client service is closed')
    const { head: h, body } = decodeHeadBody(frame, 'client request')
    if (typeof h !== 'object' || h === null || Array.isArray(h)) throw new GemError('BAD_REQUEST', 'client request: the head is not an object')
    const req = h as Record<string, unknown>
    const session = this.session(from)
    switch (req.op) {
      case 'hello': {
        if (req.addrs !== undefined) session.addrs = stringList(req.addrs, 'addrs').slice(0, 32)
        return json({ peerId: this.transport.localPeerId })
      }
      case 'publish': {
        const topic = str(req.topic, 'topic')
        const input = req.input ?? {}
        if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new GemError('BAD_REQUEST', 'publish: input must be an object')
        const result = await this.api.publish(topic, { ...(input as Omit<PublishInput, 'payload'>), payload: body.slice() })
        return json(result)
      }
      case 'subscribe': return json(await this.subscribe(session, req))
      case 'unsubscribe': {
        const sid = str(req.sid, 'sid')
        this.closeSub(session, sid)
        return json({})
      }
      case 'ack':
      case 'nack': {
        const sid = str(req.sid, 'sid')
        const tags = stringList(req.tags, 'tags')
        const delayMs = req.delayMs
        if (delayMs !== undefined && (!Number.isInteger(delayMs) || (delayMs as number) < 0)) throw new GemError('BAD_REQUEST', 'delayMs must be a non-negative integer')
        const sub = session.subs.get(sid)
        if (sub === undefined || sub.mode !== 'consume' || sub.handle === undefined) return json({ acked: 0, unknown: tags } satisfies AckResult)
        const handle = sub.handle as ConsumerHandle
        const results = await Promise.all(tags.map(t => req.op === 'ack' ? handle.ack(t) : handle.nack(t, delayMs as number | undefined)))
        return json({ acked: results.filter(Boolean).length, unknown: tags.filter((_, i) => !results[i]) } satisfies AckResult)
      }
      case 'topics': return json(await this.topics(req))
      case 'read': {
        const topic = str(req.topic, 'topic')
        const partition = int(req.partition ?? 0, 'partition')
        const fromOffset = int(req.from ?? 0, 'from')
        const limit = Math.min(int(req.limit ?? 100, 'limit'), 10_000)
        const r = await this.api.read(topic, partition, fromOffset, limit)
        return encodeRecordsFrame(r.next, r.messages)
      }
      case 'feeder': return json(this.findFeeder(session, str(req.topic, 'topic')))
      case 'unfed': {
        session.fedBy.delete(str(req.topic, 'topic'))
        return json({})
      }
      default: throw new GemError('BAD_REQUEST', `client request: unknown op ${JSON.stringify(req.op)}`)
    }
  }

  private async subscribe (session: Session, req: Record<string, unknown>): Promise<Record<string, unknown>> {
    const sid = str(req.sid, 'sid')
    if (sid.length > MAX_SID_LENGTH) throw new GemError('BAD_REQUEST', `sid longer than ${MAX_SID_LENGTH} characters`)
    const topic = str(req.topic, 'topic')
    const mode = req.mode === 'tail' ? 'tail' : req.mode === 'consume' ? 'consume' : undefined
    if (mode === undefined) throw new GemError('BAD_REQUEST', 'subscribe: mode must be "tail" or "consume"')
    const opts = (req.opts ?? {}) as ConsumerOptions & { lastN?: number }
    if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new GemError('BAD_REQUEST', 'subscribe: opts must be an object')
    if (opts.group !== undefined && typeof opts.group !== 'string') throw new GemError('BAD_REQUEST', 'subscribe: opts.group must be a string')
    // A resubscription with the same id (after a reconnect) replaces the old one.
    this.closeSub(session, sid)
    const sub: ClientSub = { topic, mode, handle: undefined, closed: false, pending: [], scheduled: false }
    session.subs.set(sid, sub)
    // Served here now: whoever fed this peer that topic is no longer needed.
    if (mode === 'tail') session.fedBy.delete(topic)
    const onEnd = (err: GemError): void => {
      if (sub.closed) return
      this.flush(session, sid, sub, { code: err.code, message: err.message })
      sub.closed = true
      session.subs.delete(sid)
    }
    try {
      if (mode === 'tail') {
        const lastN = opts.lastN === undefined ? undefined : int(opts.lastN, 'opts.lastN')
        // A peer switching servers or feeds says where it stopped: the tail replays from there, so the switch loses nothing.
        // The broker checks the resume points (an array of non-negative offsets or nulls) and refuses others with BAD_REQUEST.
        const resume = req.resume as TailOptions['from']
        const tailOpts = { ...(lastN !== undefined ? { lastN } : {}), ...(resume !== undefined ? { from: resume } : {}) }
        sub.handle = await this.api.tail(topic, tailOpts, records => { this.queue(session, sid, sub, tailDeliveries(records)) }, onEnd)
      } else {
        const { group, from, maxInFlight, ackWaitMs, maxDeliver, backoffMs, maxBackoffMs } = opts
        const consumerOpts: ConsumerOptions = Object.fromEntries(Object.entries({ group, from, maxInFlight, ackWaitMs, maxDeliver, backoffMs, maxBackoffMs }).filter(([, v]) => v !== undefined))
        sub.handle = await this.api.consume(topic, consumerOpts, (d: Delivery) => { this.queue(session, sid, sub, [{ tag: d.tag, attempt: d.attempt, record: d.record }]) }, onEnd)
      }
    } catch (err) {
      session.subs.delete(sid)
      sub.closed = true
      throw err
    }
    if (sub.closed || this.sessions.get(session.peer) !== session) { sub.handle.close(); session.subs.delete(sid) }
    return { group: (sub.handle as Partial<ConsumerHandle>).group ?? null, from: (sub.handle as Partial<TailHandle>).from ?? null }
  }

  private async topics (req: Record<string, unknown>): Promise<unknown> {
    switch (req.action) {
      case 'list': return this.api.listTopics()
      case 'get': return this.api.getTopic(str(req.name, 'name'))
      case 'create': return await this.api.createTopic(str(req.name, 'name'), (req.config ?? {}) as TopicConfig)
      case 'delete': await this.api.deleteTopic(str(req.name, 'name')); return {}
      default: throw new GemError('BAD_REQUEST', `topics: unknown action ${JSON.stringify(req.action)}`)
    }
  }

  /**
   * A browser attached here that receives `topic` live from this node (not through another browser), reported a
   * circuit-relay address to be dialled on, and feeds fewer than maxFeedChildren others. The asker is recorded as fed
   * by it, so the next asker counts it.
   */
  private findFeeder (asker: Session, topic: string): { peerId: string, addrs: string[] } | { peerId: null } {
    for (const s of this.sessions.values()) {
      if (s === asker || s.seq > asker.seq || s.addrs.length === 0) continue
      const tailing = [...s.subs.values()].some(sub => sub.topic === topic && sub.mode === 'tail' && !sub.closed)
      if (!tailing) continue
      let children = 0
      for (const other of this.sessions.values()) if (other.fedBy.get(topic) === s.peer) children++
      if (children >= this.maxFeedChildren) continue
      asker.fedBy.set(topic, s.peer)
      return { peerId: s.peer, addrs: [...s.addrs] }
    }
    return { peerId: null }
  }

  // ---- deliveries -------------------------------------------------------------------------------

  /** Deliveries made in one turn travel as one frame. */
  private queue (session: Session, sid: string, sub: ClientSub, ds: WireDelivery[]): void {
    if (sub.closed) return
    for (const d of ds) sub.pending.push(d)
    if (sub.scheduled) return
    sub.scheduled = true
    queueMicrotask(() => { sub.scheduled = false; this.flush(session, sid, sub) })
  }

  private flush (session: Session, sid: string, sub: ClientSub, end?: { code: GemError['code'], message: string }): void {
    if (sub.closed) return
    const deliveries = sub.pending
    sub.pending = []
    if (deliveries.length === 0 && end === undefined) return
    if (session.pendingSends >= this.maxPendingBatches && end === undefined) {
      // The peer reads slower than the topic is written: end this subscription loudly rather than buffer without bound.
      this.flush(session, sid, sub, { code: 'SLOW_CONSUMER', message: `edge peer ${session.peer} is too slow for ${sub.topic}` })
      this.closeSub(session, sid)
      return
    }
    // A tail's first batch can be a whole backlog (lastN): cut it into frames well under the frame limit.
    for (let i = 0; i < deliveries.length || (i === 0 && end !== undefined); i += DELIVERIES_PER_FRAME) {
      const part = deliveries.slice(i, i + DELIVERIES_PER_FRAME)
      const last = i + DELIVERIES_PER_FRAME >= deliveries.length
      let frame: Uint8Array
      try {
        frame = encodeDeliveryBatch({ sid, deliveries: part, ...(end !== undefined && last ? { end } : {}) })
      } catch (err) {
        this.onError('client-deliver-encode', err)
        return
      }
      session.pendingSends++
      this.transport.send(session.peer, CLIENT_DELIVER_PROTOCOL, frame).then(
        () => { session.pendingSends-- },
        err => { session.pendingSends--; this.onError('client-deliver', err) },
      )
    }
  }

  // ---- sessions ---------------------------------------------------------------------------------

  private session (peer: string): Session {
    let s = this.sessions.get(peer)
    if (s === undefined) {
      s = { peer, seq: ++this.sessionSeq, addrs: [], subs: new Map(), fedBy: new Map(), pendingSends: 0 }
      this.sessions.set(peer, s)
    }
    return s
  }

  private closeSub (session: Session, sid: string): void {
    const sub = session.subs.get(sid)
    if (sub === undefined) return
    sub.closed = true
    session.subs.delete(sid)
    try { sub.handle?.close() } catch (err) { this.onError('client-unsubscribe', err) }
  }

  private dropSession (peer: string): void {
    const s = this.sessions.get(peer)
    if (s === undefined) return
    this.sessions.delete(peer)
    for (const sid of [...s.subs.keys()]) this.closeSub(s, sid)
    // Peers it fed fall back to a server (they notice the connection to it closing); forget the assignments.
    for (const other of this.sessions.values()) for (const [t, by] of other.fedBy) if (by === peer) other.fedBy.delete(t)
  }
}

function tailDeliveries (records: GemRecord[]): WireDelivery[] {
  return records.map(record => ({ tag: '', attempt: 1, record }))
}

function json (v: unknown): Uint8Array { return te.encode(JSON.stringify(v)) }

function str (v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new GemError('BAD_REQUEST', `${what} must be a non-empty string`)
  return v
}

function int (v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new GemError('BAD_REQUEST', `${what} must be a non-negative integer`)
  return v as number
}

function stringList (v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some(x => typeof x !== 'string')) throw new GemError('BAD_REQUEST', `${what} must be an array of strings`)
  return v as string[]
}
