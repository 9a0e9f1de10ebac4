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
  /** Browsers this one feeds per topic (the server assigns at most its own limit). Default 8. */
  maxChildren?: number
}

const te = new TextEncoder()
const td = new TextDecoder()

export class FeedRelay {
  fedBatches = 0
  private readonly host: MeshNode
  private readonly options: FeedRelayOptions
  /** topic -> browsers we feed it to. */
  private readonly children = new Map<string, Set<string>>()
  /** browser -> topics it feeds us. */
  private readonly feeders = new Map<string, Set<string>>()
  private off: (() => void) | undefined

  constructor (host: MeshNode, options: FeedRelayOptions) {
    this.host = host
    this.options = options
  }

  async start (): Promise<void> {
    await this.host.handle(FEED_PROTOCOL, (from, frame) => this.onRequest(from, frame))
    await this.host.handle(FEED_DELIVER_PROTOCOL, (from, frame) => { this.onBatch(from, frame) })
    this.off = this.host.on('disconnect', peer => {
      for (const set of this.children.values()) set.delete(peer)
      const topics = this.feeders.get(peer)
      if (topics !== undefined) {
        this.feeders.delete(peer)
        this.options.onFeederLost(peer, [...topics])
      }
    })
  }

  /**
   * Gets `topic` fed by `feeder`: a direct WebRTC connection to it (signalled through the relay address it reported;
   * each dial has a timeout and is retried once, since a few percent of them hang), then a feed request.
   * False when no direct connection came up: a relayed feed would only move the load back onto the relaying server.
   */
  async join (feeder: string, addrs: string[], topic: string): Promise<boolean> {
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
      if (!this.direct(feeder)) return false
    }
    try {
      await this.host.request(feeder, FEED_PROTOCOL, te.encode(JSON.stringify({ op: 'feed', topic })), { timeoutMs: 5_000 })
    } catch {
      return false
    }
    const topics = this.feeders.get(feeder) ?? new Set()
    topics.add(topic)
    this.feeders.set(feeder, topics)
    return true
  }

  leave (feeder: string, topic: string): void {
    const topics = this.feeders.get(feeder)
    if (topics === undefined || !topics.delete(topic)) return
    if (topics.size === 0) this.feeders.delete(feeder)
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
    const frame = encodeDeliveryBatch({ sid: topic, deliveries })
    for (const child of kids) {
      this.fedBatches++
      void this.host.send(child, FEED_DELIVER_PROTOCOL, frame).catch(() => { kids.delete(child) })
    }
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
    if (batch.deliveries.length > 0) this.options.onRecords(from, batch.sid, batch.deliveries)
    if (batch.end !== undefined) {
      const topics = this.feeders.get(from)!
      topics.delete(batch.sid)
      if (topics.size === 0) this.feeders.delete(from)
      this.options.onFeederLost(from, [batch.sid])
    }
  }
}
