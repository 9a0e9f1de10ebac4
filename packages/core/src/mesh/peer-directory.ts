// PeerDirectory: who the connected mesh peers are as GEM nodes (node id, gateway url, addresses), learned by a
// `/gem/1/hello` exchange on every new connection. It never decides liveness: membership (SWIM) owns that.
import { GemError } from '../errors.ts'
import type { MeshTransport } from './transport.ts'

export const HELLO_PROTOCOL = '/gem/1/hello'

export interface NodeCard {
  /** GEM's node id (stable across restarts, from node.json). */
  nodeId: string
  /** The libp2p peer id. */
  peerId: string
  httpUrl?: string
  multiaddrs: string[]
  role: 'server' | 'browser'
  version?: string
}

const te = new TextEncoder()
const td = new TextDecoder()

export class PeerDirectory {
  private readonly transport: MeshTransport
  private readonly self: () => NodeCard
  private readonly cards = new Map<string, NodeCard>()
  private readonly offs: Array<() => void> = []
  private readonly onError: (err: unknown, peerId: string) => void

  /** `self` is read on every hello, so addresses learnt after start are reported. */
  constructor (transport: MeshTransport, self: () => NodeCard, onError: (err: unknown, peerId: string) => void = () => {}) {
    this.transport = transport
    this.self = self
    this.onError = onError
  }

  async start (): Promise<void> {
    await this.transport.handle(HELLO_PROTOCOL, (from, frame) => {
      this.learn(from, frame)
      return te.encode(JSON.stringify(this.self()))
    })
    this.offs.push(this.transport.on('connect', peer => { void this.greet(peer) }))
    this.offs.push(this.transport.on('disconnect', peer => { this.cards.delete(peer) }))
    await Promise.all(this.transport.peers().map(p => this.greet(p)))
  }

  /** Cards of the peers connected now and greeted, by peer id. */
  peers (): NodeCard[] {
    return [...this.cards.values()]
  }

  get (peerId: string): NodeCard | undefined {
    return this.cards.get(peerId)
  }

  async stop (): Promise<void> {
    for (const off of this.offs.splice(0)) off()
    await this.transport.unhandle(HELLO_PROTOCOL).catch(() => {})
  }

  private async greet (peer: string): Promise<void> {
    try {
      const answer = await this.transport.request(peer, HELLO_PROTOCOL, te.encode(JSON.stringify(this.self())), { timeoutMs: 5_000 })
      this.learn(peer, answer)
    } catch (err) {
      // A peer that is not a GEM node (or is going away) is simply not in the directory.
      this.onError(err, peer)
    }
  }

  private learn (peer: string, frame: Uint8Array): void {
    let card: unknown
    try { card = JSON.parse(td.decode(frame)) } catch { throw new GemError('BAD_REQUEST', 'hello: not JSON') }
    const c = card as Partial<NodeCard>
    if (typeof c?.nodeId !== 'string' || c.nodeId === '' || !Array.isArray(c.multiaddrs)) {
      throw new GemError('BAD_REQUEST', 'hello: expected {nodeId, multiaddrs, ...}')
    }
    this.cards.set(peer, {
      nodeId: c.nodeId,
      peerId: peer,
      multiaddrs: c.multiaddrs.filter(a => typeof a === 'string'),
      role: c.role === 'browser' ? 'browser' : 'server',
      ...(typeof c.httpUrl === 'string' ? { httpUrl: c.httpUrl } : {}),
      ...(typeof c.version === 'string' ? { version: c.version } : {}),
    })
  }
}
