// The mesh's transport layer: GEM's `/gem/1/*` wire, the MeshTransport contract and the libp2p host behind it.
// Re-exports only; runtime packages add transports and listeners, protocols above use MeshTransport.
export * from './frames.ts'
export * from './transport.ts'
export { Libp2pMeshTransport } from './peer-channel.ts'
export type { MeshTransportOptions, MeshServices } from './peer-channel.ts'
export { createMeshHost, MeshNode, DHT_PROTOCOL } from './host.ts'
export type { MeshHostOptions, MeshLibp2p } from './host.ts'
export { generatePeerKey, peerKeyFromBytes, peerKeyToBytes, peerIdOf } from './peer-key.ts'
export type { PrivateKey } from './peer-key.ts'
export { multiaddr } from '@multiformats/multiaddr'
export type { Multiaddr } from '@multiformats/multiaddr'
export { PeerDirectory, HELLO_PROTOCOL } from './peer-directory.ts'
export type { NodeCard } from './peer-directory.ts'
