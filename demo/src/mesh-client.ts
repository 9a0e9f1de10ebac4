// The small interface the tail, the publish form, the status bar and the mesh graph use to reach message traffic.
// Two implementations: the browser peer (peer-client.ts, the normal case) and the node's /ws gateway (ws-client.ts).

export type LinkTransport = 'webrtc' | 'webrtc-direct' | 'websockets' | 'relayed'

export interface PeerLink {
  id: string
  role: 'server' | 'browser'
  transports: LinkTransport[]
}

export interface TailMessage {
  id: string
  topic: string
  partition: number
  offset: number
  text: string
  /** Milliseconds since the epoch. */
  timestamp: number
  /** How it reached this page, when the client knows (e.g. 'browser · webrtc', 'server · websockets'). */
  via?: string
}

export interface TailHandle {
  /** Resolves once deliveries flow; rejects with a coded error (e.g. TOPIC_NOT_FOUND). */
  ready: Promise<void>
  close(): void
}

export interface PublishAck { id: string, partition: number, offset: number }

/** Where this page's deliveries came from since it started. */
export interface DeliveryCounts {
  server: number
  browser: number
  byTransport: Partial<Record<LinkTransport, number>>
  /** Live batches this page forwarded to other browsers. */
  fedBatches: number
}

export interface MeshClient {
  /** 'peer' = a libp2p browser peer of the mesh; 'gateway' = the WebSocket fallback. */
  readonly kind: 'peer' | 'gateway'
  /** This page's peer id (or its gateway client id). */
  readonly id: string
  /** False while no server node is reachable. */
  readonly online: boolean
  /** Publishes accepted while offline and not yet acknowledged. */
  readonly queued: number
  /** The server node (peer id) this page's requests go to now, if any. */
  readonly server: string | undefined
  peers(): PeerLink[]
  deliveries(): DeliveryCounts
  /** Called on any change of peers, online state or queue length; returns the unsubscribe. */
  onChange(fn: () => void): () => void
  tail(topic: string, onMessage: (m: TailMessage) => void): TailHandle
  /** Resolves once the message is durable; rejects with an Error that has a `code`. */
  publish(topic: string, payload: string): Promise<PublishAck>
  close(): Promise<void>
}

/** A coded error as every GEM surface reports it. */
export class DashboardError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

export function errorCode (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'INTERNAL'
}
