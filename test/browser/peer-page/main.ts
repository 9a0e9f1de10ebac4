// The browser-peer test page: window.peerTest starts a BrowserPeer (window.gem), records every delivery with the
// path it arrived on, and runs the tier conformance suite on IndexedDB. Specs drive it through page.evaluate.
import { IndexedDbTier, createBrowserPeer } from '@gem-mesh/browser'
import type { BrowserPeer, BrowserPeerOptions, ReceivedMessage, SubscribeOptions } from '@gem-mesh/browser'
import { tierConformanceCases } from '@gem-mesh/core/conformance'

export interface Received {
  topic: string
  partition: number
  offset: number
  text: string
  via: string | undefined
  transport: string | undefined
  from: string | undefined
  /** Date.now() at delivery minus the payload's `sentAt` when it carries one (bench). */
  latencyMs?: number
}

export interface ConformanceResult { name: string, ok: boolean, error?: string }

const received: Record<string, Received[]> = {}
const counts: Record<string, number> = {}
/** Per key: performance.now() of the first and of the latest delivery, and publish->delivery latencies (bench). */
const firstAt: Record<string, number> = {}
const lastAt: Record<string, number> = {}
const latencies: Record<string, number[]> = {}

/** A bench payload is `{"sentAt":<epoch ms>,...}`: the latency is measured against the same machine's clock. */
function noteArrival (key: string, text: () => string, withLatency: boolean): void {
  const now = performance.now()
  firstAt[key] ??= now
  lastAt[key] = now
  if (!withLatency) return
  try {
    const sentAt = (JSON.parse(text()) as { sentAt?: number }).sentAt
    if (typeof sentAt === 'number') (latencies[key] ??= []).push(Date.now() - sentAt)
  } catch { /* not a bench payload */ }
}
let peer: BrowserPeer | undefined
let stalled = false
const sockets: WebSocket[] = []
const pending: Array<Promise<{ id: string, partition: number, offset: number }>> = []

function record (key: string, msg: ReceivedMessage, keep: boolean, withLatency = false): void {
  counts[key] = (counts[key] ?? 0) + 1
  noteArrival(key, () => msg.text(), withLatency)
  if (!keep) return
  const path = peer?.deliveryPath(msg)
  ;(received[key] ??= []).push({
    topic: msg.topic, partition: msg.partition, offset: msg.offset, text: msg.text(),
    via: path?.via, transport: path?.transport, from: path?.peer,
  })
}

const LOG_KEY = 'peer-test-log'

