// FeedRelay: browsers feeding each other live topic deliveries over direct WebRTC (`/gem/1/feed`), so a server's
// egress does not grow with every dashboard. It dials and keeps the feeds; which browser feeds whom is the server's call.
import { GemError, toGemError } from '@gem-mesh/core'
import type { GemErrorCode } from '@gem-mesh/core'
import { FEED_PROTOCOL, decodeDeliveryBatch, encodeDeliveryBatch } from '@gem-mesh/core/mesh'
import type { DeliveryBatch, MeshNode, WireDelivery } from '@gem-mesh/core/mesh'
import { transportKind } from './transport-kind.ts'

export interface FeedRelayOptions {
  onRecords: (from: string, topic: string, deliveries: WireDelivery[]) => void
  /** The feeder went away or stopped feeding these topics: their subscriptions fall back to a server. */
  onFeederLost: (feeder: string, topics: string[]) => void
  dialTimeoutMs: number
  /** Where this browser's live deliveries of `topic` stand (per partition, the next offset): a new child starts there. */
  position: (topic: string) => Array<number | null>
  /** Browsers this one feeds per topic (the server assigns at most its own limit). Default 8. */
  maxChildren?: number
  /** A child's waiting poll on a quiet topic is answered empty this often, so it can tell quiet from dead. Default 2 s. */
  heartbeatMs?: number
  /** Deliveries held for a child that does not poll for them; beyond it the child is cut off (it resumes on a server). Default 20k. */
  maxQueuedDeliveries?: number
}

export interface FeedLink {
  peer: string
  role: 'child' | 'feeder'
  connections: Array<{ id: string, kind: string, direction: string, status: string, limited: boolean, ageMs: number, streams: string[] }>
}

/** A feed that answers no poll for this many heartbeats is dead (a hung WebRTC connection reports no error). */
const SILENT_HEARTBEATS = 3

const te = new TextEncoder()
const td = new TextDecoder()

/** What the feeder keeps for one child on one topic: deliveries since its last poll, and the poll waiting for more. */
interface ChildFeed {
  readonly child: string
  readonly topic: string
  queue: WireDelivery[]
  /** The child's poll, parked until there is something to send or a heartbeat is due. */
  parked: { answer: (frame: Uint8Array) => void, timer: ReturnType<typeof setTimeout> } | undefined
  /** When the child last polled, or when its last poll was answered: a child silent for long after that is gone. */
  seenAt: number
  end: { code: GemErrorCode, message: string } | undefined
}

/**
 * The child pulls: it long-polls the feeder (`next`) over the same stream it asked for the feed on. A feed pushed on a
 * stream the feeder opened was seen hanging for the full dial timeout on a WebRTC connection that carried the child's
 * own requests fine (the feeder's new data channel never opened), so nothing reached the child. On the child's stream,
 * a feed works exactly when the child's requests do, and an answer's arrival is the child's flow control.
 */
export class FeedRelay {
  fedBatches = 0
  /** Children this browser cut off: they stopped polling, or fell more than maxQueuedDeliveries behind. */
  childrenDropped = 0
  /** Feeds this browser gave up on because they went silent. */
  silentFeeds = 0
  /** The links to a peer when a feed with it ended: it went silent on us, or (as feeder) our child stopped it. The last 4. */
  readonly incidents: Array<{ what: string, at: number, links: FeedLink[] }> = []
  private readonly host: MeshNode
  private readonly options: FeedRelayOptions
  private readonly beatMs: number
  /** topic -> child -> what we keep for it. */
  private readonly children = new Map<string, Map<string, ChildFeed>>()
  /** browser -> topics it feeds us, each with the session its poll loop runs for (a rejoin starts a new one). */
  private readonly feeders = new Map<string, Map<string, object>>()
  private off: (() => void) | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  private hung = false

  constructor (host: MeshNode, options: FeedRelayOptions) {
    this.host = host
    this.options = options
    this.beatMs = options.heartbeatMs ?? 2_000
  }

