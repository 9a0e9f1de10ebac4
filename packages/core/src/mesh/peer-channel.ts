// Libp2pMeshTransport: MeshTransport over a libp2p node — one long-lived, batched stream per peer and protocol.
// Owns dialing, write coalescing, backpressure, request correlation and gossip framing; never owns the libp2p node's life.
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Libp2p, PeerId, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { GossipSub, Message as GossipMessage } from '@libp2p/gossipsub'
import { GemError, toGemError } from '../errors.ts'
import {
  FRAME, FrameDecoder, MAX_FRAME_BYTES, STREAM_ERROR_ID, decodeErrorPayload, encodeErrorPayload, encodeFrame,
  encodedFrameSize, writeFrame,
} from './frames.ts'
import type { Frame, FrameType } from './frames.ts'
import { PROTOCOL_PREFIX, gossipTopic } from './transport.ts'
import type { FrameHandler, GossipHandler, MeshTransport, MeshTransportEvents, RequestOptions } from './transport.ts'

export interface MeshTransportOptions {
  /** A dial that has not produced a stream by then fails with PEER_UNREACHABLE (some dials hang). Default 5 s. */
  readonly dialTimeoutMs?: number
  /** Largest frame payload sent or accepted. Default MAX_FRAME_BYTES (8 MiB). */
  readonly maxFrameBytes?: number
  /** Bytes queued per peer and protocol before `send` waits. Default 4 MiB. */
  readonly maxQueuedBytes?: number
  /** Default timeout of `request`. Default 10 s. */
  readonly requestTimeoutMs?: number
  /** Inbound streams per protocol per connection: one per peer is the norm, restarts leave a few. Default 16. */
  readonly maxInboundStreams?: number
}

/** The services the transport needs on the node: gossipsub under `pubsub`. */
export type MeshServices = { pubsub: GossipSub }

const RESOLVED: Promise<void> = Promise.resolve()
const EMPTY = new Uint8Array(0)
const ignore = (): void => {}

interface Deferred<T> {
  promise: Promise<T>
  resolve: (v: T) => void
  reject: (e: unknown) => void
}

function deferred<T> (): Deferred<T> {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  promise.catch(ignore) // rejection is for whoever awaits; nobody awaiting is not a crash
  return { promise, resolve, reject }
}

/**
 * Frames waiting to be written to one stream, flushed as one buffer per microtask. It pauses while the
 * stream asks for drain, so under load batches grow by themselves (Nagle without a timer).
 */
class FrameWriter {
  readonly #onError: (err: unknown) => void
  #stream: Stream | undefined
  #types: FrameType[] = []
  #ids: number[] = []
  #payloads: Uint8Array[] = []
  #bytes = 0
  #scheduled = false
  #draining = false
  #afterFlush: (() => void) | undefined

  constructor (onError: (err: unknown) => void, afterFlush?: () => void) {
    this.#onError = onError
    this.#afterFlush = afterFlush
  }