const peerTest = {
  async start (opts: BrowserPeerOptions): Promise<string> {
    peer = await createBrowserPeer(opts)
    ;(globalThis as unknown as { gem: BrowserPeer }).gem = peer
    return peer.id
  },

  /** A live (or group) subscription whose deliveries are kept under `key`; resolves once attached. */
  async track (key: string, topic: string, opts: SubscribeOptions & { lastN?: number } = {}, keep = true, withLatency = false): Promise<void> {
    const sub = peer!.subscribe(topic, msg => { record(key, msg, keep, withLatency) }, opts)
    await sub.ready
  },

  /** The same live subscription over a gateway's classic WebSocket protocol (/ws), for the bench's baseline. */
  async trackWs (key: string, gatewayUrl: string, topic: string, lastN: number, withLatency = false): Promise<void> {
    const ws = new WebSocket(gatewayUrl.replace(/^http/, 'ws') + '/ws')
    await new Promise<void>((resolve, reject) => {
      ws.onerror = () => reject(new Error(`websocket to ${gatewayUrl} failed`))
      ws.onopen = () => { ws.send(JSON.stringify({ type: 'subscribe', topic, client_id: key, last_n: lastN, request_id: 'sub' })) }
      ws.onmessage = ev => {
        const m = JSON.parse(String(ev.data)) as { type: string, request_id?: string, message?: { payload?: unknown } }
        if (m.type === 'ack' && m.request_id === 'sub') resolve()
        if (m.type !== 'event') return
        counts[key] = (counts[key] ?? 0) + 1
        const p = m.message?.payload
        noteArrival(key, () => typeof p === 'string' ? p : JSON.stringify(p), withLatency)
      }
    })
    sockets.push(ws)
  },

  /** Deliveries under `key` so far, the ms between the first and the latest, and the latency percentiles. */
  measure (key: string): { count: number, ms: number, p50?: number, p99?: number } {
    const lat = [...(latencies[key] ?? [])].sort((a, b) => a - b)
    const pct = (p: number): number | undefined => lat.length === 0 ? undefined : lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]
    return { count: counts[key] ?? 0, ms: (lastAt[key] ?? 0) - (firstAt[key] ?? 0), p50: pct(0.5), p99: pct(0.99) }
  },

  /**
   * A group subscription that survives reloads: every processed message (`partition:offset`) is appended to
   * localStorage. The message at `stallAt` (first page load only) is never finished: the page is busy with it when
   * the spec reloads, so it and everything delivered after it must come again, and nothing before it.
   */
  async trackGroup (topic: string, group: string, stallAt: string): Promise<void> {
    const firstLoad = sessionStorage.getItem('loaded') === null
    sessionStorage.setItem('loaded', '1')
    const sub = peer!.subscribe(topic, async msg => {
      const key = `${msg.partition}:${msg.offset}`
      if (firstLoad && key === stallAt) { stalled = true; await new Promise(() => {}) }
      const log = JSON.parse(localStorage.getItem(LOG_KEY) ?? '[]') as string[]
      log.push(key)
      localStorage.setItem(LOG_KEY, JSON.stringify(log))
    }, { group, maxInFlight: 16 })
    await sub.ready
  },

  stalled (): boolean { return stalled },
  groupLog (): string[] { return JSON.parse(localStorage.getItem(LOG_KEY) ?? '[]') as string[] },
  received (key: string): Received[] { return received[key] ?? [] },
  count (key: string): number { return counts[key] ?? 0 },
  online (): boolean { return peer?.online ?? false },
  relayAddrs (): string[] { return peer?.host.multiaddrs().filter(a => a.includes('/p2p-circuit/webrtc')) ?? [] },
  server (): string | undefined { return peer?.server },
  peers () { return peer?.peers() ?? [] },
  stats () { return peer?.stats() },
  async flush (): Promise<void> { await peer?.flush() },
  async publish (topic: string, payload: string, opts: { id?: string } = {}) {
    return await peer!.publish(topic, payload, opts)
  },
  /** Starts a publish without waiting (it may be queued offline); pendingResults() waits for all of them. */
  publishLater (topic: string, payload: string): void {
    pending.push(peer!.publish(topic, payload))
  },
  async pendingResults () { return await Promise.all(pending) },
  topicNames (): string[] { return peer?.topics.list().map(t => t.name) ?? [] },
  async publishMany (topic: string, n: number, prefix: string) {
    const out = []
    for (let i = 0; i < n; i++) out.push(await peer!.publish(topic, `${prefix}-${i}`))
    return out
  },
  async read (topic: string, from: number, limit: number) {
    const r = await peer!.read(topic, { from, limit })
    return { next: r.next, texts: r.messages.map(m => new TextDecoder().decode(m.payload)) }
  },
  /** The direct connections this page has to `peerId`: remote address and whether libp2p put limits on them. */
  connectionsTo (peerId: string): Array<{ remoteAddr: string, limited: boolean, status: string }> {
    return peer!.host.node.getConnections().filter(c => c.remotePeer.toString() === peerId)
      .map(c => ({ remoteAddr: c.remoteAddr.toString(), limited: c.limits !== undefined, status: c.status }))
  },
  /**
   * This page stops delivering to the browsers it feeds, without an error on either side: what a WebRTC connection
   * that hangs looks like to them (sends swallowed, heartbeats included).
   */
  muteFeeding (): void {
    (peer as unknown as { feed: { simulateHang(): void } }).feed.simulateHang()
  },
  async close (): Promise<void> { await peer?.close(); peer = undefined },

  /** Bad input through the page's API: the GemError code each case was refused with ('none' if it was not). */
  async badInputs (bootstrap: string[]): Promise<Record<string, string>> {
    const codeOf = async (fn: () => Promise<unknown>): Promise<string> => {
      try { await fn(); return 'none' } catch (err) { return (err as { code?: string }).code ?? `not a GemError: ${String(err)}` }
    }
    const out: Record<string, string> = {}
    out['bootstrap []'] = await codeOf(() => createBrowserPeer({ bootstrap: [], storage: 'memory' }))
    out['bootstrap not a url'] = await codeOf(() => createBrowserPeer({ bootstrap: ['not a url'], storage: 'memory' }))
    out['bootstrap ftp url'] = await codeOf(() => createBrowserPeer({ bootstrap: ['ftp://127.0.0.1/'], storage: 'memory' }))
    out['bootstrap without /p2p/'] = await codeOf(() => createBrowserPeer({ bootstrap: ['/ip4/127.0.0.1/tcp/1/ws'], storage: 'memory' }))
    out['bootstrap number'] = await codeOf(() => createBrowserPeer({ bootstrap: [42 as unknown as string], storage: 'memory' }))
    const p = await createBrowserPeer({ bootstrap, storage: 'memory', membership: false })
    try {
      out['publish bad topic name'] = await codeOf(() => p.publish('no spaces allowed', 'x'))
      out['publish to a missing topic'] = await codeOf(() => p.publish('missing-topic', 'x'))
      out['publish 5 MiB'] = await codeOf(() => p.publish('notes', new Uint8Array(5 * 1024 * 1024)))
      out['subscribe to a missing topic'] = await codeOf(() => p.subscribe('missing-topic', () => {}, { group: 'g' }).ready)
      out['read a partition out of range'] = await codeOf(() => p.read('notes', { partition: 99 }))
      out['publish still works'] = await codeOf(() => p.publish('notes', 'after the bad ones'))
    } finally {
      await p.close()
    }
    out['publish after close'] = await codeOf(() => p.publish('notes', 'x'))
    return out
  },

  async conformance (): Promise<ConformanceResult[]> {
    const results: ConformanceResult[] = []
    let n = 0
    for (const c of tierConformanceCases()) {
      const db = `conformance-${Date.now()}-${n++}`
      try {
        await c.run({ open: () => IndexedDbTier.open(db), reopen: () => IndexedDbTier.open(db) })
        results.push({ name: c.name, ok: true })
      } catch (err) {
        results.push({ name: c.name, ok: false, error: (err as Error).stack ?? String(err) })
      } finally {
        await IndexedDbTier.destroy(db).catch(() => {})
      }
    }
    return results
  },
}

export type PeerTest = typeof peerTest
;(globalThis as unknown as { peerTest: PeerTest }).peerTest = peerTest
