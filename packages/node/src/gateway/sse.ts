// Server-Sent Events for GET /topics/:name/events: a durable group consumer (each delivery acked once written to the
// stream: at-most-once past the socket) or, without a group, a live tail of the log. It never buffers without bound.
import { GemError, toGemError } from '@gem-mesh/core'
import type { ConsumerHandle, Delivery, GemRecord, StartPosition, TailHandle } from '@gem-mesh/core'
import type { GatewayContext } from './context.ts'
import { isoNow } from './iso-time.ts'
import { messageView } from './payload.ts'

export interface SseRequest {
  topic: string
  group?: string
  from?: string
  lastN?: string
  lastEventId?: string
  signal: AbortSignal
}

/** Bytes of events written per chunk: fewer, larger socket writes when a reader is behind. */
const CHUNK_BYTES = 64 * 1024
/** Records read from the log per catch-up step of a tail. */
const READ_BATCH = 256
const te = new TextEncoder()
const CONNECTED = te.encode(': connected\n\n')
const HEARTBEAT = te.encode(': heartbeat\n\n')

/** Every open event stream of the gateway, so that shutdown can end them. */
export class SseStreams {
  private readonly ctx: GatewayContext
  private readonly streams = new Set<SseStream>()

  constructor (ctx: GatewayContext) {
    this.ctx = ctx
  }

  /** Validates the request and opens the stream; errors before the first byte become REST errors. */
  async open (req: SseRequest): Promise<Response> {
    const { broker } = this.ctx
    if (this.ctx.shutdown.aborted) throw new GemError('CLOSED', 'the gateway is shutting down')
    broker.getTopic(req.topic)
    // Every parameter is checked before the stream exists: a stream, once made, counts as open until released.
    const from = parseFrom(req.from)
    if (req.group !== undefined && req.lastN !== undefined) throw new GemError('BAD_REQUEST', 'last_n applies only to streams without a group')
    const lastN = req.lastN === undefined ? undefined : parseCount(req.lastN, 'last_n', 100_000)
    const stream = new SseStream(this.ctx, req.topic, () => this.streams.delete(stream))
    if (req.group !== undefined) await stream.startGroup(req.group, from)
    else await stream.startTail(from, lastN, parseEventId(req.lastEventId))
    if (req.signal.aborted) { stream.release(); throw new GemError('CLOSED', 'the client went away') }
    // The gateway may have begun closing while the consumer or tail attached: endAll() has run and would never see
    // this stream, which would then hold the connection open until close() cuts it.
    if (this.ctx.shutdown.aborted) { stream.release(); throw new GemError('CLOSED', 'the gateway is shutting down') }
    req.signal.addEventListener('abort', () => stream.release(), { once: true })
    this.streams.add(stream)
    return new Response(stream.body, {
      status: 200,
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // Proxies such as nginx buffer responses unless told not to.
        'x-accel-buffering': 'no',
      },
    })
  }

  /** Ends every stream cleanly (their consumers close; unwritten deliveries are redelivered to the group later). */
  endAll (): void {
    for (const s of this.streams) s.end()
  }
}

interface Item {
  record: GemRecord
  delivery?: Delivery
  bytes: number
}

class SseStream {
  readonly body: ReadableStream<Uint8Array>
  private readonly ctx: GatewayContext
  private readonly topic: string
  private readonly onRelease: () => void
  private queue: Item[] = []
  private head = 0
  private queuedBytes = 0
  private wake: (() => void) | undefined
  private heartbeatDue = false
  private ended = false
  private endError: GemError | undefined
  private released = false
  private readonly heartbeat: ReturnType<typeof setInterval>
  private consumer: ConsumerHandle | undefined
  private tail: TailHandle | undefined
  /** Tail mode: next offset to queue, per partition. */
  private cursor: number[] = []
  /** Tail mode: one past the highest offset known to be committed, per partition. */
  private known: number[] = []

