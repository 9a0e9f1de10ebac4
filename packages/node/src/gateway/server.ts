// The node's HTTP gateway: one http server carrying REST and SSE (Hono on @hono/node-server) and WebSocket /ws (ws).
// It listens, wires the parts and shuts them down in order; protocol logic lives in rest.ts, sse.ts and ws.ts.
//
// Why Hono: handlers speak Web-standard Request/Response (portable to Deno and Bun), and @hono/node-server already
// does the hard parts of Node's http well: abort signals when a client leaves, draining a body left unread after an
// early 413. WebSocket bypasses Hono: the server's 'upgrade' event goes straight to ws in noServer mode, so the
// hot publish path pays nothing for routing or Request objects.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdaptorServer } from '@hono/node-server'
import { maxBodyBytesFor } from './context.ts'
import { mountDashboard } from './dashboard.ts'
import type { GatewayContext, GatewayOptions } from './context.ts'
import { createRestApp } from './rest.ts'
import { SseStreams } from './sse.ts'
import { WsGateway } from './ws.ts'

export type { GatewayOptions, SlowConsumerPolicy } from './context.ts'

export interface Gateway {
  url: string
  port: number
  /** Client connections open now: WebSockets and SSE streams. */
  connections(): number
  /** Stops accepting, lets in-flight publishes answer, closes WebSocket and SSE connections. Safe to call twice. */
  close(): Promise<void>
}

/** How long close() waits for in-flight work and open connections before cutting them. */
const CLOSE_GRACE_MS = 5_000

export async function startGateway (opts: GatewayOptions): Promise<Gateway> {
  const shutdown = new AbortController()
  const ctx: GatewayContext = {
    broker: opts.broker,
    logger: opts.logger,
    metrics: opts.metrics,
    maxPayloadBytes: opts.limits.maxPayloadBytes,
    maxBodyBytes: maxBodyBytesFor(opts.limits.maxPayloadBytes),
    slowConsumer: { ...opts.slowConsumer },
    info: { ...opts.info },
    sseHeartbeatMs: opts.sseHeartbeatMs ?? 15_000,
    startedAt: Date.now(),
    shutdown: shutdown.signal,
    url: '',
    counts: { ws: 0, sse: 0 },
  }
  const sse = new SseStreams(ctx)
  const app = createRestApp(ctx, sse)
  mountDashboard(app)
  const ws = new WsGateway(ctx)
  const server = createAdaptorServer({ fetch: app.fetch, hostname: opts.host }) as Server
  server.on('upgrade', (req, socket, head) => ws.handleUpgrade(req, socket, head))
  server.on('clientError', (err, socket) => {
    ctx.logger.debug({ err }, 'http client error')
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    else socket.destroy()
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve() })
  })
  const port = (server.address() as AddressInfo).port
  ctx.url = `http://${urlHost(opts.host)}:${port}`

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const stopped = new Promise<void>(resolve => server.close(() => resolve()))
      shutdown.abort()
      sse.endAll()
      await ws.close(CLOSE_GRACE_MS)
      // Keep-alive connections become idle as their last responses (ended polls, streams) go out: close them as they
      // do, and cut whatever is still busy when the grace period ends.
      const deadline = Date.now() + CLOSE_GRACE_MS
      const sweep = setInterval(() => {
        if (Date.now() < deadline) server.closeIdleConnections()
        else server.closeAllConnections()
      }, 20)
      server.closeIdleConnections()
      try { await stopped } finally { clearInterval(sweep) }
    })()
    return closing
  }

  return { url: ctx.url, port, connections: () => ctx.counts.ws + ctx.counts.sse, close }
}

/** The host part of a URL clients can use: wildcard binds are reached on loopback, IPv6 literals need brackets. */
function urlHost (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return host.includes(':') ? `[${host}]` : host
}
