// createBrowserPeer: a browser as an edge peer of the mesh — libp2p (websockets, webrtc-direct, circuit-relay
// signalling, direct WebRTC), the Gem API through the server node it is attached to (`/gem/1/client`), failover to
// other servers (server-link.ts), live deliveries fed by other browsers (feed-relay.ts), IndexedDB cache, journal, outbox.
// It owns no partitions and stores nothing the mesh depends on.
import { webSockets } from '@libp2p/websockets'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import type { Connection } from '@libp2p/interface'
import {
  Broker, GemError, MemoryTier, Subscription, assertTopicName, encodePayload, toGemError, untilAborted,
} from '@gem-mesh/core'
import type {
  ConsumerHandle, ConsumerOptions, Delivery, Gem, GemRecord, MessageHandler, PublishOptions, PublishResult, ReadResult,
  ReceivedMessage, StorageTier, SubscribeOptions, TopicConfig, TopicInfo,
} from '@gem-mesh/core'
import {
  CLIENT_DELIVER_PROTOCOL, GROUP_STATE_PROTOCOL, MembershipService, PeerDirectory, TOPICS_PROTOCOL,
  createMeshHost, decodeDeliveryBatch, decodeRecordsFrame,
} from '@gem-mesh/core/mesh'
import type { MeshNode, WireDelivery } from '@gem-mesh/core/mesh'
import { checkBootstrap, resolveBootstrap } from './bootstrap.ts'
import type { PreferredTransport, ServerTarget } from './bootstrap.ts'
import { ServerLink } from './server-link.ts'
import { FeedRelay } from './feed-relay.ts'
import type { FeedLink } from './feed-relay.ts'
import { GroupJournal } from './group-journal.ts'
import { IndexedDbTier } from './indexeddb-tier.ts'
import { Outbox } from './outbox.ts'
import { RecordCache } from './record-cache.ts'
import { transportKind } from './transport-kind.ts'
import type { TransportKind } from './transport-kind.ts'

export interface BrowserPeerOptions {
  /** Server-node multiaddrs (/ws with /p2p/<id>, or webrtc-direct with certhash) or gateway base urls (read through GET /info). */
  bootstrap: string[]
  /** Where the cache, group journal and outbox live. Default 'indexeddb'. */
  storage?: 'indexeddb' | 'memory'
  /** IndexedDB database name prefix, so that two pages or tests do not share a cache. Default 'gem'. */
  name?: string
  /**
   * When no bootstrap server answers: true resolves anyway, offline (reads from the cache, publishes queue, servers
   * are asked again every 2 s) — what an offline-first page reloaded without network wants; false (default) rejects
   * with PEER_UNREACHABLE, so that a caller can fall back to another client (the dashboard falls back to /ws).
   */
  startOffline?: boolean
  /** Which server transport to dial first. Default 'websockets'. */
  prefer?: PreferredTransport
  /** Take live topic deliveries from other browsers over direct WebRTC, and feed them to others. Default true. */
  feeds?: boolean
  /** Join SWIM membership as an edge member (role browser: owns no partitions). Default true. */
  membership?: boolean
  /** ICE servers for WebRTC. Default none: loopback and LAN candidates only (libp2p's default asks public STUN servers). */
  iceServers?: RTCIceServer[]
  /** One dial attempt's limit (dials are retried once: a few percent of WebRTC dials hang). Default 8 s. */
  dialTimeoutMs?: number
  /** Default 10 s. */
  requestTimeoutMs?: number
}

export interface PeerSummary {
  id: string
  role: 'server' | 'browser'
  transports: TransportKind[]
}

/** Where one delivery came from: the server node this peer is attached to, or a browser that fed it. */
export interface DeliveryPath {
  via: 'server' | 'browser'
  peer: string
  /** How the connection it arrived on reaches that peer, read from the connection when the batch arrived. */
  transport: TransportKind | undefined
}

export interface BrowserPeerStats {
  delivered: { server: number, browser: number }
  /** Deliveries by the transport of the connection they arrived on. */
  byTransport: Partial<Record<TransportKind, number>>
  /** Redeliveries dropped because the journal had them as processed (after a reload). */
  duplicatesDropped: number
  /** Live batches this peer forwarded to other browsers. */
  fedBatches: number
  /**
   * Live subscriptions: feeders asked for, offered by the server, joined over direct WebRTC, failed (then served by a
   * server); feeds given up because they went silent, and browsers we fed that we cut off (they stopped polling or fell too far behind).
   */
  feeds: { asked: number, offered: number, joined: number, failed: number, silent: number, childrenDropped: number }
  /** Connections to the browsers this peer feeds or is fed by, with their streams (for diagnosing a silent feed). */
  feedLinks: FeedLink[]
  /** The last few feeds that ended by silence or a stop from their child, with the links at that moment. */
  feedIncidents: FeedRelay['incidents']
  queuedPublishes: number
  /** Why queued publishes are still waiting (the last transient failure), if they are. */
  outboxError?: string
  server: string | undefined
  /** Where each subscription's deliveries come from now: a server node, a feeding browser, or nowhere (reattaching). */
  subscriptions: Array<{ topic: string, mode: 'tail' | 'consume', group?: string, server?: string, feeder?: string }>
}

