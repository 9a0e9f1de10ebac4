// FeedRelay: browsers feeding each other live topic deliveries over direct WebRTC (`/gem/1/feed`), so a server's
// egress does not grow with every dashboard. It dials and keeps the feeds; which browser feeds whom is the server's call.
import { GemError } from '@gem-mesh/core'
import { FEED_DELIVER_PROTOCOL, FEED_PROTOCOL, decodeDeliveryBatch, encodeDeliveryBatch } from '@gem-mesh/core/mesh'
import type { MeshNode, WireDelivery } from '@gem-mesh/core/mesh'
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
  /** An idle feed sends an empty batch this often, so a child can tell a quiet topic from a dead feed. Default 2 s. */
  heartbeatMs?: number
}

/** A feed silent for this many heartbeats is dead (a hung WebRTC connection reports no error). */
const SILENT_HEARTBEATS = 3

const te = new TextEncoder()
const td = new TextDecoder()

export class FeedRelay {
  fedBatches = 0
  /** Deliveries to a child that failed (the child is dropped; it notices the silence and falls back to a server). */
  sendFailures = 0
  /** Feeds this browser gave up on because they went silent. */
  silentFeeds = 0
  private readonly host: MeshNode
  private readonly options: FeedRelayOptions
  /** topic -> browsers we feed it to. */
  private readonly children = new Map<string, Set<string>>()
  /** browser -> topics it feeds us. */
  private readonly feeders = new Map<string, Set<string>>()
  /** browser feeding us -> when we last heard from it (any batch, heartbeats included). */
  private readonly heard = new Map<string, number>()
  /** topic -> when we last sent its children anything. */
  private readonly sentAt = new Map<string, number>()
  private off: (() => void) | undefined
  private timer: ReturnType<typeof setInterval> | undefined

  constructor (host: MeshNode, options: FeedRelayOptions) {
    this.host = host
    this.options = options
  }

  async start (): Promise<void> {
    await this.host.handle(FEED_PROTOCOL, (from, frame) => this.onRequest(from, frame))
    await this.host.handle(FEED_DELIVER_PROTOCOL, (from, frame) => { this.onBatch(from, frame) })
    this.off = this.host.on('disconnect', peer => {
      for (const set of this.children.values()) set.delete(peer)
      this.lose(peer)
    })
    const beat = this.options.heartbeatMs ?? 2_000
    this.timer = setInterval(() => { this.tick(beat) }, Math.max(50, Math.floor(beat / 2)))
  }

  /**
   * Gets `topic` fed by `feeder`: a direct WebRTC connection to it (signalled through the relay address it reported;
   * each dial has a timeout and is retried once, since a few percent of them hang), then a feed request.
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
    const topics = this.feeders.get(feeder) ?? new Set()
    topics.add(topic)
    this.feeders.set(feeder, topics)
    this.heard.set(feeder, Date.now())
    return position
  }

  leave (feeder: string, topic: string): void {
    const topics = this.feeders.get(feeder)
    if (topics === undefined || !topics.delete(topic)) return
    if (topics.size === 0) { this.feeders.delete(feeder); this.heard.delete(feeder) }
    this.askStop(feeder, topic)
  }

  private askStop (feeder: string, topic: string): void {
    void this.host.request(feeder, FEED_PROTOCOL, te.encode(JSON.stringify({ op: 'stop', topic })), { timeoutMs: 5_000 }).catch(() => {})
  }

  /** Whether this browser feeds `topic` to anyone. */
  feeding (topic: string): boolean {
    return (this.children.get(topic)?.size ?? 0) > 0
  }

  /** Live deliveries this browser got from a server: one frame, to every browser it feeds that topic. */
  forward (topic: string, deliveries: WireDelivery[]): void {
    const kids = this.children.get(topic)
    if (kids === undefined || kids.size === 0) return
    this.fedBatches += kids.size
    this.sendTo(topic, kids, encodeDeliveryBatch({ sid: topic, deliveries }))
  }

  private sendTo (topic: string, kids: Set<string>, frame: Uint8Array): void {
    this.sentAt.set(topic, Date.now())
    for (const child of kids) {
      void this.host.send(child, FEED_DELIVER_PROTOCOL, frame).catch(() => {
        // Dropped here; the child hears nothing more and goes back to a server from where it stopped.
        this.sendFailures++
        kids.delete(child)
      })
    }
  }