  constructor (ctx: GatewayContext, topic: string, onRelease: () => void) {
    this.ctx = ctx
    this.topic = topic
    this.onRelease = onRelease
    ctx.counts.sse++
    ctx.metrics.gateway.sseOpened()
    this.heartbeat = setInterval(() => { this.heartbeatDue = true; this.poke() }, ctx.sseHeartbeatMs)
    this.heartbeat.unref()
    this.body = new ReadableStream<Uint8Array>({
      start: controller => { controller.enqueue(CONNECTED) },
      pull: controller => this.pull(controller),
      cancel: () => this.release(),
    }, { highWaterMark: 0 })
  }

  async startGroup (group: string, from: StartPosition | undefined): Promise<void> {
    try {
      this.consumer = await this.ctx.broker.consume(this.topic, from === undefined ? { group } : { group, from }, d => {
        this.push({ record: d.record, delivery: d, bytes: d.record.payload.byteLength + 256 })
        this.poke()
      }, err => this.end(err))
    } catch (err) {
      this.release()
      throw err
    }
  }

  async startTail (from: StartPosition | undefined, lastN: number | undefined, resume: { partition: number, offset: number } | undefined): Promise<void> {
    const { broker } = this.ctx
    // Positions first, then the tail: every record is either below the snapshot (read from the log) or reaches the tail.
    const offsets = broker.getTopic(this.topic).offsets
    for (const o of offsets) {
      let c = o.high
      if (lastN !== undefined) c = Math.max(o.low, o.high - lastN)
      else if (from === 'earliest') c = o.low
      else if (typeof from === 'object' && 'offset' in from) c = from.offset
      this.cursor[o.partition] = c
      this.known[o.partition] = o.high
    }
    if (resume !== undefined && resume.partition < offsets.length) this.cursor[resume.partition] = resume.offset + 1
    try {
      this.tail = await broker.tail(this.topic, {}, records => this.onRecords(records), err => this.end(err))
    } catch (err) {
      this.release()
      throw err
    }
    // Whatever committed while the tail was attaching is caught up from the log.
    for (const o of broker.getTopic(this.topic).offsets) this.known[o.partition] = Math.max(this.known[o.partition] ?? 0, o.high)
  }

  private onRecords (records: GemRecord[]): void {
    const limit = this.ctx.slowConsumer.maxBufferedBytes
    for (const r of records) {
      const p = r.partition
      if (r.offset >= (this.known[p] ?? 0)) this.known[p] = r.offset + 1
      // In order and within the buffer: queue it. Otherwise leave the gap; catch-up reads it from the log later.
      if (r.offset === this.cursor[p] && this.queuedBytes < limit) {
        this.push({ record: r, bytes: r.payload.byteLength + 256 })
        this.cursor[p] = r.offset + 1
      }
    }
    this.poke()
  }

  private push (item: Item): void {
    this.queue.push(item)
    this.queuedBytes += item.bytes
  }

  private poke (): void {
    const w = this.wake
    if (w !== undefined) { this.wake = undefined; w() }
  }