export interface BrowserPeer extends Gem {
  /** The libp2p peer id. */
  readonly id: string
  peers(): PeerSummary[]
  /** Called when connections, roles or `online` change; returns the unsubscribe function. */
  onPeersChange(fn: () => void): () => void
  /** False while no server node is reachable: publishes queue, reads come from the cache. */
  readonly online: boolean
  /** The server node (peer id) requests go to now. */
  readonly server: string | undefined
  /** How a delivered message reached this page. */
  deliveryPath(msg: ReceivedMessage | GemRecord): DeliveryPath | undefined
  stats(): BrowserPeerStats
  /** Resolves once the cache and group journals have written everything received so far (e.g. on `pagehide`). */
  flush(): Promise<void>
  /** The local tier (IndexedDB or memory) holding the cache, journals and outbox. */
  readonly tier: StorageTier
  /** The libp2p host (for diagnostics). */
  readonly host: MeshNode
}

interface RemoteSub {
  readonly sid: string
  readonly topic: string
  readonly opts: ConsumerOptions
  readonly mode: 'tail' | 'consume'
  readonly group: string
  readonly deliver: (d: Delivery) => void
  readonly onEnd: ((err: GemError) => void) | undefined
  journal: GroupJournal | undefined
  /** The server node it is subscribed on; its deliveries are accepted from there only. */
  onServer: string | undefined
  /** The browser feeding it (joining or joined); its deliveries are accepted from there only. */
  feeder: string | undefined
  /** Tail mode: the highest offset handed out per partition, so that a switch between sources neither repeats nor reorders. */
  readonly high: Map<number, number>
  /**
   * Tail mode: per partition, the first offset expected while none was handed out yet (the server's or feeder's answer).
   * With `high`, where a new source resumes, so that a failover or feed switch loses nothing still retained.
   */
  readonly start: Map<number, number>
  /** Times a server-served live subscription asked for a feeder (it stops asking after a few). */
  feedTries: number
  starting: boolean
  /** Live and feeds enabled; false once a feeder it had went away (it then stays on servers). */
  feedable: boolean
  closed: boolean
  /** Consume mode: where each in-flight tag points, for the journal. */
  readonly tags: Map<string, { partition: number, offset: number }>
  acks: Array<{ op: 'ack' | 'nack', tag: string, delayMs: number | undefined, resolve: (ok: boolean) => void }>
  acksScheduled: boolean
}

const te = new TextEncoder()
const td = new TextDecoder()
const TRANSIENT = new Set(['PEER_UNREACHABLE', 'CLOSED', 'TIMEOUT', 'UNAVAILABLE', 'NO_QUORUM', 'NOT_LEADER'])
const RECONCILE_MS = 1_000
const TOPICS_REFRESH_MS = 5_000

export async function createBrowserPeer (options: BrowserPeerOptions): Promise<BrowserPeer> {
  if (typeof options !== 'object' || options === null) throw new GemError('BAD_REQUEST', 'createBrowserPeer: options are required')
  checkBootstrap(options.bootstrap)
  // No server reachable now (a reload while offline): with startOffline, start from the cache; the list is asked again.
  const targets = await resolveBootstrap(options.bootstrap, options.prefer).catch(err => {
    if (GemError.is(err, 'PEER_UNREACHABLE') && options.startOffline === true) return []
    throw err
  })
  const prefix = options.name ?? 'gem'
  const tier: StorageTier = (options.storage ?? 'indexeddb') === 'indexeddb' ? await IndexedDbTier.open(`${prefix}-peer`) : new MemoryTier()
  const rtcConfiguration = { iceServers: options.iceServers ?? [] }
  let host: MeshNode
  try {
    host = await createMeshHost({
      transports: [webSockets(), webRTC({ rtcConfiguration }), webRTCDirect({ rtcConfiguration }), circuitRelayTransport()],
      // A reservation on a server's relay (signalling for browser-to-browser WebRTC) and the WebRTC listener.
      listen: ['/p2p-circuit', '/webrtc'],
      dialDiscovered: false,
      dhtClientMode: true,
      maxConnections: 64,
      dialTimeoutMs: options.dialTimeoutMs ?? 8_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    })
  } catch (err) {
    await tier.close()
    throw err
  }
  const peer = new BrowserPeerImpl(host, tier, targets, options)
  try {
    await peer.start()
  } catch (err) {
    await peer.close()
    throw err
  }
  return peer
}

