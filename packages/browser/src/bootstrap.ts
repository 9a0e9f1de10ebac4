// Turns createBrowserPeer's `bootstrap` list into server peers to dial: multiaddrs as they are, gateway urls through
// their GET /info (`multiaddrs`, `peer_id`). Keeps only what a browser can dial: websockets and webrtc-direct.
import { GemError } from '@gem-mesh/core'
import { multiaddr } from '@gem-mesh/core/mesh'
import type { Multiaddr } from '@gem-mesh/core/mesh'

export interface ServerTarget {
  peerId: string
  /** Dialable addresses of that server, preferred transport first (refreshed when its gateway is asked again). */
  addrs: Multiaddr[]
}

export type PreferredTransport = 'websockets' | 'webrtc-direct'

export async function resolveBootstrap (list: readonly string[], prefer: PreferredTransport = 'websockets', timeoutMs = 5_000): Promise<ServerTarget[]> {
  checkBootstrap(list)
  const byPeer = new Map<string, Multiaddr[]>()
  const errors: string[] = []
  // Resolved in parallel, merged in the caller's order: the first server listed is where the peer attaches first.
  const resolved = await Promise.all(list.map(target => addressesOf(target, timeoutMs).catch((err: Error) => { errors.push(err.message); return [] })))
  for (const addrs of resolved) {
    for (const ma of addrs) {
      const peerId = ma.getComponents().findLast(c => c.name === 'p2p')?.value
      if (peerId === undefined) { errors.push(`bootstrap ${ma.toString()}: needs /p2p/<peer id>`); continue }
      if (!browserDialable(ma)) continue
      const list = byPeer.get(peerId) ?? []
      list.push(ma)
      byPeer.set(peerId, list)
    }
  }
  if (byPeer.size === 0) throw new GemError('PEER_UNREACHABLE', `bootstrap: no server address a browser can dial (${errors.join('; ') || 'only tcp addresses'})`)
  return [...byPeer.entries()].map(([peerId, addrs]) => ({ peerId, addrs: addrs.sort((a, b) => rank(a, prefer) - rank(b, prefer)) }))
}

/**
 * Refuses a bootstrap list that can never work (BAD_REQUEST): not a list, empty, or an entry that is neither a
 * multiaddr with /p2p/ nor an http(s) url. Unreachable servers are not an error here: the peer starts offline.
 */
export function checkBootstrap (list: readonly string[]): void {
  if (!Array.isArray(list) || list.length === 0) throw new GemError('BAD_REQUEST', 'bootstrap: give at least one server multiaddr or gateway url')
  for (const target of list) {
    if (typeof target !== 'string') throw new GemError('BAD_REQUEST', 'bootstrap: every entry must be a string')
    const t = target.trim()
    if (t.startsWith('/')) {
      let ma: Multiaddr
      try { ma = multiaddr(t) } catch (err) { throw new GemError('BAD_REQUEST', `bootstrap ${t}: not a multiaddr (${(err as Error).message})`) }
      if (ma.getComponents().findLast(c => c.name === 'p2p') === undefined) throw new GemError('BAD_REQUEST', `bootstrap ${t}: needs /p2p/<peer id>`)
      continue
    }
    let url: URL
    try { url = new URL(t) } catch { throw new GemError('BAD_REQUEST', `bootstrap ${t}: expected a multiaddr or an http(s) gateway url`) }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new GemError('BAD_REQUEST', `bootstrap ${t}: expected a multiaddr or an http(s) gateway url`)
  }
}

async function addressesOf (target: string, timeoutMs: number): Promise<Multiaddr[]> {
  const t = target.trim()
  if (t.startsWith('/')) {
    try { return [multiaddr(t)] } catch (err) { throw new GemError('BAD_REQUEST', `bootstrap ${t}: not a multiaddr (${(err as Error).message})`) }
  }
  let url: URL
  try { url = new URL(t) } catch { throw new GemError('BAD_REQUEST', `bootstrap ${t}: expected a multiaddr or an http(s) gateway url`) }
  const info = new URL('info', url.href.endsWith('/') ? url.href : `${url.href}/`)
  let body: { multiaddrs?: unknown, peer_id?: unknown }
  try {
    const res = await fetch(info, { signal: AbortSignal.timeout(timeoutMs) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    body = await res.json() as typeof body
  } catch (err) {
    throw new GemError('PEER_UNREACHABLE', `bootstrap ${t}: cannot read ${info.href}: ${(err as Error).message}`)
  }
  if (!Array.isArray(body.multiaddrs)) throw new GemError('BAD_REQUEST', `bootstrap ${t}: ${info.href} lists no multiaddrs (is the mesh on?)`)
  const peerId = typeof body.peer_id === 'string' ? body.peer_id : undefined
  return body.multiaddrs.filter((a): a is string => typeof a === 'string').map(a => {
    const ma = multiaddr(a)
    return peerId !== undefined && !a.includes('/p2p/') ? ma.encapsulate(`/p2p/${peerId}`) : ma
  })
}

function browserDialable (ma: Multiaddr): boolean {
  const s = ma.toString()
  if (s.includes('/p2p-circuit')) return false
  return s.includes('/ws') || (s.includes('/webrtc-direct') && s.includes('/certhash/'))
}

function rank (ma: Multiaddr, prefer: PreferredTransport): number {
  const isDirect = ma.toString().includes('/webrtc-direct')
  return (prefer === 'webrtc-direct') === isDirect ? 0 : 1
}