  private async pull (controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      if (this.released) return
      if (this.ended) {
        if (this.endError !== undefined) controller.enqueue(te.encode(`event: error\ndata: ${JSON.stringify({ error: this.endError.code, message: this.endError.message, ts: isoNow() })}\n\n`))
        controller.close()
        this.release()
        return
      }
      if (this.head < this.queue.length) {
        controller.enqueue(this.takeChunk())
        return
      }
      if (this.tail !== undefined && await this.catchUp()) continue
      if (this.heartbeatDue) {
        this.heartbeatDue = false
        // A deleted topic sends nothing more: tell the reader instead of beating forever.
        try { this.ctx.broker.getTopic(this.topic) } catch (err) { this.end(toGemError(err)); continue }
        controller.enqueue(HEARTBEAT)
        return
      }
      if (this.released || this.ended) continue
      await new Promise<void>(resolve => { this.wake = resolve })
    }
  }

  /** Events from the queue, up to CHUNK_BYTES; group deliveries are acked here, as they go to the socket. */
  private takeChunk (): Uint8Array {
    let text = ''
    while (this.head < this.queue.length && text.length < CHUNK_BYTES) {
      const item = this.queue[this.head++]
      this.queuedBytes -= item.bytes
      const r = item.record
      const data = JSON.stringify(messageView(r, item.delivery !== undefined ? { attempt: item.delivery.attempt } : undefined))
      text += `id: ${r.partition}:${r.offset}\nevent: message\ndata: ${data}\n\n`
      if (item.delivery !== undefined) this.ack(item.delivery)
    }
    if (this.head === this.queue.length) { this.queue = []; this.head = 0 } else if (this.head > 1024) { this.queue = this.queue.slice(this.head); this.head = 0 }
    return te.encode(text)
  }

  private ack (d: Delivery): void {
    // By tag on the broker, not through the handle: the first deliveries arrive while consume() is
    // still attaching, before the handle exists, and must be acked all the same.
    this.ctx.broker.ack(d.topic, d.group, [d.tag]).catch(err => this.ctx.logger.debug({ err, tag: d.tag }, 'sse ack failed'))
  }

  /** Reads what the tail could not queue from the log. True when it made progress. */
  private async catchUp (): Promise<boolean> {
    let progress = false
    for (let p = 0; p < this.cursor.length; p++) {
      const from = this.cursor[p]
      if (from >= this.known[p]) continue
      let res
      try {
        res = await this.ctx.broker.read(this.topic, p, from, READ_BATCH)
      } catch (err) {
        this.end(toGemError(err))
        return true
      }
      if (this.released) return false
      for (const r of res.messages) {
        if (r.offset < this.cursor[p]) continue // queued by the tail while we read
        this.push({ record: r, bytes: r.payload.byteLength + 256 })
        this.cursor[p] = r.offset + 1
        progress = true
      }
      // Retention may have removed the next offsets: move past the hole.
      if (res.messages.length === 0 && res.next > this.cursor[p]) { this.cursor[p] = res.next; progress = true }
    }
    return progress
  }

  /** Ends the stream at the reader's next write; queued, unwritten group deliveries stay unacked and return to the group. */
  end (err?: GemError): void {
    if (this.ended) return
    this.ended = true
    this.endError = err
    this.queue = []
    this.head = 0
    this.poke()
  }

  /** Stops everything now; safe to call more than once. */
  release (): void {
    if (this.released) return
    this.released = true
    clearInterval(this.heartbeat)
    this.consumer?.close()
    this.tail?.close()
    this.queue = []
    this.poke()
    this.ctx.counts.sse--
    this.ctx.metrics.gateway.sseClosed()
    this.onRelease()
  }
}

function parseFrom (raw: string | undefined): StartPosition | undefined {
  if (raw === undefined || raw === '') return undefined
  if (raw === 'earliest' || raw === 'latest') return raw
  if (/^\d{1,15}$/.test(raw)) return { offset: Number(raw) }
  throw new GemError('BAD_REQUEST', `from must be earliest, latest or an offset, got ${JSON.stringify(raw)}`)
}

function parseCount (raw: string, name: string, max: number): number {
  if (!/^\d{1,15}$/.test(raw) || Number(raw) > max) throw new GemError('BAD_REQUEST', `${name} must be an integer from 0 to ${max}`)
  return Number(raw)
}

/** `<partition>:<offset>` as this stream writes it; anything else is ignored (a stale or foreign id). */
function parseEventId (raw: string | undefined): { partition: number, offset: number } | undefined {
  const m = raw === undefined ? null : /^(\d{1,6}):(\d{1,15})$/.exec(raw.trim())
  return m === null ? undefined : { partition: Number(m[1]), offset: Number(m[2]) }
}