class BrowserPeerImpl implements BrowserPeer {
  readonly host: MeshNode
  readonly tier: StorageTier
  readonly id: string
  broker!: Broker
  private readonly options: BrowserPeerOptions
  private readonly link: ServerLink
  private readonly subs = new Map<string, RemoteSub>()
  private readonly subscriptions = new Set<Subscription>()
  private readonly listeners = new Set<() => void>()
  private readonly paths = new WeakMap<GemRecord, DeliveryPath>()
  private readonly cache: RecordCache
  private readonly outbox: Outbox
  private readonly feed: FeedRelay
  private directory: PeerDirectory | undefined
  private swim: MembershipService | undefined
  private topicList: TopicInfo[] = []
  private topicsAt = 0
  private timer: ReturnType<typeof setTimeout> | undefined
  private closing: Promise<void> | undefined
  private seq = 0
  private readonly counters = { server: 0, browser: 0, duplicatesDropped: 0, byTransport: {} as Partial<Record<TransportKind, number>> }
  private readonly feedCounters = { asked: 0, offered: 0, joined: 0, failed: 0 }
  private readonly offs: Array<() => void> = []

  constructor (host: MeshNode, tier: StorageTier, targets: ServerTarget[], options: BrowserPeerOptions) {
    this.host = host
    this.tier = tier
    this.id = host.peerId
    this.options = options
    this.link = new ServerLink(host, targets, {
      bootstrap: options.bootstrap,
      ...(options.prefer !== undefined ? { prefer: options.prefer } : {}),
      dialTimeoutMs: options.dialTimeoutMs ?? 8_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      // Our relayed WebRTC addresses: where another browser dials us to be fed.
      helloAddrs: () => this.host.multiaddrs().filter(a => a.includes('/p2p-circuit') && a.includes('/webrtc')),
      cards: () => this.directory?.peers() ?? [],
      onAttach: server => this.attachedTo(server),
    })
    this.cache = new RecordCache(tier)
    this.outbox = new Outbox(tier)
    this.feed = new FeedRelay(host, {
      onRecords: (from, topic, ds) => { this.fromFeeder(from, topic, ds) },
      onFeederLost: (feeder, topics) => { this.feederLost(feeder, topics) },
      dialTimeoutMs: options.dialTimeoutMs ?? 8_000,
      position: topic => this.livePosition(topic),
    })
  }

  get online (): boolean { return this.link.attached !== undefined }
  get server (): string | undefined { return this.link.attached }

  async start (): Promise<void> {
    // A local engine on memory, for the Gem type's `broker`: page-local scratch, never the mesh.
    this.broker = await Broker.open({ tier: new MemoryTier() })
    await this.outbox.load()
    const saved = await this.tier.getMeta('topics')
    if (saved !== undefined) { try { this.topicList = JSON.parse(td.decode(saved)) as TopicInfo[] } catch { /* refreshed when online */ } }

    await this.host.handle(CLIENT_DELIVER_PROTOCOL, (from, frame) => { this.onDeliveries(from, frame) })
    // Server nodes send every connected peer topic syncs and group state; an edge peer holds neither, it answers
    // with nothing so that the servers do not retry and log.
    await this.host.handle(TOPICS_PROTOCOL, () => te.encode('{"topics":[]}'))
    await this.host.handle(GROUP_STATE_PROTOCOL, () => {})
    await this.feed.start()

    this.offs.push(this.host.on('disconnect', peer => { this.onDisconnect(peer) }))
    this.offs.push(this.host.on('connect', () => { this.changed(); this.schedule(0) }))
    const node = this.host.node
    const onConn = (): void => { this.changed() }
    // Our addresses change when a relay reservation is made or lost: tell the server where feeds can dial us.
    const onSelf = (): void => { void this.link.hello().catch(() => {}) }
    node.addEventListener('connection:open', onConn)
    node.addEventListener('connection:close', onConn)
    node.addEventListener('self:peer:update', onSelf)
    this.offs.push(() => {
      node.removeEventListener('connection:open', onConn)
      node.removeEventListener('connection:close', onConn)
      node.removeEventListener('self:peer:update', onSelf)
    })

    const dir = new PeerDirectory(this.host, () => ({ nodeId: this.id, peerId: this.id, multiaddrs: this.host.multiaddrs(), role: 'browser' }))
    await dir.start()
    this.directory = dir

    // None answering: with startOffline the peer starts offline (reads from the cache, publishes queue) and keeps trying.
    if (!await this.link.connectFirst() && this.options.startOffline !== true) {
      throw new GemError('PEER_UNREACHABLE', `no bootstrap server answered (${this.link.describe()})`)
    }
    await this.reconcile()

    if (this.options.membership ?? true) {
      const swim = new MembershipService({ transport: this.host, meta: { node: this.id, role: 'browser' } })
      await swim.start()
      this.swim = swim
    }
    this.schedule(RECONCILE_MS)
  }

