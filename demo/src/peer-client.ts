// The mesh client over this page's browser peer (@gem-mesh/browser): tails are subscriptions, publishes go through
// the peer (which queues them while offline), links come from peer.peers(). The normal case; ws-client.ts is the fallback.
import type { BrowserPeer } from '@gem-mesh/browser'
import type { DeliveryCounts, MeshClient, PeerLink, PublishAck, TailHandle } from './mesh-client.ts'

export class BrowserPeerClient implements MeshClient {
  readonly kind = 'peer' as const
  private readonly peer: BrowserPeer
  private readonly listeners = new Set<() => void>()

  constructor (peer: BrowserPeer) {
    this.peer = peer
    // Fires on connections, roles and `online` alike.
    peer.onPeersChange(() => this.changed())
  }

  get id (): string { return this.peer.id }
  get online (): boolean { return this.peer.online }
  get server (): string | undefined { return this.peer.server }
  /** Publishes the peer holds in its outbox until a server node acknowledges them. */
  get queued (): number { return this.peer.stats().queuedPublishes }

  peers (): PeerLink[] {
    return this.peer.peers()
  }

  deliveries (): DeliveryCounts {
    const s = this.peer.stats()
    return { ...s.delivered, byTransport: s.byTransport, fedBatches: s.fedBatches }
  }

  onChange (fn: () => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  tail (topic: string, onMessage: Parameters<MeshClient['tail']>[1]): TailHandle {
    const sub = this.peer.subscribe(topic, msg => {
      const path = this.peer.deliveryPath(msg)
      onMessage({
        id: msg.id, topic: msg.topic, partition: msg.partition, offset: msg.offset, text: msg.text(), timestamp: msg.timestamp,
        ...(path === undefined ? {} : { via: `${path.via}${path.transport === undefined ? '' : ` · ${path.transport}`}` }),
      })
    }, { from: 'latest' })
    return { ready: sub.ready, close: () => sub.close() }
  }

  async publish (topic: string, payload: string): Promise<PublishAck> {
    const pending = this.peer.publish(topic, payload)
    // A publish made offline sits in the outbox: show the queue now, and again once it drained.
    this.changed()
    try {
      const r = await pending
      return { id: r.id, partition: r.partition, offset: r.offset }
    } finally {
      this.changed()
    }
  }

  async close (): Promise<void> {
    await this.peer.close()
  }

  private changed (): void {
    for (const fn of this.listeners) fn()
  }
}
