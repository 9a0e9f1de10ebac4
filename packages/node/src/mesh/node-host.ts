// The mesh host as a Node server peer runs it: tcp, websockets and webrtc-direct listeners, a circuit-relay v2
// server, a peer key persisted in <dataDir>/peer.key, and `--join` target resolution. It never speaks GEM's protocols itself.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { webRTCDirect } from '@libp2p/webrtc'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { GemError } from '@gem-mesh/core'
import { createMeshHost, generatePeerKey, multiaddr, peerKeyFromBytes, peerKeyToBytes } from '@gem-mesh/core/mesh'
import type { MeshHostOptions, MeshNode, Multiaddr, PrivateKey } from '@gem-mesh/core/mesh'

export const PEER_KEY_FILE = 'peer.key'

export interface NodeMeshOptions extends Omit<MeshHostOptions, 'transports' | 'listen' | 'privateKey'> {
  /** Where peer.key lives. Without it (and without privateKey) the node gets a fresh identity each start. */
  readonly dataDir?: string
  /** An explicit key wins over dataDir's. */
  readonly privateKey?: PrivateKey
  /** Interface to listen on. Default 127.0.0.1: exposing the mesh beyond the machine is a deliberate choice. */
  readonly host?: string
  /** 0 = ephemeral (default). */
  readonly tcpPort?: number
  /** websockets listener port; false = no websockets listener. Default 0. */
  readonly wsPort?: number | false
  /** webrtc-direct (UDP) listener port; false = off. Default 0. Browsers dial it with its certhash multiaddr. */
  readonly webrtcDirectPort?: number | false
  /** Run a circuit-relay v2 server so browsers behind NAT can reach each other through this node. Default true. */
  readonly relayServer?: boolean
  /** Other nodes to join: multiaddrs or http(s) urls of their gateways (resolved through /info). */
  readonly join?: readonly string[]
}

/**
 * Loads the Ed25519 peer key from `<dataDir>/peer.key`, creating it (mode 0600, written atomically) on first
 * start, so the node keeps its peer id across restarts.
 */
export async function loadOrCreatePeerKey (dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, PEER_KEY_FILE)
  let bytes: Uint8Array | undefined
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (bytes !== undefined) {
    try {
      return peerKeyFromBytes(bytes)
    } catch (err) {
      // Never silently replace a damaged identity: the peer id is how the rest of the mesh knows this node.
      throw new GemError('CORRUPT_RECORD', `${file}: ${(err as Error).message}; move it away to get a new peer id`)
    }
  }
  const key = await generatePeerKey()
  await mkdir(dataDir, { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, peerKeyToBytes(key), { mode: 0o600, flush: true })
  await rename(tmp, file)
  return key
}

/** Starts a Node mesh host: listeners on `host` (default 127.0.0.1), relay server, persisted key, then joins. */
export async function startNodeMeshHost (options: NodeMeshOptions = {}): Promise<MeshNode> {
  const host = options.host ?? '127.0.0.1'
  const ip = host.includes(':') ? 'ip6' : 'ip4'
  const privateKey = options.privateKey ?? (options.dataDir !== undefined ? await loadOrCreatePeerKey(options.dataDir) : undefined)
  const transports: MeshHostOptions['transports'][number][] = [tcp()]
  const listen = [`/${ip}/${host}/tcp/${options.tcpPort ?? 0}`]
  const wsPort = options.wsPort ?? 0
  if (wsPort !== false) {
    transports.push(webSockets())
    listen.push(`/${ip}/${host}/tcp/${wsPort}/ws`)
  }
  const rtcPort = options.webrtcDirectPort ?? 0
  if (rtcPort !== false) {
    transports.push(webRTCDirect())
    listen.push(`/${ip}/${host}/udp/${rtcPort}/webrtc-direct`)
  }
  const services = { ...options.services }
  if (options.relayServer ?? true) services.relay = circuitRelayServer()

  const bootstrap: Array<string | Multiaddr> = [...(options.bootstrap ?? [])]
  for (const target of options.join ?? []) bootstrap.push(...await resolveJoinTarget(target))

  return createMeshHost({
    ...options,
    ...(privateKey !== undefined ? { privateKey } : {}),
    transports,
    listen,
    services,
    bootstrap,
  })
}

/**
 * Turns a `--join` target into multiaddrs to dial: a multiaddr as is, or an http(s) url of a GEM node whose
 * `GET <url>/info` lists `multiaddrs` (and `peer_id`, appended as /p2p/ where an address lacks it).
 */
export async function resolveJoinTarget (target: string, options: { timeoutMs?: number } = {}): Promise<Multiaddr[]> {
  const t = target.trim()
  if (t.startsWith('/')) {
    try {
      return [multiaddr(t)]
    } catch (err) {
      throw new GemError('BAD_REQUEST', `--join ${t}: not a multiaddr (${(err as Error).message})`)
    }
  }
  let url: URL
  try {
    url = new URL(t)
  } catch {
    throw new GemError('BAD_REQUEST', `--join ${t}: expected a multiaddr (/ip4/...) or an http(s) url of a GEM node`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new GemError('BAD_REQUEST', `--join ${t}: expected a multiaddr (/ip4/...) or an http(s) url of a GEM node`)
  }
  const infoUrl = new URL('info', url.href.endsWith('/') ? url.href : `${url.href}/`)
  let info: unknown
  try {
    const res = await fetch(infoUrl, { signal: AbortSignal.timeout(options.timeoutMs ?? 5_000) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    info = await res.json()
  } catch (err) {
    throw new GemError('PEER_UNREACHABLE', `--join ${t}: cannot read ${infoUrl.href}: ${(err as Error).message}`)
  }
  const body = info as { multiaddrs?: unknown, peer_id?: unknown }
  if (!Array.isArray(body.multiaddrs) || body.multiaddrs.length === 0 || !body.multiaddrs.every(a => typeof a === 'string')) {
    throw new GemError('BAD_REQUEST', `--join ${t}: ${infoUrl.href} has no "multiaddrs" list; is the node's mesh enabled (and is it a GEM node)?`)
  }
  const peerId = typeof body.peer_id === 'string' ? body.peer_id : undefined
  return (body.multiaddrs as string[]).map(a => {
    let ma: Multiaddr
    try {
      ma = multiaddr(a)
    } catch (err) {
      throw new GemError('BAD_REQUEST', `--join ${t}: ${infoUrl.href} lists a bad multiaddr ${a} (${(err as Error).message})`)
    }
    return peerId !== undefined && !a.includes('/p2p/') ? ma.encapsulate(`/p2p/${peerId}`) : ma
  })
}