  // ---- Gem API ----------------------------------------------------------------------------------

  async publish (topic: string, payload: Uint8Array | string | unknown, opts?: PublishOptions): Promise<PublishResult> {
    this.assertOpen()
    assertTopicName(topic)
    const { signal, ...rest } = opts ?? {}
    signal?.throwIfAborted()
    const { bytes, headers } = encodePayload(payload)
    // The id is chosen here so that a publish retried after a lost answer, or flushed from the outbox, is deduplicated.
    const input: Record<string, unknown> = { ...rest, id: rest.id ?? randomId() }
    if (headers !== undefined) input.headers = { ...(rest.headers ?? {}), ...headers }
    if (this.link.attached !== undefined && this.outbox.size === 0) {
      try {
        return await this.publishNow(topic, input, bytes)
      } catch (err) {
        const e = toGemError(err)
        if (!TRANSIENT.has(e.code)) throw e
      }
    }
    const p = this.outbox.add(topic, input, bytes)
    this.changed()
    void this.flushOutbox()
    return await untilAborted(p, signal)
  }

  subscribe (topic: string, a?: MessageHandler | SubscribeOptions, b?: SubscribeOptions): Subscription {
    const handler = typeof a === 'function' ? a : undefined
    const opts = (typeof a === 'function' ? b : a) ?? {}
    let sub: Subscription | undefined
    sub = new Subscription(topic, opts, handler, {
      broker: { consume: (t, o, deliver, onEnd) => this.consume(t, o, deliver, onEnd) },
      isOpen: () => this.closing === undefined,
      onClose: () => { if (sub !== undefined) this.subscriptions.delete(sub) },
    })
    if (!sub.closed) this.subscriptions.add(sub)
    return sub
  }

  async read (topic: string, opts: { partition?: number, from?: number, limit?: number } = {}): Promise<ReadResult> {
    this.assertOpen()
    const partition = opts.partition ?? 0
    const from = opts.from ?? 0
    const limit = opts.limit ?? 100
    if (this.link.attached !== undefined) {
      try {
        const { next, records } = decodeRecordsFrame(await this.request({ op: 'read', topic, partition, from, limit }))
        this.cache.add(records)
        return { messages: records, next }
      } catch (err) {
        if (!TRANSIENT.has(toGemError(err).code)) throw err
      }
    }
    return await this.cache.read(topic, partition, from, limit)
  }

  readonly topics = {
    create: async (name: string, config?: TopicConfig): Promise<TopicInfo> => {
      const info = JSON.parse(td.decode(await this.request({ op: 'topics', action: 'create', name, config: config ?? {} }))) as TopicInfo
      await this.refreshTopics()
      return info
    },
    list: (): TopicInfo[] => [...this.topicList],
    get: (name: string): TopicInfo => {
      const t = this.topicList.find(x => x.name === name)
      if (t === undefined) throw new GemError('TOPIC_NOT_FOUND', `topic ${name} is not known to this browser peer (topics.refresh() asks the server)`)
      return t
    },
    delete: async (name: string): Promise<void> => {
      await this.request({ op: 'topics', action: 'delete', name })
      await this.refreshTopics()
    },
    /** Asks the server for the current list (list() and get() answer from the last one, also offline). */
    refresh: (): Promise<TopicInfo[]> => this.refreshTopics(),
  }

  peers (): PeerSummary[] {
    const byPeer = new Map<string, Set<TransportKind>>()
    for (const conn of this.host.node.getConnections()) {
      const id = conn.remotePeer.toString()
      const set = byPeer.get(id) ?? new Set()
      set.add(transportKind(conn))
      byPeer.set(id, set)
    }
    return [...byPeer.entries()].map(([id, kinds]) => ({ id, role: this.roleOf(id), transports: [...kinds].sort() }))
      .sort((x, y) => x.role === y.role ? (x.id < y.id ? -1 : 1) : x.role === 'server' ? -1 : 1)
  }

