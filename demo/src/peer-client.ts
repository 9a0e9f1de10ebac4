// The mesh client over this page's browser peer (@gem-mesh/browser): tails are subscriptions, publishes go through
// the peer (which queues them while offline), links come from peer.peers(). The normal case; ws-client.ts is the fallback.
import type { BrowserPeer } from '@gem-mesh/browser'
import type { MeshClient, PeerLink, PublishAck, TailHandle } from './mesh-client.ts'

export class BrowserPeerClient implements MeshClient {
  readonly kind = 'peer' as const
  private readonly peer: BrowserPeer
  private readonly listeners = new Set<() => void>()
  private waiting = 0
  private lastOnline: boolean

  constructor (peer: BrowserPeer) {
    this.peer = peer
    this.lastOnline = peer.online
    peer.onPeersChange(() => this.changed())
    // The contract has no online event: peers changing is when it flips, and a slow check catches the rest.
    setInterval(() => { if (peer.online !== this.lastOnline) this.changed() }, 1_000)
  }

  get id (): string { return this.peer.id }
  get online (): boolean { return this.peer.online }
  /** Publishes started while offline that the mesh has not acknowledged yet (the peer holds them). */
  get queued (): number { return this.waiting }

  peers (): PeerLink[] {
    return this.peer.peers()
  }

  onChange (fn: () => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  tail (topic: string, onMessage: Parameters<MeshClient['tail']>[1]): TailHandle {
    const sub = this.peer.subscribe(topic, msg => {
      onMessage({ id: msg.id, topic: msg.topic, partition: msg.partition, offset: msg.offset, text: msg.text(), timestamp: msg.timestamp })
    }, { from: 'latest' })
    return { ready: sub.ready, close: () => sub.close() }
  }

  async publish (topic: string, payload: string): Promise<PublishAck> {
    const queued = !this.peer.online
    if (queued) { this.waiting++; this.changed() }
    try {
      const r = await this.peer.publish(topic, payload)
      return { id: r.id, partition: r.partition, offset: r.offset }
    } finally {
      if (queued) { this.waiting--; this.changed() }
    }
  }

  async close (): Promise<void> {
    await this.peer.close()
  }

  private changed (): void {
    this.lastOnline = this.peer.online
    for (const fn of this.listeners) fn()
  }
}