  get bytes (): number { return this.#bytes }
  get length (): number { return this.#payloads.length }

  attach (stream: Stream | undefined): void {
    this.#stream = stream
    this.#draining = false
    if (stream !== undefined && this.#payloads.length > 0) this.schedule()
  }

  push (type: FrameType, id: number, payload: Uint8Array): void {
    this.#types.push(type)
    this.#ids.push(id)
    this.#payloads.push(payload)
    this.#bytes += encodedFrameSize(type, id, payload.length)
    this.schedule()
  }

  /** Requests in the queue (for rejecting them when the stream is gone for good). */
  * queuedRequestIds (): Generator<number> {
    for (let i = 0; i < this.#types.length; i++) if (this.#types[i] === FRAME.REQUEST) yield this.#ids[i]
  }

  clear (): void {
    this.#types = []
    this.#ids = []
    this.#payloads = []
    this.#bytes = 0
  }

  schedule (): void {
    if (this.#scheduled || this.#stream === undefined) return
    this.#scheduled = true
    queueMicrotask(() => { this.#scheduled = false; this.flush() })
  }

  /** Writes everything queued in one `send`, unless the stream asked for drain. */
  flush (): void {
    const stream = this.#stream
    if (stream === undefined || this.#payloads.length === 0 || this.#draining) return
    if (stream.writableNeedsDrain) {
      // The 'drain' event, not stream.onDrain(): @libp2p/utils 7.4.1 never resets onDrain's promise, so after
      // the first drain it resolves at once while the stream still needs drain, and flushing would spin forever.
      // A stream that closes instead of draining is handled by its close listener.
      this.#draining = true
      stream.addEventListener('drain', () => {
        if (this.#stream !== stream) return
        this.#draining = false
        this.flush()
      }, { once: true })
      return
    }
    const buf = new Uint8Array(this.#bytes)
    let at = 0
    const types = this.#types
    const ids = this.#ids
    const payloads = this.#payloads
    for (let i = 0; i < payloads.length; i++) at = writeFrame(buf, at, types[i], ids[i], payloads[i])
    this.clear()
    try {
      stream.send(buf)
    } catch (err) {
      this.#onError(err)
    }
    this.#afterFlush?.()
  }
}

/** The outbound side for one (peer, protocol): dial on demand, queue, backpressure, responses, reconnect. */
class OutboundChannel {
  readonly peerId: string
  readonly protocol: string
  readonly #transport: Libp2pMeshTransport
  readonly #writer: FrameWriter
  #state: 'idle' | 'opening' | 'open' | 'closed' = 'idle'
  #stream: Stream | undefined
  #opened: Deferred<void> | undefined
  // Senders that found the queue full, in arrival order; admitted as the writer empties.
  #waiters: Array<{ type: FrameType, id: number, payload: Uint8Array, d: Deferred<void> }> = []
  /** A stream-level error the peer answered with (e.g. VERSION_MISMATCH): sends fail with it until the peer reconnects. */
  fatal: GemError | undefined
  /** Requests written on the current stream: they die with it. */
  readonly inFlight = new Set<number>()

  constructor (transport: Libp2pMeshTransport, peerId: string, protocol: string) {
    this.#transport = transport
    this.peerId = peerId
    this.protocol = protocol
    this.#writer = new FrameWriter(err => { this.#streamFailed(this.#stream, err) }, () => { this.#admitWaiters() })
  }

  send (type: FrameType, id: number, payload: Uint8Array): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new GemError('CLOSED', 'mesh transport is closed'))
    if (this.fatal !== undefined) return Promise.reject(this.fatal)
    if (this.#waiters.length > 0 || this.#writer.bytes >= this.#transport.maxQueuedBytes) {
      const d = deferred<void>()
      this.#waiters.push({ type, id, payload, d })
      this.#ensureOpen()
      return d.promise
    }
    this.#enqueue(type, id, payload)
    if (this.#state === 'open') return RESOLVED
    this.#ensureOpen()
    return (this.#opened as Deferred<void>).promise
  }

  #enqueue (type: FrameType, id: number, payload: Uint8Array): void {
    this.#writer.push(type, id, payload)
    if (type === FRAME.REQUEST) this.#transport.requestQueued(id, this)
  }

  #admitWaiters (): void {
    const max = this.#transport.maxQueuedBytes
    while (this.#waiters.length > 0 && this.#writer.bytes < max) {
      const w = this.#waiters.shift()!
      this.#enqueue(w.type, w.id, w.payload)
      w.d.resolve()
    }
  }

  #ensureOpen (): void {
    if (this.#state !== 'idle') return
    this.#state = 'opening'
    this.#opened = deferred<void>()
    this.#transport.openStream(this.peerId, this.protocol).then(stream => {
      if (this.#state === 'closed') { stream.abort(new GemError('CLOSED', 'mesh transport is closed')); return }
      this.#attach(stream)
    }, err => {
      if (this.#state === 'closed') return
      this.#state = 'idle'
      this.#failQueued(err)
      this.#transport.dropIfIdle(this)
    })
  }

  #attach (stream: Stream): void {
    this.#state = 'open'
    this.#stream = stream
    const decoder = new FrameDecoder({ maxFrameBytes: this.#transport.maxFrameBytes })
    const onFrame = (f: Frame): void => { this.#onFrame(stream, f) }
    stream.addEventListener('message', (evt: StreamMessageEvent) => {
      try {
        decoder.push(evt.data, onFrame)
      } catch (err) {
        this.#refused(stream, toGemError(err))
      }
    })
    stream.addEventListener('close', evt => { this.#streamClosed(stream, evt.error) })
    this.#writer.attach(stream)
    const opened = this.#opened
    this.#opened = undefined
    opened?.resolve()
  }

  #onFrame (stream: Stream, f: Frame): void {
    if (this.fatal !== undefined) return // the rest of a chunk after the stream was refused
    if (f.type === FRAME.RESPONSE) {
      this.inFlight.delete(f.id)
      this.#transport.settleRequest(f.id, f.payload, undefined)
    } else if (f.type === FRAME.ERROR) {
      const err = decodeErrorPayload(f.payload)
      if (f.id !== STREAM_ERROR_ID) {
        this.inFlight.delete(f.id)
        this.#transport.settleRequest(f.id, undefined, err)
        return
      }
      this.#refused(stream, err)
    } else {
      this.#refused(stream, new GemError('BAD_REQUEST', `unexpected frame type ${f.type} from ${this.peerId} on our ${this.protocol} stream`))
    }
  }

  /**
   * The stream cannot go on: the peer refused it (ERROR id 0: mixed versions, a frame it could not parse) or
   * sent us what we cannot parse. Fail loudly — requests, queued senders and later sends get this error until
   * the peer reconnects — rather than redial into the same failure.
   */
  #refused (stream: Stream, err: GemError): void {
    if (this.fatal !== undefined) return
    this.fatal = err
    this.#transport.emitError(err, this.peerId)
    for (const id of this.inFlight) this.#transport.settleRequest(id, undefined, err)
    this.inFlight.clear()
    this.#failQueued(err)
    stream.abort(err)
  }

  #streamFailed (stream: Stream | undefined, err: unknown): void {
    stream?.abort(err instanceof Error ? err : new Error(String(err)))
  }

  #streamClosed (stream: Stream, error: Error | undefined): void {
    if (this.#stream !== stream) return
    this.#stream = undefined
    this.#writer.attach(undefined)
    const gone = new GemError('PEER_UNREACHABLE', `stream ${this.protocol} to ${this.peerId} closed${error !== undefined ? `: ${error.message}` : ''}`)
    for (const id of this.inFlight) this.#transport.settleRequest(id, undefined, gone)
    this.inFlight.clear()
    if (this.#state === 'closed') return
    this.#state = 'idle'
    // Frames still queued go out on a new stream: a restarted peer is reached again without the caller noticing.
    if (this.fatal === undefined && (this.#writer.length > 0 || this.#waiters.length > 0)) this.#ensureOpen()
    else this.#transport.dropIfIdle(this)
  }

  /** Rejects everyone waiting on this channel's queue; frames already accepted are dropped (at most once). */
  #failQueued (err: unknown): void {
    const e = toGemError(err)
    for (const id of this.#writer.queuedRequestIds()) this.#transport.settleRequest(id, undefined, e)
    this.#writer.clear()
    const opened = this.#opened
    this.#opened = undefined
    opened?.reject(e)
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w.d.reject(e)
  }

  /** The peer went away: forget a stream-level verdict, it may come back upgraded. */
  peerDisconnected (): void {
    this.fatal = undefined
  }

  close (): void {
    if (this.#state === 'closed') return
    const stream = this.#stream
    this.#failQueued(new GemError('CLOSED', 'mesh transport is closed'))
    this.#state = 'closed'
    if (stream !== undefined) stream.close().catch(() => { stream.abort(new Error('closing')) })
  }

  /** Nothing to keep: no stream, nothing queued, no verdict to remember. */
  get idle (): boolean {
    return this.#state === 'idle' && this.#writer.length === 0 && this.#waiters.length === 0 && this.fatal === undefined
  }
}

interface PendingRequest {
  resolve: (v: Uint8Array) => void
  reject: (e: unknown) => void
  timer: ReturnType<typeof setTimeout>
  channel: OutboundChannel | undefined
  cleanup: () => void
}

/** MeshTransport over a started libp2p node with gossipsub under `services.pubsub`. */
export class Libp2pMeshTransport implements MeshTransport {
  readonly localPeerId: string
  readonly node: Libp2p<MeshServices>
  readonly maxFrameBytes: number
  readonly maxQueuedBytes: number
  readonly #dialTimeoutMs: number
  readonly #requestTimeoutMs: number
  readonly #maxInboundStreams: number
  readonly #channels = new Map<string, OutboundChannel>()
  readonly #handlers = new Map<string, FrameHandler>()
  readonly #inbound = new Set<Stream>()
  readonly #pending = new Map<number, PendingRequest>()
  readonly #listeners: { [E in keyof MeshTransportEvents]: Set<MeshTransportEvents[E]> } = {
    connect: new Set(), disconnect: new Set(), error: new Set(),
  }
  readonly #gossip = new Map<string, Set<GossipHandler>>()
  #nextRequestId = 1
  #closed = false
  readonly #onConnect: (evt: CustomEvent<PeerId>) => void
  readonly #onDisconnect: (evt: CustomEvent<PeerId>) => void
  readonly #onGossip: (evt: CustomEvent<GossipMessage>) => void

  constructor (node: Libp2p<MeshServices>, options: MeshTransportOptions = {}) {
    this.node = node
    this.localPeerId = node.peerId.toString()
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES
    this.maxQueuedBytes = options.maxQueuedBytes ?? 4 * 1024 * 1024
    this.#dialTimeoutMs = options.dialTimeoutMs ?? 5_000
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000
    this.#maxInboundStreams = options.maxInboundStreams ?? 16
    this.#onConnect = evt => { this.#emit('connect', evt.detail.toString()) }
    this.#onDisconnect = evt => {
      const peer = evt.detail.toString()
      for (const ch of this.#channels.values()) {
        if (ch.peerId !== peer) continue
        ch.peerDisconnected()
        this.dropIfIdle(ch)
      }
      this.#emit('disconnect', peer)
    }
    this.#onGossip = evt => { this.#deliverGossip(evt.detail) }
    node.addEventListener('peer:connect', this.#onConnect)
    node.addEventListener('peer:disconnect', this.#onDisconnect)
    node.services.pubsub.addEventListener('message', this.#onGossip)
  }

  // ------------------------------------------------------------------------------------ frames

  send (peerId: string, protocol: string, frame: Uint8Array): Promise<void> {
    if (frame.length > this.maxFrameBytes) return Promise.reject(tooLarge(frame.length, this.maxFrameBytes))
    let ch: OutboundChannel
    try { ch = this.#channel(peerId, protocol) } catch (err) { return Promise.reject(err) }
    return ch.send(FRAME.DATA, 0, frame)
  }

  request (peerId: string, protocol: string, frame: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new GemError('CLOSED', 'mesh transport is closed'))
    if (frame.length > this.maxFrameBytes) return Promise.reject(tooLarge(frame.length, this.maxFrameBytes))
    let channel: OutboundChannel
    try {
      options.signal?.throwIfAborted()
      channel = this.#channel(peerId, protocol)
    } catch (err) {
      return Promise.reject(err)
    }
    const id = this.#nextRequestId
    this.#nextRequestId = id === 0xFFFFFFFF ? 1 : id + 1 // 0 is STREAM_ERROR_ID
    const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs
    return new Promise<Uint8Array>((resolve, reject) => {
      const signal = options.signal
      const onAbort = (): void => { this.settleRequest(id, undefined, signal?.reason ?? new GemError('TIMEOUT', 'request aborted')) }
      const timer = setTimeout(() => {
        this.settleRequest(id, undefined, new GemError('TIMEOUT', `no response from ${peerId} on ${protocol} within ${timeoutMs} ms`))
      }, timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(id, { resolve, reject, timer, channel: undefined, cleanup: () => { signal?.removeEventListener('abort', onAbort) } })
      channel.send(FRAME.REQUEST, id, frame).catch(err => { this.settleRequest(id, undefined, err) })
    })
  }

  /** @internal a REQUEST entered a channel's queue; it now dies with that channel's stream. */
  requestQueued (id: number, channel: OutboundChannel): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    p.channel = channel
    channel.inFlight.add(id)
  }

  /** @internal channels come and go with streams, so a long-lived node does not keep one per peer it ever met. */
  dropIfIdle (channel: OutboundChannel): void {
    const key = `${channel.peerId}\n${channel.protocol}`
    if (channel.idle && this.#channels.get(key) === channel) this.#channels.delete(key)
  }

  /** @internal */
  settleRequest (id: number, payload: Uint8Array | undefined, err: unknown): void {
    const p = this.#pending.get(id)
    if (p === undefined) return // late response after a timeout
    this.#pending.delete(id)
    clearTimeout(p.timer)
    p.cleanup()
    p.channel?.inFlight.delete(id)
    if (err !== undefined) p.reject(toGemError(err))
    else p.resolve(payload as Uint8Array)
  }

  async handle (protocol: string, handler: FrameHandler): Promise<void> {
    assertProtocol(protocol)
    if (this.#closed) throw new GemError('CLOSED', 'mesh transport is closed')
    const fresh = !this.#handlers.has(protocol)
    this.#handlers.set(protocol, handler)
    if (!fresh) return
    await this.node.handle(protocol, (stream, connection) => { this.#accept(protocol, stream, connection) }, {
      maxInboundStreams: this.#maxInboundStreams,
      runOnLimitedConnection: true, // relayed browser peers must reach us too
    })
  }

  async unhandle (protocol: string): Promise<void> {
    if (!this.#handlers.delete(protocol)) return
    await this.node.unhandle(protocol)
  }

  /** @internal */
  async openStream (peerId: string, protocol: string): Promise<Stream> {
    let peer: PeerId
    try {
      peer = peerIdFromString(peerId)
    } catch {
      throw new GemError('BAD_REQUEST', `not a peer id: ${peerId}`)
    }
    const signal = AbortSignal.timeout(this.#dialTimeoutMs)
    let timer: ReturnType<typeof setTimeout> | undefined
    // The signal should end the dial; the race covers dials that ignore it.
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`dial timed out after ${this.#dialTimeoutMs} ms`)) }, this.#dialTimeoutMs + 250)
    })
    // An open direct (unlimited) connection first: libp2p may otherwise pick a relayed one, which is for signalling (a
    // stream on it lives only as long as the relay's circuit and its limits). Among direct ones, one the peer opened a
    // stream on, the newest such: simultaneous dials between two browsers can leave a second WebRTC connection that
    // only one side has, and streams opened on it never finish negotiating (seen as a browser feed that went silent).
    const direct = this.node.getConnections(peer).filter(c => c.status === 'open' && c.limits === undefined)
    const used = direct.filter(c => c.streams.some(st => st.direction === 'inbound' && st.protocol !== undefined && st.protocol !== ''))
    const pick = used.length > 0 ? used[used.length - 1] : direct[direct.length - 1]
    const dial = pick !== undefined
      ? pick.newStream(protocol, { signal })
      : this.node.dialProtocol(peer, protocol, { signal, runOnLimitedConnection: true })
    try {
      return await Promise.race([dial, deadline])
    } catch (err) {
      dial.then(s => { s.abort(new Error('dial abandoned')) }, ignore)
      const name = (err as Error)?.name
      if (name === 'UnsupportedProtocolError') {
        throw new GemError('VERSION_MISMATCH', `${peerId} does not speak ${protocol} (another GEM wire version, or not a GEM node)`)
      }
      throw new GemError('PEER_UNREACHABLE', `cannot reach ${peerId} for ${protocol}: ${(err as Error)?.message ?? String(err)}`)
    } finally {
      clearTimeout(timer)
    }
  }

  #accept (protocol: string, stream: Stream, connection: Connection): void {
    if (this.#closed) { stream.abort(new GemError('CLOSED', 'mesh transport is closed')); return }
    const from = connection.remotePeer.toString()
    const decoder = new FrameDecoder({ maxFrameBytes: this.maxFrameBytes })
    let dead = false
    const writer = new FrameWriter(err => { stream.abort(err instanceof Error ? err : new Error(String(err))) })
    writer.attach(stream)
    this.#inbound.add(stream)

    const answer = (id: number, work: () => void | Uint8Array | Promise<void | Uint8Array>): void => {
      let result: void | Uint8Array | Promise<void | Uint8Array>
      try { result = work() } catch (err) { result = Promise.reject(err) }
      Promise.resolve(result).then(res => {
        if (dead) return
        const out = res ?? EMPTY
        if (!(out instanceof Uint8Array)) writer.push(FRAME.ERROR, id, errorPayload(new GemError('INTERNAL', `${protocol} handler answered with a ${typeof out}, not bytes`)))
        else if (out.length > this.maxFrameBytes) writer.push(FRAME.ERROR, id, errorPayload(tooLarge(out.length, this.maxFrameBytes)))
        else writer.push(FRAME.RESPONSE, id, out)
      }, err => {
        if (!dead) writer.push(FRAME.ERROR, id, errorPayload(toGemError(err)))
      })
    }

    const onFrame = (f: Frame): void => {
      const handler = this.#handlers.get(protocol)
      if (handler === undefined) throw new GemError('UNAVAILABLE', `${protocol} is no longer served`)
      if (f.type === FRAME.DATA) {
        try {
          const r = handler(from, f.payload)
          if (r instanceof Promise) r.catch(err => { this.emitError(toGemError(err), from) })
        } catch (err) {
          this.emitError(toGemError(err), from)
        }
      } else if (f.type === FRAME.REQUEST) {
        answer(f.id, () => handler(from, f.payload))
      } else {
        throw new GemError('BAD_REQUEST', `unexpected frame type ${f.type} on an inbound ${protocol} stream`)
      }
    }

    stream.addEventListener('message', (evt: StreamMessageEvent) => {
      if (dead) return
      try {
        decoder.push(evt.data, onFrame)
      } catch (err) {
        // Answer once with what was wrong, then close: the peer's framing can no longer be trusted.
        dead = true
        const e = toGemError(err)
        this.emitError(e, from)
        writer.push(FRAME.ERROR, STREAM_ERROR_ID, errorPayload(e))
        writer.flush()
        stream.close().catch(() => { stream.abort(e) })
      }
    })
    stream.addEventListener('close', () => { dead = true; this.#inbound.delete(stream) })
  }

  #channel (peerId: string, protocol: string): OutboundChannel {
    const key = `${peerId}\n${protocol}`
    let ch = this.#channels.get(key)
    if (ch === undefined) {
      assertProtocol(protocol)
      ch = new OutboundChannel(this, peerId, protocol)
      if (this.#closed) ch.close()
      this.#channels.set(key, ch)
    }
    return ch
  }

  // ------------------------------------------------------------------------------------ peers and events

  peers (): string[] {
    return this.node.getPeers().map(p => p.toString())
  }

  on<E extends keyof MeshTransportEvents> (event: E, listener: MeshTransportEvents[E]): () => void {
    const set = this.#listeners[event] as Set<MeshTransportEvents[E]>
    set.add(listener)
    return () => { set.delete(listener) }
  }

  /** @internal */
  emitError (err: GemError, peerId: string | undefined): void {
    this.#emit('error', err, peerId)
  }

  #emit<E extends keyof MeshTransportEvents> (event: E, ...args: Parameters<MeshTransportEvents[E]>): void {
    for (const fn of this.#listeners[event]) {
      try {
        (fn as (...a: unknown[]) => void)(...args)
      } catch {
        // a listener's failure is its own; the transport keeps serving
      }
    }
  }

  // ------------------------------------------------------------------------------------ gossip

  async publishGossip (topic: string, data: Uint8Array): Promise<void> {
    if (this.#closed) throw new GemError('CLOSED', 'mesh transport is closed')
    // Gossip carries a GEM frame too, so a node of another wire version is refused loudly, not misread.
    await this.node.services.pubsub.publish(gossipTopic(topic), encodeFrame(FRAME.GOSSIP, 0, data))
  }

  subscribeGossip (topic: string, handler: GossipHandler): () => void {
    const full = gossipTopic(topic)
    let set = this.#gossip.get(full)
    if (set === undefined) {
      set = new Set()
      this.#gossip.set(full, set)
      this.node.services.pubsub.subscribe(full)
    }
    set.add(handler)
    return () => {
      const s = this.#gossip.get(full)
      if (s === undefined || !s.delete(handler) || s.size > 0) return
      this.#gossip.delete(full)
      if (!this.#closed) this.node.services.pubsub.unsubscribe(full)
    }
  }

  gossipPeers (topic: string): string[] {
    return this.node.services.pubsub.getSubscribers(gossipTopic(topic)).map(p => p.toString())
  }

  #deliverGossip (msg: GossipMessage): void {
    const handlers = this.#gossip.get(msg.topic)
    if (handlers === undefined) return
    const from = msg.type === 'signed' ? msg.from.toString() : undefined
    let frames: Frame[]
    try {
      frames = new FrameDecoder({ maxFrameBytes: this.maxFrameBytes }).decode(msg.data)
      if (frames.length !== 1 || frames[0].type !== FRAME.GOSSIP) throw new GemError('BAD_REQUEST', `malformed gossip message on ${msg.topic}`)
    } catch (err) {
      this.emitError(toGemError(err), from)
      return
    }
    for (const h of handlers) {
      try { h(from, frames[0].payload) } catch (err) { this.emitError(toGemError(err), from) }
    }
  }

  // ------------------------------------------------------------------------------------ life

  /** Stops the transport (queued frames and pending requests fail with CLOSED); does not stop the libp2p node. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.node.removeEventListener('peer:connect', this.#onConnect)
    this.node.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.node.services.pubsub.removeEventListener('message', this.#onGossip)
    for (const ch of this.#channels.values()) ch.close()
    const closed = new GemError('CLOSED', 'mesh transport is closed')
    for (const id of [...this.#pending.keys()]) this.settleRequest(id, undefined, closed)
    for (const s of this.#inbound) s.abort(closed)
    this.#inbound.clear()
    await Promise.allSettled([...this.#handlers.keys()].map(p => this.node.unhandle(p)))
    this.#handlers.clear()
  }
}

function errorPayload (err: GemError): Uint8Array {
  return encodeErrorPayload(err.code, err.message)
}

function tooLarge (length: number, max: number): GemError {
  return new GemError('PAYLOAD_TOO_LARGE', `frame of ${length} bytes exceeds the ${max}-byte limit`, { length, max })
}

function assertProtocol (protocol: string): void {
  if (!protocol.startsWith(PROTOCOL_PREFIX) || protocol.length === PROTOCOL_PREFIX.length) {
    throw new GemError('BAD_REQUEST', `mesh protocols live under ${PROTOCOL_PREFIX}, got ${protocol}`)
  }
}