  onPeersChange (fn: () => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  deliveryPath (msg: ReceivedMessage | GemRecord): DeliveryPath | undefined {
    const record = 'record' in msg ? msg.record : msg
    return this.paths.get(record)
  }

  stats (): BrowserPeerStats {
    return {
      delivered: { server: this.counters.server, browser: this.counters.browser },
      byTransport: { ...this.counters.byTransport },
      duplicatesDropped: this.counters.duplicatesDropped,
      fedBatches: this.feed.fedBatches,
      feeds: { ...this.feedCounters, silent: this.feed.silentFeeds, childrenDropped: this.feed.childrenDropped },
      feedLinks: this.feed.links(),
      feedIncidents: [...this.feed.incidents],
      queuedPublishes: this.outbox.size,
      ...(this.outbox.lastError !== undefined && this.outbox.size > 0 ? { outboxError: this.outbox.lastError } : {}),
      server: this.link.attached,
      subscriptions: [...this.subs.values()].map(sub => ({
        topic: sub.topic,
        mode: sub.mode,
        ...(sub.opts.group !== undefined ? { group: sub.opts.group } : {}),
        ...(sub.onServer !== undefined ? { server: sub.onServer } : {}),
        ...(sub.feeder !== undefined ? { feeder: sub.feeder } : {}),
      })),
    }
  }

  async flush (): Promise<void> {
    await this.cache.flushed()
    await Promise.all([...this.subs.values()].map(s => s.journal?.flushed()))
  }

  close (): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer !== undefined) clearTimeout(this.timer)
      this.link.close()
      for (const s of [...this.subscriptions]) s.close()
      for (const off of this.offs.splice(0)) off()
      await this.swim?.stop(0).catch(() => {})
      await this.directory?.stop().catch(() => {})
      await this.feed.stop()
      await this.cache.flushed()
      await this.host.stop().catch(() => {})
      await this.broker?.close().catch(() => {})
      await this.tier.close()
      this.listeners.clear()
    })()
    return this.closing
  }

  // ---- subscriptions ----------------------------------------------------------------------------

  private async consume (topic: string, opts: ConsumerOptions, deliver: (d: Delivery) => void, onEnd?: (err: GemError) => void): Promise<ConsumerHandle> {
    this.assertOpen()
    assertTopicName(topic)
    const sid = `${this.id.slice(-6)}.${++this.seq}`
    // A live subscription (no group, from now on) is a tail: no acks, and it can be fed by another browser.
    const mode = opts.group === undefined && (opts.from === undefined || opts.from === 'latest') ? 'tail' : 'consume'
    const sub: RemoteSub = {
      sid, topic, opts, mode, group: opts.group ?? `_ephemeral.${sid}`, deliver, onEnd,
      journal: opts.group !== undefined ? await GroupJournal.open(this.tier, topic, opts.group) : undefined,
      onServer: undefined, feeder: undefined, high: new Map(), start: new Map(), feedTries: 0, starting: false, feedable: (this.options.feeds ?? true) && mode === 'tail', closed: false,
      tags: new Map(), acks: [], acksScheduled: false,
    }
    this.subs.set(sid, sub)
    if (this.link.attached !== undefined) {
      try {
        await this.startSub(sub)
      } catch (err) {
        const e = toGemError(err)
        if (!TRANSIENT.has(e.code)) { this.subs.delete(sid); throw e }
      }
    }
    const handle: ConsumerHandle = {
      id: sid,
      group: sub.group,
      ack: tag => this.settle(sub, 'ack', tag),
      nack: (tag, delayMs) => this.settle(sub, 'nack', tag, delayMs),
      close: () => { this.closeSub(sub) },
    }
    return handle
  }

  /** Attaches `sub` to a feeding browser (live subscriptions, when the server names one) or to the server. */
  private async startSub (sub: RemoteSub): Promise<void> {
    const server = this.link.attached
    if (server === undefined || sub.closed || sub.starting || sub.onServer !== undefined || sub.feeder !== undefined) return
    sub.starting = true
    try {
      if (sub.feedable && await this.tryFeeder(sub)) return
      // Accept its deliveries from the moment we ask: the first ones may overtake the answer.
      sub.onServer = server
      const resume = sub.mode === 'tail' ? resumePoints(sub) : []
      const answer = JSON.parse(td.decode(await this.request({
        op: 'subscribe', sid: sub.sid, topic: sub.topic, mode: sub.mode, opts: sub.opts, ...(resume.length > 0 ? { resume } : {}),
      }))) as { from?: unknown }
      if (sub.mode === 'tail') noteStart(sub, answer.from)
      if (sub.closed) void this.request({ op: 'unsubscribe', sid: sub.sid }).catch(() => {})
    } catch (err) {
      if (sub.onServer === server) sub.onServer = undefined
      const e = toGemError(err)
      if ((e.code === 'TOPIC_NOT_FOUND' || e.code === 'BAD_REQUEST') && this.subs.has(sub.sid)) this.endSub(sub, e)
      throw e
    } finally {
      sub.starting = false
    }
  }

  /**
   * Asks the server for a browser that already receives this topic live and joins its feed over direct WebRTC.
   * False when none is offered or it cannot be reached directly (then this subscription stays on servers).
   */
  private async tryFeeder (sub: RemoteSub): Promise<boolean> {
    sub.feedTries++
    this.feedCounters.asked++
    const answer = JSON.parse(td.decode(await this.request({ op: 'feeder', topic: sub.topic }))) as { peerId: string | null, addrs?: string[] }
    if (answer.peerId === null) return false
    this.feedCounters.offered++
    sub.feeder = answer.peerId
    const position = await this.feed.join(answer.peerId, answer.addrs ?? [], sub.topic)
    if (position !== undefined) {
      this.feedCounters.joined++
      noteStart(sub, position)
      if (sub.closed) { this.feed.leave(answer.peerId, sub.topic); return true }
      this.changed()
      return true
    }
    // Not reachable directly this time (a hung WebRTC dial, a feeder gone meanwhile): served by a server for now;
    // upgradeToFeed asks again a bounded number of times.
    this.feedCounters.failed++
    sub.feeder = undefined
    void this.request({ op: 'unfed', topic: sub.topic }).catch(() => {})
    return false
  }

  /**
   * A live subscription served by a server, made before any other browser received the topic: a feeder may exist now.
   * Once the feed is joined the server subscription is dropped; offsets keep the switch free of repeats.
   */
  private async upgradeToFeed (sub: RemoteSub): Promise<void> {
    if (sub.starting || sub.closed || !sub.feedable || sub.feeder !== undefined || sub.onServer === undefined || sub.feedTries >= 10) return
    // A browser feeding others keeps its server subscription: its feed is what they hang on.
    if (this.feed.feeding(sub.topic)) return
    const server = sub.onServer
    sub.starting = true
    try {
      if (!await this.tryFeeder(sub) || sub.closed) return
      if (sub.onServer === server) {
        sub.onServer = undefined
        void this.request({ op: 'unsubscribe', sid: sub.sid }).catch(() => {})
      }
      this.feed.stopFeeding(sub.topic, this.receivesFromServer(sub.topic))
    } finally {
      sub.starting = false
    }
  }

  /** Where this page's live deliveries of `topic` from a server stand: a browser we start feeding begins there. */
  private livePosition (topic: string): Array<number | null> {
    const s = this.serverTail(topic)
    return s === undefined ? [] : resumePoints(s)
  }

  private receivesFromServer (topic: string): boolean {
    return this.serverTail(topic) !== undefined
  }

  /** A live subscription to `topic` that a server serves (not a feeding browser). */
  private serverTail (topic: string): RemoteSub | undefined {
    for (const s of this.subs.values()) if (s.topic === topic && s.mode === 'tail' && s.onServer !== undefined && !s.closed) return s
    return undefined
  }

  private endSub (sub: RemoteSub, err: GemError): void {
    if (sub.closed) return
    sub.closed = true
    this.subs.delete(sub.sid)
    try { sub.onEnd?.(err) } catch { /* the subscriber's own */ }
  }

  private closeSub (sub: RemoteSub): void {
    if (sub.closed) return
    sub.closed = true
    this.subs.delete(sub.sid)
    this.feed.stopFeeding(sub.topic, this.receivesFromServer(sub.topic))
    if (sub.feeder !== undefined) {
      this.feed.leave(sub.feeder, sub.topic)
      void this.request({ op: 'unfed', topic: sub.topic }).catch(() => {})
    }
    if (sub.onServer !== undefined && sub.onServer === this.link.attached) void this.request({ op: 'unsubscribe', sid: sub.sid }).catch(() => {})
    for (const a of sub.acks.splice(0)) a.resolve(false)
  }

  private onDeliveries (from: string, frame: Uint8Array): void {
    const batch = decodeDeliveryBatch(frame) // a malformed frame throws: the transport reports it and keeps the stream
    const sub = this.subs.get(batch.sid)
    if (sub === undefined || sub.closed) return
    // Deliveries from a server this subscription has left (a late batch after failover) are not ours to process.
    if (sub.onServer !== from) return
    if (batch.deliveries.length > 0) {
      const path: DeliveryPath = { via: 'server', peer: from, transport: this.kindOf(from) }
      this.take(sub, batch.deliveries, path)
      if (sub.mode === 'tail') this.feed.forward(sub.topic, batch.deliveries)
    }
    if (batch.end !== undefined) this.endSub(sub, new GemError(batch.end.code, batch.end.message))
  }

  private fromFeeder (from: string, topic: string, ds: WireDelivery[]): void {
    const path: DeliveryPath = { via: 'browser', peer: from, transport: this.kindOf(from) }
    for (const sub of this.subs.values()) {
      if (sub.topic === topic && sub.feeder === from) this.take(sub, ds, path)
    }
  }

  private feederLost (feeder: string, topics: string[]): void {
    for (const sub of this.subs.values()) {
      if (sub.feeder !== feeder || !topics.includes(sub.topic)) continue
      sub.feeder = undefined
      sub.feedable = false
      void this.startSub(sub).catch(() => {})
    }
    this.changed()
  }

  private take (sub: RemoteSub, ds: WireDelivery[], path: DeliveryPath): void {
    this.cache.add(ds.map(d => d.record))
    for (const d of ds) {
      const { partition, offset } = d.record
      if (sub.journal !== undefined) {
        if (sub.journal.processed(partition, offset)) {
          // Processed before a reload (or before the server heard our ack): settle it, never hand it out again.
          this.counters.duplicatesDropped++
          if (d.tag !== '') this.queueSettle(sub, 'ack', d.tag, undefined, () => {})
          continue
        }
        sub.journal.seen(partition, offset)
      }
      if (sub.mode === 'tail') {
        // Two sources during a switch (server and feeder) overlap: hand out each offset once, in order.
        if (offset <= (sub.high.get(partition) ?? -1)) continue
        sub.high.set(partition, offset)
      }
      const tag = d.tag !== '' ? d.tag : `${partition}.${offset}.${d.attempt}`
      if (sub.mode === 'consume') sub.tags.set(tag, { partition, offset })
      this.paths.set(d.record, path)
      this.counters[path.via]++
      if (path.transport !== undefined) this.counters.byTransport[path.transport] = (this.counters.byTransport[path.transport] ?? 0) + 1
      sub.deliver({ tag, topic: sub.topic, group: sub.group, attempt: d.attempt, record: d.record })
    }
  }

  private async settle (sub: RemoteSub, op: 'ack' | 'nack', tag: string, delayMs?: number): Promise<boolean> {
    // Live subscriptions take no acks: a nack cannot redeliver what was never held for us.
    if (sub.mode === 'tail') return true
    const at = sub.tags.get(tag)
    sub.tags.delete(tag)
    if (op === 'ack' && at !== undefined && sub.journal !== undefined) await sub.journal.mark(at.partition, at.offset)
    if (sub.closed || this.link.attached === undefined) return false
    return await new Promise<boolean>(resolve => { this.queueSettle(sub, op, tag, delayMs, resolve) })
  }

  /** Settles made in one turn go as one request per subscription and kind. */
  private queueSettle (sub: RemoteSub, op: 'ack' | 'nack', tag: string, delayMs: number | undefined, resolve: (ok: boolean) => void): void {
    sub.acks.push({ op, tag, delayMs, resolve })
    if (sub.acksScheduled) return
    sub.acksScheduled = true
    queueMicrotask(() => {
      sub.acksScheduled = false
      const all = sub.acks.splice(0)
      const acks = all.filter(a => a.op === 'ack')
      if (acks.length > 0) this.sendSettle(sub, 'ack', acks, undefined)
      for (const n of all.filter(a => a.op === 'nack')) this.sendSettle(sub, 'nack', [n], n.delayMs)
    })
  }

  private sendSettle (sub: RemoteSub, op: 'ack' | 'nack', items: RemoteSub['acks'], delayMs: number | undefined): void {
    const tags = items.map(i => i.tag)
    this.request({ op, sid: sub.sid, tags, ...(delayMs !== undefined ? { delayMs } : {}) }).then(bytes => {
      const r = JSON.parse(td.decode(bytes)) as { unknown?: string[] }
      const unknown = new Set(r.unknown ?? [])
      for (const i of items) i.resolve(!unknown.has(i.tag))
    }, () => { for (const i of items) i.resolve(false) })
  }

  // ---- servers ----------------------------------------------------------------------------------

  private async request (head: Record<string, unknown>, body?: Uint8Array): Promise<Uint8Array> {
    return await this.link.request(head, body)
  }

  private async publishNow (topic: string, input: Record<string, unknown>, payload: Uint8Array): Promise<PublishResult> {
    return JSON.parse(td.decode(await this.request({ op: 'publish', topic, input }, payload))) as PublishResult
  }

  private async flushOutbox (): Promise<void> {
    await this.outbox.flush(async (topic, input, payload) => await this.publishNow(topic, input, payload), err => TRANSIENT.has(toGemError(err).code))
    this.changed()
  }

  /** Keeps the server link up, then restarts subscriptions that lost their source and sends what waits. */
  private async reconcile (): Promise<void> {
    if (this.closing !== undefined) return
    await this.link.tick()
    if (this.link.attached !== undefined) {
      for (const sub of this.subs.values()) {
        if (sub.onServer === undefined && sub.feeder === undefined) void this.startSub(sub).catch(() => {})
        else void this.upgradeToFeed(sub).catch(() => {})
      }
      if (this.outbox.size > 0) void this.flushOutbox()
      if (Date.now() - this.topicsAt > TOPICS_REFRESH_MS) void this.refreshTopics().catch(() => {})
    }
  }

  /** Attached (first time or after a failover): subscriptions without a source start again, queued publishes go. */
  private async attachedTo (_server: string): Promise<void> {
    this.changed()
    await Promise.allSettled([...this.subs.values()].filter(s => s.onServer === undefined && s.feeder === undefined).map(s => this.startSub(s)))
    void this.flushOutbox()
    await this.refreshTopics().catch(() => {})
  }

  private onDisconnect (peer: string): void {
    if (this.link.disconnected(peer)) {
      for (const sub of this.subs.values()) if (sub.onServer === peer) sub.onServer = undefined
      for (const sub of this.subs.values()) sub.tags.clear()
    }
    this.changed()
    this.schedule(0)
  }

  private async refreshTopics (): Promise<TopicInfo[]> {
    const list = JSON.parse(td.decode(await this.request({ op: 'topics', action: 'list' }))) as TopicInfo[]
    this.topicList = list
    this.topicsAt = Date.now()
    void this.tier.write({ chunks: [], meta: [{ key: 'topics', value: te.encode(JSON.stringify(list)) }], sync: false }).catch(() => {})
    return list
  }

  private schedule (ms: number): void {
    if (this.closing !== undefined) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.reconcile().catch(() => {}).finally(() => { if (this.timer === undefined) this.schedule(RECONCILE_MS) })
    }, ms)
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private roleOf (peer: string): 'server' | 'browser' {
    const card = this.directory?.get(peer)
    if (card !== undefined) return card.role
    return this.link.isServer(peer) ? 'server' : 'browser'
  }

  /** The transport of the best open connection to `peer` (direct before relayed), as streams pick it. */
  private kindOf (peer: string): TransportKind | undefined {
    const conns: Connection[] = this.host.node.getConnections().filter(c => c.remotePeer.toString() === peer && c.status === 'open')
    const direct = conns.find(c => c.limits === undefined) ?? conns[0]
    return direct === undefined ? undefined : transportKind(direct)
  }

  private changed (): void {
    for (const fn of this.listeners) { try { fn() } catch { /* a listener's failure is its own */ } }
  }

  private assertOpen (): void {
    if (this.closing !== undefined) throw new GemError('CLOSED', 'the browser peer is closed')
  }
}

/** Where a live subscription resumes on a new source: per partition, after the last offset handed out, or its start. */
function resumePoints (sub: RemoteSub): Array<number | null> {
  const n = Math.max(-1, ...sub.high.keys(), ...sub.start.keys()) + 1
  return Array.from({ length: n }, (_, p) => {
    const high = sub.high.get(p)
    return high !== undefined ? high + 1 : sub.start.get(p) ?? null
  })
}

/** A source's answer says where its deliveries start; the earliest such point is kept for partitions not yet seen. */
function noteStart (sub: RemoteSub, from: unknown): void {
  if (!Array.isArray(from)) return
  from.forEach((at, p) => {
    if (!Number.isSafeInteger(at) || at < 0 || sub.high.has(p)) return
    const known = sub.start.get(p)
    if (known === undefined || at < known) sub.start.set(p, at)
  })
}

function randomId (): string {
  return crypto.randomUUID()
}
