// WebSocket `/ws`: the classic JSON pub/sub protocol (subscribe, unsubscribe, publish, ping) over the broker.
// Publishes are pipelined and acked after durability; subscriptions are live tails with a slow-consumer policy.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { Buffer } from 'node:buffer'
import { WebSocket, WebSocketServer } from 'ws'
import type { RawData } from 'ws'
import { WS_CLOSE_CODE, toGemError } from '@gem-mesh/core'
import type { GemErrorCode, GemRecord, PublishResult, TailHandle } from '@gem-mesh/core'
import type { GatewayContext } from './context.ts'
import { isoNow } from './iso-time.ts'
import { wsErrorFrame } from './json-errors.ts'
import { messageView } from './payload.ts'
import { parsePublishRequest } from './publish-request.ts'

/** Publishes awaiting durability per connection before the gateway stops reading that connection's frames. */
const MAX_IN_FLIGHT = 8192
/** Interval of protocol pings that find dead peers; a peer that misses one whole interval is dropped. */
const KEEPALIVE_MS = 30_000
/** A socket closed for being slow gets this long to take its close frame before it is cut. */
const CLOSE_GRACE_MS = 5_000
const TEXT = { binary: false }

/**
 * The event frames of the commit batch last sent: a batch fans out to every subscriber of the topic with the same
 * records array, one subscriber after another in the same turn, so each frame is serialized and encoded once, not
 * once per subscriber. Only the last batch is kept: a cache keyed by record (a WeakMap) would keep every frame alive
 * as long as its record stays in the in-memory tail, which the young-generation GC then copies and promotes.
 */
let framesOf: GemRecord[] | undefined
let frames: Buffer[] = []

function eventFrames (records: GemRecord[]): Buffer[] {
  if (records === framesOf) return frames
  const out = new Array<Buffer>(records.length)
  const ts = isoNow()
  for (let i = 0; i < records.length; i++) {
    const r = records[i]
    out[i] = Buffer.from(JSON.stringify({ type: 'event', topic: r.topic, message: messageView(r), ts }))
  }
  framesOf = records
  frames = out
  return out
}

export class WsGateway {
  private readonly ctx: GatewayContext
  private readonly wss: WebSocketServer
  private readonly connections = new Set<WsConnection>()
  private readonly keepalive: ReturnType<typeof setInterval>
  private closing = false

  constructor (ctx: GatewayContext) {
    this.ctx = ctx
    // Frames over the body limit are refused by ws itself with close 1009, before they are buffered.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: ctx.maxBodyBytes, perMessageDeflate: false, clientTracking: false })
    this.keepalive = setInterval(() => { for (const c of this.connections) c.keepalive() }, KEEPALIVE_MS)
    this.keepalive.unref()
  }

  /** The http server's 'upgrade' handler. Only /ws upgrades; anything else is refused. */
  handleUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?', 1)[0]
    if (this.closing || path !== '/ws') {
      const status = this.closing ? '503 Service Unavailable' : '404 Not Found'
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      return
    }
    this.wss.handleUpgrade(req, socket, head, ws => {
      const conn = new WsConnection(this.ctx, ws, socket as Socket, () => this.connections.delete(conn))
      this.connections.add(conn)
    })
  }

  /** Stops reading, lets acks of in-flight publishes go out (up to `graceMs`), then closes every connection with 1001. */
  async close (graceMs: number): Promise<void> {
    this.closing = true
    clearInterval(this.keepalive)
    const conns = [...this.connections]
    for (const c of conns) c.stopReading()
    const deadline = Date.now() + graceMs
    while (conns.some(c => c.busy) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
    await Promise.all(conns.map(c => c.shutdown(Math.max(100, deadline - Date.now()))))
    this.wss.close()
  }
}

interface Subscription {
  handle: TailHandle | undefined
  /** Records that arrived before the subscribe ack went out (the last-N replay): sent right after it. */
  early: GemRecord[][] | null
  closed: boolean
}

class WsConnection {
  private readonly ctx: GatewayContext
  private readonly ws: WebSocket
  private readonly socket: Socket
  private readonly onGone: () => void
  private readonly subs = new Map<string, Subscription>()
  private readonly maxBuffered: number
  private readonly dropOldest: boolean
  private inFlight = 0
  private corked = false
  private readPaused = false
  private stopped = false
  private closing = false
  private alive = true
  /** drop_oldest: events waiting for the socket to drain, oldest first, bounded by maxBuffered bytes. */
  private backlog: Buffer[] = []
  private backlogHead = 0
  private backlogBytes = 0
  private dropped = 0
  private recheck: ReturnType<typeof setTimeout> | undefined

