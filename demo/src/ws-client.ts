// The fallback mesh client: the serving node's WebSocket gateway (/ws, the classic JSON protocol of DESIGN.md).
// Reconnects with backoff, re-subscribes its tails, and holds publishes made while disconnected until it is back.
import { DashboardError } from './mesh-client.ts'
import type { DeliveryCounts, MeshClient, PeerLink, PublishAck, TailHandle, TailMessage } from './mesh-client.ts'

interface Pending {
  resolve(frame: Record<string, unknown>): void
  reject(err: Error): void
}

interface QueuedPublish {
  topic: string
  payload: string
  resolve(ack: PublishAck): void
  reject(err: Error): void
}

const RECONNECT_MIN_MS = 250
const RECONNECT_MAX_MS = 5_000

export class WsGatewayClient implements MeshClient {
  readonly kind = 'gateway' as const
  readonly id = `dashboard-${crypto.randomUUID().slice(0, 8)}`
  private readonly url: string
  private readonly serverId: string
  private ws: WebSocket | undefined
  private nextRequest = 1
  private readonly pending = new Map<string, Pending>()
  private readonly outbox: QueuedPublish[] = []
  private readonly tails = new Map<string, Set<(m: TailMessage) => void>>()
  private readonly listeners = new Set<() => void>()
  /** Every event comes from the node over this socket. */
  private received = 0
  private retryMs = RECONNECT_MIN_MS
  private closed = false

  /** `url` is the node's ws url (its /info ws_url); `serverId` its peer id, for the graph. */
  constructor (url: string, serverId: string) {
    this.url = url
    this.serverId = serverId
    this.connect()
  }

  get online (): boolean { return this.ws?.readyState === WebSocket.OPEN }
  get server (): string | undefined { return this.online ? this.serverId : undefined }
  get queued (): number { return this.outbox.length }

  peers (): PeerLink[] {
    return this.online ? [{ id: this.serverId, role: 'server', transports: ['websockets'] }] : []
  }

  deliveries (): DeliveryCounts {
    return { server: this.received, browser: 0, byTransport: { websockets: this.received }, fedBatches: 0 }
  }

  onChange (fn: () => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  tail (topic: string, onMessage: (m: TailMessage) => void): TailHandle {
    let handlers = this.tails.get(topic)
    const first = handlers === undefined
    if (handlers === undefined) { handlers = new Set(); this.tails.set(topic, handlers) }
    handlers.add(onMessage)
    const ready = first ? this.request({ type: 'subscribe', topic, client_id: this.id }).then(() => {}) : Promise.resolve()
    ready.catch(() => { this.tails.get(topic)?.delete(onMessage) })
    return {
      ready,
      close: () => {
        const set = this.tails.get(topic)
        set?.delete(onMessage)
        if (set?.size === 0) {
          this.tails.delete(topic)
          if (this.online) this.request({ type: 'unsubscribe', topic, client_id: this.id }).catch(() => {})
        }
      },
    }
  }

  publish (topic: string, payload: string): Promise<PublishAck> {
    return new Promise<PublishAck>((resolve, reject) => {
      this.outbox.push({ topic, payload, resolve, reject })
      this.changed()
      this.flush()
    })
  }

  async close (): Promise<void> {
    this.closed = true
    this.ws?.close()
    for (const p of this.pending.values()) p.reject(new DashboardError('CLOSED', 'the dashboard closed its connection'))
    for (const q of this.outbox.splice(0)) q.reject(new DashboardError('CLOSED', 'the dashboard closed its connection'))
  }

  private connect (): void {
    if (this.closed) return
    const ws = new WebSocket(this.url)
    this.ws = ws
    ws.onopen = () => {
      this.retryMs = RECONNECT_MIN_MS
      for (const topic of this.tails.keys()) this.request({ type: 'subscribe', topic, client_id: this.id }).catch(() => {})
      this.changed()
      this.flush()
    }
    ws.onmessage = ev => this.onFrame(String(ev.data))
    ws.onclose = () => {
      // Whatever was in flight may or may not have been stored; report it, never resend it silently.
      for (const p of this.pending.values()) p.reject(new DashboardError('UNAVAILABLE', 'the connection to the node closed before it answered'))
      this.pending.clear()
      this.changed()
      if (!this.closed) setTimeout(() => this.connect(), this.retryMs)
      this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS)
    }
  }

  /** Sends queued publishes, oldest first, while connected. */
  private flush (): void {
    while (this.online && this.outbox.length > 0) {
      const q = this.outbox.shift()!
      this.request({ type: 'publish', topic: q.topic, message: { id: crypto.randomUUID(), payload: q.payload } })
        .then(f => q.resolve({ id: String(f.id), partition: Number(f.partition), offset: Number(f.offset) }), q.reject)
    }
    this.changed()
  }

  private request (frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    const ws = this.ws
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return Promise.reject(new DashboardError('UNAVAILABLE', 'not connected to a node'))
    const requestId = `d${this.nextRequest++}`
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject })
      ws.send(JSON.stringify({ ...frame, request_id: requestId }))
    })
  }

  private onFrame (text: string): void {
    let f: Record<string, unknown>
    try { f = JSON.parse(text) as Record<string, unknown> } catch { return }
    if (f.type === 'event') {
      const m = f.message as Record<string, unknown>
      const handlers = this.tails.get(String(f.topic))
      if (handlers === undefined) return
      this.received++
      const payload = m.payload ?? m.payload_base64
      const msg: TailMessage = {
        id: String(m.id),
        topic: String(f.topic),
        partition: Number(m.partition),
        offset: Number(m.offset),
        text: typeof payload === 'string' ? payload : JSON.stringify(payload),
        timestamp: Date.parse(String(m.ts)),
      }
      for (const h of handlers) h(msg)
      return
    }
    const rid = typeof f.request_id === 'string' ? f.request_id : undefined
    const waiting = rid === undefined ? undefined : this.pending.get(rid)
    if (waiting === undefined) return
    this.pending.delete(rid!)
    if (f.type === 'error') {
      const e = f.error as { code: string, message: string }
      waiting.reject(new DashboardError(e.code, e.message))
    } else waiting.resolve(f)
  }

  private changed (): void {
    for (const fn of this.listeners) fn()
  }
}
