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
let peer: BrowserPeer | undefined
let stalled = false

function record (key: string, msg: ReceivedMessage, keep: boolean): void {
  counts[key] = (counts[key] ?? 0) + 1
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
  async track (key: string, topic: string, opts: SubscribeOptions = {}, keep = true): Promise<void> {
    const sub = peer!.subscribe(topic, msg => { record(key, msg, keep) }, opts)
    await sub.ready
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
  async close (): Promise<void> { await peer?.close(); peer = undefined },

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