  /** Heartbeats to our children; feeders that went silent are given up (their subscriptions fall back to servers). */
  private tick (beat: number): void {
    const now = Date.now()
    for (const [topic, kids] of this.children) {
      if (kids.size > 0 && now - (this.sentAt.get(topic) ?? 0) >= beat) this.sendTo(topic, kids, encodeDeliveryBatch({ sid: topic, deliveries: [] }))
    }
    for (const [feeder, at] of [...this.heard]) {
      if (now - at <= beat * SILENT_HEARTBEATS) continue
      this.silentFeeds++
      // Tell the feeder too, in case only its sends are stuck.
      for (const topic of this.feeders.get(feeder) ?? []) this.askStop(feeder, topic)
      this.lose(feeder)
    }
  }

  /** Every topic `feeder` fed us is without a source now. */
  private lose (feeder: string): void {
    this.heard.delete(feeder)
    const topics = this.feeders.get(feeder)
    if (topics === undefined) return
    this.feeders.delete(feeder)
    this.options.onFeederLost(feeder, [...topics])
  }

  /** This browser no longer receives `topic` from a server: the browsers it fed must find another source. */
  stopFeeding (topic: string, stillReceiving: boolean): void {
    if (stillReceiving) return
    const kids = this.children.get(topic)
    this.children.delete(topic)
    if (kids === undefined) return
    const frame = encodeDeliveryBatch({ sid: topic, deliveries: [], end: { code: 'UNAVAILABLE', message: 'the feeding browser left the topic' } })
    for (const child of kids) void this.host.send(child, FEED_DELIVER_PROTOCOL, frame).catch(() => {})
  }

  async stop (): Promise<void> {
    this.off?.()
    if (this.timer !== undefined) clearInterval(this.timer)
    for (const [feeder, topics] of [...this.feeders]) for (const t of [...topics]) this.leave(feeder, t)
    await this.host.unhandle(FEED_PROTOCOL).catch(() => {})
    await this.host.unhandle(FEED_DELIVER_PROTOCOL).catch(() => {})
  }

  private direct (peer: string): boolean {
    return this.host.node.getConnections().some(c => c.remotePeer.toString() === peer && c.status === 'open' && transportKind(c) === 'webrtc')
  }

  private onRequest (from: string, frame: Uint8Array): Uint8Array {
    let req: { op?: unknown, topic?: unknown }
    try { req = JSON.parse(td.decode(frame)) } catch { throw new GemError('BAD_REQUEST', 'feed request: not JSON') }
    if (typeof req?.topic !== 'string' || req.topic === '') throw new GemError('BAD_REQUEST', 'feed request: topic must be a non-empty string')
    const kids = this.children.get(req.topic) ?? new Set()
    if (req.op === 'feed') {
      if (kids.size >= (this.options.maxChildren ?? 8)) throw new GemError('UNAVAILABLE', `already feeding ${kids.size} browsers ${req.topic}`)
      kids.add(from)
      this.children.set(req.topic, kids)
      // Where our deliveries stand now: the child's first batch from us starts there, and it resumes from there if we fail it.
      return te.encode(JSON.stringify({ from: this.options.position(req.topic) }))
    } else if (req.op === 'stop') {
      kids.delete(from)
    } else {
      throw new GemError('BAD_REQUEST', `feed request: unknown op ${JSON.stringify(req.op)}`)
    }
    return te.encode('{}')
  }

  private onBatch (from: string, frame: Uint8Array): void {
    const batch = decodeDeliveryBatch(frame)
    if (!this.feeders.get(from)?.has(batch.sid)) return
    this.heard.set(from, Date.now())
    if (batch.deliveries.length > 0) this.options.onRecords(from, batch.sid, batch.deliveries)
    if (batch.end !== undefined) {
      const topics = this.feeders.get(from)!
      topics.delete(batch.sid)
      if (topics.size === 0) { this.feeders.delete(from); this.heard.delete(from) }
      this.options.onFeederLost(from, [batch.sid])
    }
  }
}
