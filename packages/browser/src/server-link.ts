// ServerLink: a browser peer's hold on the server nodes — the targets in the caller's order, dials with a timeout and
// one retry, which server it is attached to, failover when that one goes, re-reading the bootstrap list while offline.
// It never knows about subscriptions or publishes: the peer hears of attach and detach through its callbacks.
import { GemError } from '@gem-mesh/core'
import { CLIENT_PROTOCOL, encodeHeadBody } from '@gem-mesh/core/mesh'
import type { MeshNode, NodeCard } from '@gem-mesh/core/mesh'
import { resolveBootstrap } from './bootstrap.ts'
import type { PreferredTransport, ServerTarget } from './bootstrap.ts'

export interface ServerLinkOptions {
  readonly bootstrap: readonly string[]
  readonly prefer?: PreferredTransport
  readonly dialTimeoutMs: number
  readonly requestTimeoutMs: number
  /** Sent with every hello: where another browser can dial this one to be fed. */
  readonly helloAddrs: () => string[]
  /** Hello cards of connected peers: servers name other servers, which become failover targets. */
  readonly cards: () => NodeCard[]
  /** Attached to `server` (first time or after a failover). */
  readonly onAttach: (server: string) => Promise<void>
}

/** How often, at most, an offline peer asks its bootstrap gateways again (a restarted node has new mesh ports). */
const RESOLVE_EVERY_MS = 2_000

export class ServerLink {
  /** The server requests go to now. */
  attached: string | undefined
  private readonly host: MeshNode
  private readonly options: ServerLinkOptions
  private readonly targets: ServerTarget[]
  private readonly serverIds = new Set<string>()
  private readonly dialing = new Set<string>()
  private attaching = false
  private resolvedAt = Date.now()
  private closed = false

  constructor (host: MeshNode, targets: ServerTarget[], options: ServerLinkOptions) {
    this.host = host
    this.targets = targets
    this.options = options
    for (const t of targets) this.serverIds.add(t.peerId)
  }

  isServer (peer: string): boolean { return this.serverIds.has(peer) }

  describe (): string { return this.targets.map(t => t.peerId).join(', ') || this.options.bootstrap.join(', ') }

  async request (head: Record<string, unknown>, body?: Uint8Array): Promise<Uint8Array> {
    const server = this.attached
    if (server === undefined) throw new GemError('UNAVAILABLE', 'no server node is reachable (offline)')
    return await this.host.request(server, CLIENT_PROTOCOL, encodeHeadBody(head, body ?? new Uint8Array(0)), { timeoutMs: this.options.requestTimeoutMs })
  }

  /**
   * Dials the servers in the caller's order until one answers; that one is where the peer attaches (pages given the
   * same list meet on the same server, which is what lets it point one at the other for feeds). False if none did.
   */
  async connectFirst (): Promise<boolean> {
    for (const t of this.targets) {
      if (await this.dial(t).catch(() => undefined) !== undefined) return true
    }
    return false
  }

  /** Keeps connections to every server and an attachment to one; called on every connection change and each second. */
  async tick (): Promise<void> {
    if (this.closed) return
    this.learnServers()
    if (this.attached === undefined && !this.targets.some(t => this.connected(t.peerId)) && Date.now() - this.resolvedAt > RESOLVE_EVERY_MS) {
      this.resolvedAt = Date.now()
      try {
        for (const t of await resolveBootstrap(this.options.bootstrap, this.options.prefer)) {
          const known = this.targets.find(x => x.peerId === t.peerId)
          if (known !== undefined) known.addrs = t.addrs
          else { this.targets.push(t); this.serverIds.add(t.peerId) }
        }
      } catch { /* still offline */ }
    }
    for (const t of this.targets) {
      if (!this.connected(t.peerId) && !this.dialing.has(t.peerId)) void this.dial(t).catch(() => {})
    }
    if (this.attached === undefined && !this.attaching) {
      const next = this.targets.find(t => this.connected(t.peerId))
      if (next !== undefined) await this.attach(next.peerId)
    }
  }

  /** Tells the attached server our current feed addresses (they change with relay reservations). */
  async hello (): Promise<void> {
    if (this.attached !== undefined) await this.sayHello(this.attached)
  }

  /** A peer's last connection closed; true when it was the attached server (the peer is offline until the next tick). */
  disconnected (peer: string): boolean {
    if (peer !== this.attached) return false
    this.attached = undefined
    return true
  }

  close (): void { this.closed = true }

  private async attach (server: string): Promise<void> {
    this.attaching = true
    try {
      await this.sayHello(server)
      this.attached = server
    } catch {
      return
    } finally {
      this.attaching = false
    }
    await this.options.onAttach(server)
  }

  private async sayHello (server: string): Promise<void> {
    await this.host.request(server, CLIENT_PROTOCOL, encodeHeadBody({ op: 'hello', addrs: this.options.helloAddrs() }), { timeoutMs: 5_000 })
  }

  /** Every address in turn, each with a timeout and one retry: a few percent of dials hang. */
  private async dial (t: ServerTarget): Promise<string> {
    if (this.dialing.has(t.peerId)) throw new GemError('PEER_UNREACHABLE', 'already dialling')
    this.dialing.add(t.peerId)
    try {
      let last: unknown
      for (const addr of t.addrs) {
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            return await this.host.dial(addr, this.options.dialTimeoutMs)
          } catch (err) {
            last = err
            if (this.closed) throw err
          }
        }
      }
      throw last ?? new GemError('PEER_UNREACHABLE', `no address for ${t.peerId}`)
    } finally {
      this.dialing.delete(t.peerId)
    }
  }

  private connected (peer: string): boolean {
    return this.host.node.getConnections().some(c => c.remotePeer.toString() === peer && c.status === 'open')
  }

  private learnServers (): void {
    for (const card of this.options.cards()) {
      if (card.role !== 'server' || this.serverIds.has(card.peerId)) continue
      const addrs = card.multiaddrs.filter(a => a.includes('/ws') && !a.includes('/p2p-circuit'))
      if (addrs.length === 0) continue
      this.serverIds.add(card.peerId)
      void resolveBootstrap(addrs).then(ts => { for (const t of ts) if (!this.targets.some(x => x.peerId === t.peerId)) this.targets.push(t) }, () => {})
    }
  }
}
