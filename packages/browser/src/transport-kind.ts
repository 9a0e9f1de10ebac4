// How a libp2p connection reaches its peer, in the words of the BrowserPeer contract: direct WebRTC, WebRTC-direct,
// websockets or relayed. Read from the connection itself (its remote address and its limits), never assumed.
import type { Connection } from '@libp2p/interface'

export type TransportKind = 'webrtc' | 'webrtc-direct' | 'websockets' | 'relayed'

/**
 * A relayed connection carries `limits` (circuit-relay v2 caps its bytes and duration); a direct one has none, even
 * when its address still names the relay it was signalled through (browser-to-browser WebRTC: .../p2p-circuit/webrtc).
 */
export function transportKind (conn: Pick<Connection, 'remoteAddr' | 'limits'>): TransportKind {
  if (conn.limits !== undefined) return 'relayed'
  const addr = conn.remoteAddr.toString()
  if (addr.includes('/webrtc-direct')) return 'webrtc-direct'
  if (addr.includes('/webrtc')) return 'webrtc'
  if (addr.includes('/p2p-circuit')) return 'relayed'
  return 'websockets'
}
