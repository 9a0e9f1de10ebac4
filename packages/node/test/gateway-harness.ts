// Test harness for the gateway suites: a real Broker on a real LevelDB tier in a temp dir, the gateway on 127.0.0.1:0,
// and small clients (REST, raw http, WebSocket, SSE) that wait with deadlines. Everything started is stopped by stop().
import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { Broker } from '@gem-mesh/core'
import type { BrokerApi } from '@gem-mesh/core'
import { startGateway } from '../src/gateway/server.ts'
import type { Gateway, SlowConsumerPolicy } from '../src/gateway/server.ts'
import { silentLogger } from '../src/logger.ts'
import { createMetrics } from '../src/metrics.ts'
import type { GemMetrics } from '../src/metrics.ts'
import { openLevelTier } from '../src/storage/leveldb-tier.ts'
import { readSse } from '../src/cli/sse.ts'
import type { SseEvent } from '../src/cli/sse.ts'
import { waitFor } from '../../core/test/wait-for.ts'
import { api } from '../../../test/support/gem-process.ts'
export { waitFor, api }

export interface TestGateway {
  url: string
  wsUrl: string
  broker: Broker
  gateway: Gateway
  metrics: GemMetrics
  dir: string
  stop(): Promise<void>
}

export interface TestGatewayOptions {
  maxPayloadBytes?: number
  slowConsumer?: { policy: SlowConsumerPolicy, maxBufferedBytes: number }
  sseHeartbeatMs?: number
  autoCreateTopics?: boolean
  consumer?: { ackWaitMs?: number, backoffMs?: number, maxBackoffMs?: number, maxInFlight?: number }
  /** What the gateway is handed instead of the broker itself: lets a test hold a broker call at a chosen point. */
  wrapBroker?: (broker: Broker) => BrokerApi
}

export async function startTestGateway (opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'gem-gateway-test-'))
  let broker: Broker | undefined
  try {
    const tier = await openLevelTier({ path: join(dir, 'log'), durability: 'fsync' })
    const metrics = createMetrics()
    broker = await Broker.open({
      tier,
      observer: metrics.observer,
      autoCreateTopics: opts.autoCreateTopics ?? false,
      consumerDefaults: opts.consumer,
    })
    const untrack = metrics.trackGroups(broker)
    const gateway = await startGateway({
      broker: opts.wrapBroker?.(broker) ?? broker,
      host: '127.0.0.1',
      port: 0,
      logger: silentLogger(),
      metrics,
      limits: { maxPayloadBytes: opts.maxPayloadBytes ?? 1024 * 1024 },
      slowConsumer: opts.slowConsumer ?? { policy: 'disconnect', maxBufferedBytes: 8 * 1024 * 1024 },
      info: { nodeId: 'test-node', version: '0.0.0-test', dataDir: dir },
      ...(opts.sseHeartbeatMs !== undefined ? { sseHeartbeatMs: opts.sseHeartbeatMs } : {}),
    })
    const b = broker
    return {
      url: gateway.url,
      wsUrl: gateway.url.replace(/^http/, 'ws') + '/ws',
      broker: b,
      gateway,
      metrics,
      dir,
      stop: async () => {
        try {
          await gateway.close()
        } finally {
          untrack()
          await b.close()
          rmSync(dir, { recursive: true, force: true })
        }
      },
    }
  } catch (err) {
    await broker?.close().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

/** A raw http request, for what fetch will not send: bodies that lie about their length, aborts mid-body. */
export function rawRequest (url: string, opts: { method: string, path: string, headers?: Record<string, string | number>, body?: Buffer | string, chunks?: Array<Buffer | string> }): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const req = request({ host: u.hostname, port: u.port, method: opts.method, path: opts.path, headers: opts.headers, timeout: 20_000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', d => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('raw request timed out')))
    if (opts.chunks !== undefined) {
      for (const c of opts.chunks) req.write(c)
      req.end()
    } else {
      req.end(opts.body)
    }
  })
}

/** A WebSocket client that collects every frame and lets a test wait for the one it expects. */
export class WsClient {
  readonly ws: WebSocket
  readonly frames: any[] = []
  closed: { code: number, reason: string } | undefined

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', raw => { this.frames.push(JSON.parse(String(raw))) })
    ws.on('close', (code, reason) => { this.closed = { code, reason: String(reason) } })
    ws.on('error', () => {})
  }

  static async connect (wsUrl: string, options: WebSocket.ClientOptions = {}): Promise<WsClient> {
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false, ...options })
    const c = new WsClient(ws)
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    await c.next(f => f.type === 'info' && f.msg === 'connected')
    return c
  }

  send (frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** Takes the first received frame that matches; frames that do not match stay for later waits. */
  async next (match: (f: any) => boolean, what = 'a matching frame', timeoutMs = 10_000): Promise<any> {
    return await waitFor(() => {
      const i = this.frames.findIndex(match)
      return i < 0 ? undefined : this.frames.splice(i, 1)[0]
    }, what, timeoutMs)
  }

  reply (requestId: string | number, timeoutMs?: number): Promise<any> {
    return this.next(f => f.request_id === requestId, `the reply to ${requestId}`, timeoutMs)
  }

  async request (frame: Record<string, unknown>, timeoutMs?: number): Promise<any> {
    this.send(frame)
    return await this.reply(frame.request_id as string, timeoutMs)
  }

  async waitClosed (timeoutMs = 10_000): Promise<{ code: number, reason: string }> {
    return await waitFor(() => this.closed, 'the websocket to close', timeoutMs)
  }

  close (): void {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate()
  }
}

/** An SSE connection read with fetch and a reader; `next` waits with a deadline, `close` aborts the request. */
export class SseClient {
  readonly status: number
  readonly headers: Headers
  private readonly abort: AbortController
  private readonly events: AsyncGenerator<SseEvent>
  private pending: Promise<IteratorResult<SseEvent>> | undefined

  private constructor (res: Response, abort: AbortController) {
    this.status = res.status
    this.headers = res.headers
    this.abort = abort
    this.events = readSse(res.body!)
  }

  static async open (url: string, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const abort = new AbortController()
    const res = await fetch(url + path, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal })
    if (res.headers.get('content-type')?.startsWith('text/event-stream') !== true) {
      const text = await res.text()
      throw Object.assign(new Error(`not an event stream: ${res.status} ${text}`), { status: res.status, body: text })
    }
    return new SseClient(res, abort)
  }

  /** The next event, or undefined when the stream ended. */
  async next (timeoutMs = 10_000): Promise<SseEvent | undefined> {
    this.pending ??= this.events.next()
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no SSE event within ${timeoutMs} ms`)), timeoutMs) })
    try {
      const r = await Promise.race([this.pending, timeout])
      this.pending = undefined
      return r.done === true ? undefined : r.value
    } finally {
      clearTimeout(timer)
    }
  }

  async nextMessage (timeoutMs = 10_000): Promise<{ id: string | undefined, message: any }> {
    for (;;) {
      const ev = await this.next(timeoutMs)
      if (ev === undefined) throw new Error('the event stream ended')
      if (ev.event === 'message') return { id: ev.id, message: JSON.parse(ev.data) }
    }
  }

  close (): void {
    this.abort.abort()
    this.events.return(undefined).catch(() => {})
  }
}
