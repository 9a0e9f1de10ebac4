// createMeshHost: the libp2p 3 node every GEM peer runs (noise, yamux, identify, ping, gossipsub, kad-dht) plus its MeshTransport.
// Isomorphic: transports, listen addresses, the peer key and extra services come from the runtime package; it never imports one.
import { createLibp2p } from 'libp2p'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT } from '@libp2p/kad-dht'
// @libp2p/gossipsub, not @chainsafe/libp2p-gossipsub: the ChainSafe package's last release (14.x) is built on
// @libp2p/interface 2 and does not run on libp2p 3; its code moved into the js-libp2p monorepo as @libp2p/gossipsub.
import { gossipsub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ConnectionGater, Libp2p, PeerId, PeerInfo, PrivateKey } from '@libp2p/interface'
import type { Libp2pOptions } from 'libp2p'
import { GemError } from '../errors.ts'
import { Libp2pMeshTransport } from './peer-channel.ts'
import { singleWriteEncrypter } from './noise-single-write.ts'
import type { MeshServices, MeshTransportOptions } from './peer-channel.ts'

/** The DHT of GEM meshes, kept apart from the public IPFS DHT. */
export const DHT_PROTOCOL = '/gem/1/kad/1.0.0'

// Component factories are typed loosely: each runtime's transports declare their own component needs, and
// libp2p checks them when it builds the node.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Factory = (components: any) => any

export interface MeshHostOptions extends MeshTransportOptions {
  /** The peer key; persist it (runtime package) so the peer id survives restarts. A fresh Ed25519 key otherwise. */
  readonly privateKey?: PrivateKey
  /** libp2p transports: tcp/websockets/webrtc-direct on Node; websockets/webrtc/circuit-relay client in browsers. */
  readonly transports: readonly Factory[]
  /** Listen multiaddrs, e.g. /ip4/127.0.0.1/tcp/0. Browsers pass /p2p-circuit and /webrtc. */
  readonly listen?: readonly string[]
  /** Multiaddrs to announce instead of the listen addresses (behind NAT, in containers). */
  readonly announce?: readonly string[]
  /** Extra libp2p services (e.g. a circuit-relay server on Node). The names of the built-in ones are taken. */
  readonly services?: Readonly<Record<string, Factory>>
  /**
   * Default: allow every dial. libp2p's default refuses private and loopback addresses in browsers, which is
   * every address of a local mesh; production browser builds pass a real policy.
   */
  readonly connectionGater?: ConnectionGater
  /** Peers to dial once started (any one member is enough: kad-dht and discovery do the rest). */
  readonly bootstrap?: ReadonlyArray<string | Multiaddr>
  /**
   * Dial every peer that discovery reports (kad-dht lookups), up to maxConnections. GEM clusters are small
   * and every node ends up talking to most partition leaders, so a full mesh is the cheap default.
   * Browsers (many, short-lived) turn it off. Default true.
   */
  readonly dialDiscovered?: boolean
  /** Default 100. */
  readonly maxConnections?: number
  /** kad-dht in client mode: queries but does not serve (browsers). Default false. */
  readonly dhtClientMode?: boolean
  /** Filters the addresses kad-dht keeps per peer (e.g. removePublicAddressesMapper for a LAN-only mesh). Default: keep all. */
  readonly dhtPeerInfoMapper?: (peer: PeerInfo) => PeerInfo
  /** Anything else libp2p takes (peerStore, datastore, metrics, ...), applied last. */
  readonly libp2p?: Partial<Libp2pOptions>
}

/** The node behind a MeshHost, with the services createMeshHost installs. */
export type MeshLibp2p = Libp2p<MeshServices & { identify: unknown, ping: unknown, dht: unknown }>

/** What createMeshHost returns: the transport, plus the node's addresses, dialing and stop. */
export class MeshNode extends Libp2pMeshTransport {
  readonly peerId: string
  readonly #dialDiscovered: boolean
  readonly #maxConnections: number
  readonly #onDiscovery: (evt: CustomEvent<PeerInfo>) => void
  readonly #dialing = new Set<string>()
  #stopped = false