  constructor (ctx: GatewayContext, ws: WebSocket, socket: Socket, onGone: () => void) {
    this.ctx = ctx
    this.ws = ws
    this.socket = socket
    this.onGone = onGone
    this.maxBuffered = ctx.slowConsumer.maxBufferedBytes
    this.dropOldest = ctx.slowConsumer.policy === 'drop_oldest'
    ctx.counts.ws++
    ctx.metrics.gateway.wsConnected()
    ws.on('message', data => this.onMessage(data))
    ws.on('pong', () => { this.alive = true })
    ws.on('error', err => ctx.logger.debug({ err }, 'websocket error'))
    ws.once('close', () => this.onClose())
    socket.on('drain', () => this.pump())
    this.send(`{"type":"info","msg":"connected","ts":"${isoNow()}"}`, 'info')
  }

  /** True while publishes wait for durability (their acks are still to be sent). */
  get busy (): boolean { return this.inFlight > 0 && this.ws.readyState === WebSocket.OPEN }

  // ---- inbound ----------------------------------------------------------------------------------

  /** Text or binary frames alike are read as UTF-8 JSON. */
  private onMessage (data: RawData): void {
    if (this.closing) return
    let m: unknown
    try {
      m = JSON.parse(Array.isArray(data) ? Buffer.concat(data).toString() : data.toString())
    } catch {
      this.sendError('null', 'BAD_REQUEST', 'the frame is not valid JSON')
      return
    }
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      this.sendError('null', 'BAD_REQUEST', 'a frame must be a JSON object with a type')
      return
    }
    const msg = m as Record<string, unknown>
    const rid = msg.request_id
    if (rid !== undefined && rid !== null && typeof rid !== 'string' && typeof rid !== 'number') {
      this.sendError('null', 'BAD_REQUEST', 'request_id must be a string or a number')
      return
    }
    const ridJson = rid === undefined || rid === null ? 'null' : JSON.stringify(rid)
    const type = msg.type
    switch (type) {
      case 'publish': this.ctx.metrics.gateway.wsMessage('in', type); this.publish(msg, ridJson); return
      case 'subscribe': this.ctx.metrics.gateway.wsMessage('in', type); this.subscribe(msg, ridJson); return
      case 'unsubscribe': this.ctx.metrics.gateway.wsMessage('in', type); this.unsubscribe(msg, ridJson); return
      case 'ping':
        this.ctx.metrics.gateway.wsMessage('in', type)
        this.send(`{"type":"pong","request_id":${ridJson},"ts":"${isoNow()}"}`, 'pong')
        return
      default:
        this.ctx.metrics.gateway.wsMessage('in', 'unknown')
        this.sendError(ridJson, 'BAD_REQUEST', typeof type === 'string'
          ? `unknown type ${JSON.stringify(type)}: use subscribe, unsubscribe, publish or ping`
          : 'type must be a string: subscribe, unsubscribe, publish or ping')
    }
  }

  private publish (msg: Record<string, unknown>, ridJson: string): void {
    const topic = msg.topic
    if (typeof topic !== 'string') {
      this.sendError(ridJson, 'BAD_REQUEST', 'topic must be a string')
      return
    }
    let input
    try {
      input = parsePublishRequest(msg.message, this.ctx.maxPayloadBytes, 'message')
    } catch (err) {
      this.fail(ridJson, err)
      return
    }
    // Called in frame order and appended synchronously by the broker: one connection's publishes keep their order.
    this.inFlight++
    if (this.inFlight >= MAX_IN_FLIGHT) this.updateReadPause()
    this.ctx.broker.publish(topic, input).then(
      r => this.published(ridJson, topic, r),
      err => { this.inFlight--; this.fail(ridJson, err) },
    )
  }

  private published (ridJson: string, topic: string, r: PublishResult): void {
    this.inFlight--
    // The broker accepted the topic name, so it is plain [A-Za-z0-9._-] and needs no escaping.
    this.send(
      `{"type":"ack","request_id":${ridJson},"topic":"${topic}","status":"ok","id":${JSON.stringify(r.id)},"partition":${r.partition},"offset":${r.offset}${r.duplicate ? ',"duplicate":true' : ''},"ts":"${isoNow()}"}`,
      'ack',
    )
  }

  private subscribe (msg: Record<string, unknown>, ridJson: string): void {
    const { topic, client_id: clientId, last_n: lastN } = msg
    if (typeof topic !== 'string') return this.sendError(ridJson, 'BAD_REQUEST', 'topic must be a string')
    if (clientId !== undefined && clientId !== null && typeof clientId !== 'string') return this.sendError(ridJson, 'BAD_REQUEST', 'client_id must be a string')
    if (lastN !== undefined && lastN !== null && (typeof lastN !== 'number' || !Number.isInteger(lastN) || lastN < 0)) {
      return this.sendError(ridJson, 'BAD_REQUEST', 'last_n must be a non-negative integer')
    }
    if (this.subs.has(topic)) return this.ackTopic(ridJson, topic)
    const sub: Subscription = { handle: undefined, early: [], closed: false }
    this.subs.set(topic, sub)
    this.ctx.broker.tail(topic, { lastN: typeof lastN === 'number' ? lastN : 0 }, records => {
      if (sub.closed) return
      if (sub.early !== null) sub.early.push(records)
      else this.sendRecords(records)
    }, err => {
      // The topic was deleted: say so (no request to answer, hence request_id null) and forget it.
      if (sub.closed) return
      sub.closed = true
      if (this.subs.get(topic) === sub) this.subs.delete(topic)
      this.fail('null', err)
    }).then(handle => {
      if (sub.closed) { handle.close(); return }
      sub.handle = handle
      this.ackTopic(ridJson, topic)
      const early = sub.early ?? []
      sub.early = null
      for (const records of early) this.sendRecords(records)
    }, err => {
      if (this.subs.get(topic) === sub) this.subs.delete(topic)
      sub.closed = true
      this.fail(ridJson, err)
    })
  }

  private unsubscribe (msg: Record<string, unknown>, ridJson: string): void {
    const topic = msg.topic
    if (typeof topic !== 'string') return this.sendError(ridJson, 'BAD_REQUEST', 'topic must be a string')
    const sub = this.subs.get(topic)
    if (sub !== undefined) {
      this.subs.delete(topic)
      sub.closed = true
      sub.handle?.close()
    }
    // Unsubscribing from what is not subscribed is already done: ack it.
    this.ackTopic(ridJson, topic)
  }

  private ackTopic (ridJson: string, topic: string): void {
    this.send(`{"type":"ack","request_id":${ridJson},"topic":${JSON.stringify(topic)},"status":"ok","ts":"${isoNow()}"}`, 'ack')
  }

  // ---- outbound ---------------------------------------------------------------------------------

  /** Every frame goes through here. Writes of one event-loop turn are corked into one socket write. */
  private send (frame: string | Buffer, type: string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      // After the promise callbacks of this turn: every ack of one group commit shares the write.
      process.nextTick(uncork, this)
    }
    this.ws.send(frame, TEXT)
    this.ctx.metrics.gateway.wsMessage('out', type)
  }

  /** Runs once per corked turn: flush, then look at what is left in the socket buffer. */
  flushCork (): void {
    this.corked = false
    this.socket.uncork()
    this.pump()
  }

  private sendRecords (records: GemRecord[]): void {
    if (this.closing) return
    const all = eventFrames(records)
    for (let i = 0; i < all.length; i++) {
      const frame = all[i]
      if (this.dropOldest && (this.backlogHead < this.backlog.length || this.overLimit())) {
        this.queueEvent(frame)
      } else {
        this.send(frame, 'event')
      }
    }
  }

  /**
   * Whether the socket holds more than the limit. Bytes corked in this turn have not been offered to the kernel yet:
   * offer them first, so that a burst larger than the limit is not mistaken for a slow reader.
   */
  private overLimit (): boolean {
    if (this.ws.bufferedAmount <= this.maxBuffered) return false
    if (this.corked) {
      this.socket.uncork()
      this.socket.cork()
    }
    return this.ws.bufferedAmount > this.maxBuffered
  }

  /** drop_oldest: holds an event while the socket is full, dropping the oldest held ones past the byte bound. */
  private queueEvent (frame: Buffer): void {
    this.backlog.push(frame)
    this.backlogBytes += frame.byteLength
    let dropped = 0
    while (this.backlogBytes > this.maxBuffered && this.backlogHead < this.backlog.length) {
      this.backlogBytes -= this.backlog[this.backlogHead++].byteLength
      dropped++
    }
    if (dropped > 0) {
      this.dropped += dropped
      this.ctx.metrics.gateway.slowConsumerDropped('ws', dropped)
    }
    this.scheduleRecheck()
  }

  /**
   * Called after each flush and on socket drain: applies the slow-consumer policy, moves held events out as the
   * socket drains, and pauses or resumes reading this connection's frames (backpressure on its publishes).
   */
  pump (): void {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) return
    const buffered = this.ws.bufferedAmount
    if (buffered > this.maxBuffered && !this.dropOldest && this.subs.size > 0) {
      this.disconnectSlow(buffered)
      return
    }
    if (this.dropOldest && this.backlogHead < this.backlog.length && buffered <= this.maxBuffered) this.flushBacklog()
    this.updateReadPause()
  }

  private flushBacklog (): void {
    if (this.dropped > 0) {
      const n = this.dropped
      this.dropped = 0
      this.send(`{"type":"info","msg":"dropped ${n} events: this connection reads slower than they arrive","dropped":${n},"ts":"${isoNow()}"}`, 'info')
    }
    while (this.backlogHead < this.backlog.length && this.ws.bufferedAmount <= this.maxBuffered) {
      const frame = this.backlog[this.backlogHead++]
      this.backlogBytes -= frame.byteLength
      this.send(frame, 'event')
    }
    if (this.backlogHead === this.backlog.length) { this.backlog = []; this.backlogHead = 0 } else if (this.backlogHead > 1024) { this.backlog = this.backlog.slice(this.backlogHead); this.backlogHead = 0 }
    if (this.backlogHead < this.backlog.length) this.scheduleRecheck()
  }

  private updateReadPause (): void {
    if (this.stopped) return
    const full = this.ws.bufferedAmount > this.maxBuffered
    const pause = this.inFlight >= MAX_IN_FLIGHT || full
    if (pause && !this.readPaused) {
      this.readPaused = true
      this.ws.pause()
    } else if (!pause && this.readPaused) {
      this.readPaused = false
      this.ws.resume()
    }
    if (this.readPaused && full) this.scheduleRecheck()
  }

  /** 'drain' only fires after a write the socket refused; below its high-water mark a timer looks again. */
  private scheduleRecheck (): void {
    if (this.recheck !== undefined) return
    this.recheck = setTimeout(() => { this.recheck = undefined; this.pump() }, 10)
  }

  private disconnectSlow (buffered: number): void {
    this.ctx.metrics.gateway.slowConsumerDisconnect('ws')
    this.ctx.logger.info({ buffered, limit: this.maxBuffered }, 'closing a slow websocket consumer')
    this.sendError('null', 'SLOW_CONSUMER', `${buffered} bytes are waiting to be sent to this connection; the limit is ${this.maxBuffered}`)
    this.closeWith('SLOW_CONSUMER', 'slow consumer')
  }

  private closeWith (code: GemErrorCode, reason: string, graceMs = CLOSE_GRACE_MS): Promise<void> {
    const closed = new Promise<void>(resolve => {
      if (this.ws.readyState === WebSocket.CLOSED) resolve()
      else this.ws.once('close', () => resolve())
    })
    if (!this.closing) {
      this.closing = true
      this.closeSubscriptions()
      this.ws.close(WS_CLOSE_CODE[code], reason)
      // Read again if reading was paused: the peer's answer to the close frame has to come in (frames are ignored now).
      this.stopped = true
      this.ws.resume()
      // A peer that does not read never answers the close frame: cut it after a grace period.
      const cut = setTimeout(() => this.ws.terminate(), graceMs)
      cut.unref()
      this.ws.once('close', () => clearTimeout(cut))
    }
    return closed
  }

  private sendError (ridJson: string, code: GemErrorCode, message: string): void {
    this.send(wsErrorFrame(ridJson, code, message), 'error')
  }

  private fail (ridJson: string, err: unknown): void {
    const e = toGemError(err)
    if (e.code === 'INTERNAL') this.ctx.logger.error({ err }, 'websocket request failed')
    this.sendError(ridJson, e.code, e.message)
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  keepalive (): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    if (!this.alive) { this.ws.terminate(); return }
    this.alive = false
    this.ws.ping()
  }

  stopReading (): void {
    this.stopped = true
    this.ws.pause()
  }

  shutdown (graceMs: number): Promise<void> {
    return this.closeWith('CLOSED', 'server shutting down', graceMs)
  }

  private closeSubscriptions (): void {
    for (const sub of this.subs.values()) { sub.closed = true; sub.handle?.close() }
    this.subs.clear()
    this.backlog = []
    this.backlogHead = 0
    this.backlogBytes = 0
  }

  private onClose (): void {
    this.closing = true
    this.closeSubscriptions()
    if (this.recheck !== undefined) clearTimeout(this.recheck)
    this.ctx.counts.ws--
    this.ctx.metrics.gateway.wsDisconnected()
    // Publishes still in flight complete in the broker; their acks have nowhere to go.
    this.onGone()
  }
}

function uncork (c: WsConnection): void { c.flushCork() }
