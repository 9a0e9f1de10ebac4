// @gem-mesh/browser: GEM for browsers — the browser mesh peer (createBrowserPeer), the IndexedDB tier, and the
// isomorphic core re-exported, so that a page imports one package.
export * from '@gem-mesh/core'
export { createBrowserPeer } from './browser-peer.ts'
export type { BrowserPeer, BrowserPeerOptions, BrowserPeerStats, DeliveryPath, PeerSummary } from './browser-peer.ts'
export { IndexedDbTier } from './indexeddb-tier.ts'
export type { IndexedDbTierOptions } from './indexeddb-tier.ts'
export type { TransportKind } from './transport-kind.ts'