  constructor (node: MeshLibp2p, options: MeshHostOptions) {
    super(node, options)
    this.peerId = node.peerId.toString()
    this.#dialDiscovered = options.dialDiscovered ?? true
    this.#maxConnections = options.maxConnections ?? 100
    this.#onDiscovery = evt => { this.#discovered(evt.detail.id) }
    node.addEventListener('peer:discovery', this.#onDiscovery)
  }

  /** Addresses other peers can dial, each ending in /p2p/<peer id>. */
  multiaddrs (): string[] {
    return this.node.getMultiaddrs().map(ma => ma.toString())
  }

  /**
   * Connects to a peer by multiaddr (with or without /p2p/) and resolves with its peer id. Rejects with
   * PEER_UNREACHABLE when the dial fails or exceeds `timeoutMs` (default 5 s).
   */
  async dial (target: string | Multiaddr, timeoutMs = 5_000): Promise<string> {
    let ma: Multiaddr
    try {
      ma = typeof target === 'string' ? multiaddr(target) : target
    } catch (err) {
      throw new GemError('BAD_REQUEST', `not a multiaddr: ${String(target)} (${(err as Error).message})`)
    }
    try {
      const conn = await this.node.dial(ma, { signal: AbortSignal.timeout(timeoutMs) })
      return conn.remotePeer.toString()
    } catch (err) {
      throw new GemError('PEER_UNREACHABLE', `cannot dial ${ma.toString()}: ${(err as Error).message}`)
    }
  }

  /** Peers this node knows of (peer store), connected or not, except itself. */
  async knownPeers (): Promise<string[]> {
    const peers = await this.node.peerStore.all()
    return peers.map(p => p.id.toString()).filter(id => id !== this.peerId)
  }

  #discovered (peer: PeerId): void {
    const id = peer.toString()
    if (!this.#dialDiscovered || this.#stopped || id === this.peerId || this.#dialing.has(id)) return
    if (this.node.getConnections(peer).length > 0) return
    if (this.node.getConnections().length >= this.#maxConnections) return
    this.#dialing.add(id)
    this.node.dial(peer, { signal: AbortSignal.timeout(5_000) })
      .catch(() => { /* discovery is best effort: a peer we cannot reach now is found again later */ })
      .finally(() => { this.#dialing.delete(id) })
  }

  /** Closes the transport, then stops the libp2p node. Safe to call twice. */
  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    this.node.removeEventListener('peer:discovery', this.#onDiscovery)
    await this.close()
    await this.node.stop()
  }
}

const permissive: ConnectionGater = {
  denyDialMultiaddr: () => false,
}

/** Builds and starts a libp2p node with GEM's stack, dials `bootstrap`, and returns it as a MeshNode. */
export async function createMeshHost (options: MeshHostOptions): Promise<MeshNode> {
  const extra = options.services ?? {}
  for (const name of ['identify', 'ping', 'dht', 'pubsub']) {
    if (name in extra) throw new GemError('BAD_REQUEST', `service name ${name} is taken by the mesh host`)
  }
  const libp2pOptions: Libp2pOptions<Record<string, unknown>> = {
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    addresses: {
      listen: [...(options.listen ?? [])],
      ...(options.announce !== undefined ? { announce: [...options.announce] } : {}),
    },
    transports: [...options.transports],
    // One buffer per encrypted send: tcp and websockets write each buffer of a send on its own (noise-single-write.ts).
    connectionEncrypters: [singleWriteEncrypter(noise())],
    streamMuxers: [yamux()],
    connectionGater: options.connectionGater ?? permissive,
    connectionManager: { maxConnections: options.maxConnections ?? 100 },
    // Bursts of data delay pings; the default adaptive timeout then aborts healthy connections.
    connectionMonitor: { pingTimeout: { minTimeout: 30_000 } },
    services: {
      ...extra,
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: options.dhtClientMode ?? false,
        // kad-dht's default drops private and loopback addresses (it is tuned for the public IPFS DHT), which
        // leaves a LAN or loopback mesh with an empty routing table: keep every address, the gater decides.
        peerInfoMapper: options.dhtPeerInfoMapper ?? (peer => peer),
        // A tiny mesh has few peers: query as soon as there is one, and look ourselves up quickly so one
        // contact tells us about the others.
        initialQuerySelfInterval: 200,
        // The default re-runs the self-lookup every 5 minutes, so a peer that joined the chain after our first
        // lookup stayed unknown that long (seen as a flaky 4-host chain test). GEM meshes are small: 5 s is cheap.
        querySelfInterval: 5_000,
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true, // membership gossip before anyone else subscribed is not an error
        emitSelf: false,
      }),
    } as Record<string, Factory>,
    ...(options.libp2p as Partial<Libp2pOptions<Record<string, unknown>>> | undefined),
  }
  const node = await createLibp2p(libp2pOptions) as unknown as MeshLibp2p
  const host = new MeshNode(node, options)
  if (options.bootstrap !== undefined && options.bootstrap.length > 0) {
    const results = await Promise.allSettled(options.bootstrap.map(t => host.dial(t)))
    if (results.every(r => r.status === 'rejected')) {
      await host.stop()
      throw new GemError('PEER_UNREACHABLE', `no bootstrap peer answered: ${results.map(r => (r as PromiseRejectedResult).reason?.message).join('; ')}`)
    }
  }
  return host
}