  async start (): Promise<void> {
    await this.host.handle(FEED_PROTOCOL, (from, frame) => this.onRequest(from, frame))
    this.off = this.host.on('disconnect', peer => {
      for (const kids of this.children.values()) {
        const feed = kids.get(peer)
        if (feed !== undefined) this.dropChild(feed)
      }
      this.lose(peer)
    })
    this.timer = setInterval(() => { this.sweep() }, this.beatMs)
  }

  /**
   * Gets `topic` fed by `feeder`: a direct WebRTC connection to it (signalled through the relay address it reported;
   * each dial has a timeout and is retried once, since a few percent of them hang), then a feed request, then polls.
   * False when no direct connection came up: a relayed feed would only move the load back onto the relaying server.
   */
  async join (feeder: string, addrs: string[], topic: string): Promise<Array<number | null> | undefined> {
    if (!this.direct(feeder)) {
      // Only circuits a browser can open: through the relay's websockets or webrtc-direct address, not its tcp one.
      const candidates = addrs.filter(a => {
        const [relay, rest] = a.split('/p2p-circuit')
        return rest !== undefined && rest.startsWith('/webrtc') && a.endsWith(`/p2p/${feeder}`) && (relay.includes('/ws') || relay.includes('/webrtc-direct'))
      })
      outer: for (const addr of candidates) {
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            await this.host.dial(addr, this.options.dialTimeoutMs)
            if (this.direct(feeder)) break outer
          } catch { /* next attempt */ }
        }
      }
      if (!this.direct(feeder)) return undefined
    }
    let position: Array<number | null>
    try {
      const answer = JSON.parse(td.decode(await this.host.request(feeder, FEED_PROTOCOL, te.encode(JSON.stringify({ op: 'feed', topic })), { timeoutMs: 5_000 }))) as { from?: unknown }
      position = Array.isArray(answer.from) ? answer.from.map(o => Number.isSafeInteger(o) && (o as number) >= 0 ? o as number : null) : []
    } catch {
      return undefined
    }
    const topics = this.feeders.get(feeder) ?? new Map<string, object>()
    const session = {}
    topics.set(topic, session)
    this.feeders.set(feeder, topics)
    void this.poll(feeder, topic, session)
    return position
  }

  /** One feed's poll loop: ask for what came since the last answer, hand it on, ask again, until the feed ends. */
  private async poll (feeder: string, topic: string, session: object): Promise<void> {
    const next = te.encode(JSON.stringify({ op: 'next', topic }))
    // A late answer for a feed we left and joined again belongs to the old loop: it must not end the new feed.
    const mine = (): boolean => this.feeders.get(feeder)?.get(topic) === session
    while (mine()) {
      let batch: DeliveryBatch
      try {
        batch = decodeDeliveryBatch(await this.host.request(feeder, FEED_PROTOCOL, next, { timeoutMs: this.beatMs * SILENT_HEARTBEATS }))
      } catch (err) {
        if (!mine()) return
        if (toGemError(err).code === 'TIMEOUT') {
          this.silentFeeds++
          this.noteIncident(`feed of ${topic} from ${feeder} went silent`, feeder)
          this.askStop(feeder, topic) // in case only its answers are stuck
        }
        this.loseTopic(feeder, topic)
        return
      }
      if (!mine()) return
      if (batch.deliveries.length > 0) this.options.onRecords(feeder, topic, batch.deliveries)
      if (batch.end !== undefined) { this.loseTopic(feeder, topic); return }
    }
  }

  leave (feeder: string, topic: string): void {
    const topics = this.feeders.get(feeder)
    if (topics === undefined || !topics.delete(topic)) return
    if (topics.size === 0) this.feeders.delete(feeder)
    this.askStop(feeder, topic)
  }

  private askStop (feeder: string, topic: string): void {
    void this.host.request(feeder, FEED_PROTOCOL, te.encode(JSON.stringify({ op: 'stop', topic })), { timeoutMs: 5_000 }).catch(() => {})
  }

  /** Whether this browser feeds `topic` to anyone. */
  feeding (topic: string): boolean {
    for (const feed of this.children.get(topic)?.values() ?? []) if (feed.end === undefined) return true
    return false
  }

  /** Live deliveries this browser got from a server: queued for every browser it feeds that topic, polls answered. */
  forward (topic: string, deliveries: WireDelivery[]): void {
    const kids = this.children.get(topic)
    if (kids === undefined || kids.size === 0) return
    const max = this.options.maxQueuedDeliveries ?? 20_000
    for (const feed of kids.values()) {
      if (feed.end !== undefined) continue
      if (feed.queue.length + deliveries.length > max) {
        // It resumes on a server from its last offset; holding more would only grow this page's memory.
        this.childrenDropped++
        this.endChild(feed, 'SLOW_CONSUMER', `more than ${max} deliveries behind`)
        continue
      }
      for (const d of deliveries) feed.queue.push(d)
      this.answer(feed)
    }
  }

  /** Answers the child's parked poll with everything queued (an empty batch when nothing is: a heartbeat). */
  private answer (feed: ChildFeed): void {
    const parked = feed.parked
    if (parked === undefined || this.hung) return
    feed.parked = undefined
    clearTimeout(parked.timer)
    const deliveries = feed.queue
    feed.queue = []
    feed.seenAt = Date.now()
    if (deliveries.length > 0) this.fedBatches++
    parked.answer(encodeDeliveryBatch({ sid: feed.topic, deliveries, ...(feed.end !== undefined ? { end: feed.end } : {}) }))
    if (feed.end !== undefined) this.children.get(feed.topic)?.delete(feed.child)
  }

  /** No more deliveries for this child: its next poll (or the parked one) gets the end, then it is forgotten. */
  private endChild (feed: ChildFeed, code: GemErrorCode, message: string): void {
    feed.end = { code, message }
    feed.queue = []
    this.answer(feed)
  }

  private dropChild (feed: ChildFeed): void {
    if (feed.parked !== undefined) clearTimeout(feed.parked.timer)
    feed.parked = undefined
    const kids = this.children.get(feed.topic)
    kids?.delete(feed.child)
    if (kids?.size === 0) this.children.delete(feed.topic)
  }

  /** Children that stopped polling are cut off (their queues would only grow). */
  private sweep (): void {
    const now = Date.now()
    for (const kids of this.children.values()) {
      for (const feed of [...kids.values()]) {
        if (feed.parked !== undefined || now - feed.seenAt <= this.beatMs * SILENT_HEARTBEATS) continue
        this.childrenDropped++
        this.noteIncident(`${feed.child} stopped polling ${feed.topic}`, feed.child)
        this.dropChild(feed)
      }
    }
  }

  /** Every topic `feeder` fed us is without a source now. */
  private lose (feeder: string): void {
    const topics = this.feeders.get(feeder)
    if (topics === undefined) return
    this.feeders.delete(feeder)
    this.options.onFeederLost(feeder, [...topics.keys()])
  }

  private loseTopic (feeder: string, topic: string): void {
    const topics = this.feeders.get(feeder)
    if (topics === undefined || !topics.delete(topic)) return
    if (topics.size === 0) this.feeders.delete(feeder)
    this.options.onFeederLost(feeder, [topic])
  }

  /** This browser no longer receives `topic` from a server: the browsers it fed must find another source. */
  stopFeeding (topic: string, stillReceiving: boolean): void {
    if (stillReceiving) return
    for (const feed of [...this.children.get(topic)?.values() ?? []]) this.endChild(feed, 'UNAVAILABLE', 'the feeding browser left the topic')
  }

  async stop (): Promise<void> {
    this.off?.()
    if (this.timer !== undefined) clearInterval(this.timer)
    for (const [feeder, topics] of [...this.feeders]) for (const t of [...topics.keys()]) this.leave(feeder, t)
    for (const kids of [...this.children.values()]) for (const feed of [...kids.values()]) this.endChild(feed, 'CLOSED', 'the feeding browser is closing')
    await this.host.unhandle(FEED_PROTOCOL).catch(() => {})
  }

  /**
   * @internal For tests: from now on this browser answers no poll, heartbeats included, and reports no error — what a
   * WebRTC connection that hangs looks like to the browsers it feeds.
   */
  simulateHang (): void {
    this.hung = true
  }

  /**
   * For diagnosis: every connection to a browser we feed or that feeds us, with its transport, direction, age and the
   * protocols of its open streams (a feed going silent while both sides think it is up shows here).
   */
  links (only?: string): FeedLink[] {
    const peers = new Map<string, 'child' | 'feeder'>()
    for (const kids of this.children.values()) for (const k of kids.keys()) peers.set(k, 'child')
    for (const f of this.feeders.keys()) peers.set(f, 'feeder')
    if (only !== undefined) for (const p of [...peers.keys()]) if (p !== only) peers.delete(p)
    const now = Date.now()
    return [...peers].map(([peer, role]) => ({
      peer,
      role,
      connections: this.host.node.getConnections().filter(c => c.remotePeer.toString() === peer).map(c => ({
        id: c.id,
        kind: transportKind(c),
        direction: c.direction,
        status: c.status,
        limited: c.limits !== undefined,
        ageMs: now - c.timeline.open,
        streams: c.streams.map(st => `${st.direction}:${st.protocol ?? '?'}:${st.status}`),
      })),
    }))
  }

  private noteIncident (what: string, peer: string): void {
    this.incidents.push({ what, at: Date.now(), links: this.links(peer) })
    if (this.incidents.length > 4) this.incidents.shift()
  }

  private direct (peer: string): boolean {
    return this.host.node.getConnections().some(c => c.remotePeer.toString() === peer && c.status === 'open' && transportKind(c) === 'webrtc')
  }

  private onRequest (from: string, frame: Uint8Array): Uint8Array | Promise<Uint8Array> {
    let req: { op?: unknown, topic?: unknown }
    try { req = JSON.parse(td.decode(frame)) } catch { throw new GemError('BAD_REQUEST', 'feed request: not JSON') }
    if (typeof req?.topic !== 'string' || req.topic === '') throw new GemError('BAD_REQUEST', 'feed request: topic must be a non-empty string')
    const topic = req.topic
    const kids = this.children.get(topic) ?? new Map<string, ChildFeed>()
    if (req.op === 'feed') {
      const old = kids.get(from)
      if (old !== undefined) this.endChild(old, 'UNAVAILABLE', 'superseded by a new feed request')
      else if (kids.size >= (this.options.maxChildren ?? 8)) throw new GemError('UNAVAILABLE', `already feeding ${kids.size} browsers ${topic}`)
      kids.set(from, { child: from, topic, queue: [], parked: undefined, seenAt: Date.now(), end: undefined })
      this.children.set(topic, kids)
      // Where our deliveries stand now: the child's first answer from us starts there, and it resumes from there if we fail it.
      return te.encode(JSON.stringify({ from: this.options.position(topic) }))
    }
    if (req.op === 'next') {
      const feed = kids.get(from)
      if (feed === undefined) throw new GemError('UNAVAILABLE', `not feeding ${topic} to ${from}`)
      feed.seenAt = Date.now()
      // One poll at a time per feed; an older one still parked (a retry after a hiccup) gets an empty answer.
      if (feed.parked !== undefined) this.answer(feed)
      return new Promise<Uint8Array>(resolve => {
        feed.parked = { answer: resolve, timer: setTimeout(() => { this.answer(feed) }, this.beatMs) }
        if (feed.queue.length > 0 || feed.end !== undefined) this.answer(feed)
      })
    }
    if (req.op === 'stop') {
      const feed = kids.get(from)
      if (feed !== undefined) {
        this.noteIncident(`${from} asked to stop ${topic}`, from)
        this.endChild(feed, 'CLOSED', 'the child stopped the feed')
        this.dropChild(feed)
      }
      return te.encode('{}')
    }
    throw new GemError('BAD_REQUEST', `feed request: unknown op ${JSON.stringify(req.op)}`)
  }
}
