// Test harness for the mesh suites: real Node mesh hosts on 127.0.0.1 (tcp + websockets; webrtc-direct only in
// child processes), temp data dirs, and a registry that stops every host and removes every dir even on failure.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startNodeMeshHost } from '../../src/mesh/node-host.ts'
import type { NodeMeshOptions } from '../../src/mesh/node-host.ts'
import type { MeshNode } from '@gem-mesh/core/mesh'
import { waitFor } from '../../../core/test/wait-for.ts'
export { waitFor }

export class Mesh {
  readonly hosts = new Set<MeshNode>()
  readonly #dirs: string[] = []

  /** A temp dir removed by stop(). */
  dir (): string {
    const d = mkdtempSync(join(tmpdir(), 'gem-mesh-'))
    this.#dirs.push(d)
    return d
  }

  /**
   * Starts a host. webrtc-direct stays off in-process: node-datachannel may abort the whole process on stop
   * (TOOLCHAIN.md), so the webrtc-direct suite runs its hosts in a child process.
   */
  async start (options: NodeMeshOptions = {}): Promise<MeshNode> {
    const host = await startNodeMeshHost({ webrtcDirectPort: false, dialTimeoutMs: 2_000, ...options })
    this.hosts.add(host)
    return host
  }

  /** Starts a host bootstrapped from `target` (see tcpTarget in test/support) and resolves once it is connected to it. */
  async startConnected (target: { peer: string, addr: string }, what = 'connected to the node'): Promise<MeshNode> {
    const host = await this.start({ bootstrap: [target.addr] })
    await waitFor(() => host.peers().includes(target.peer), what, 20_000)
    return host
  }

  async stopHost (host: MeshNode): Promise<void> {
    this.hosts.delete(host)
    await host.stop()
  }

  async stop (): Promise<void> {
    const hosts = [...this.hosts]
    this.hosts.clear()
    await Promise.allSettled(hosts.map(h => h.stop()))
    for (const d of this.#dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  }
}

/** The tcp multiaddr of a host (with /p2p/). */
export function tcpAddr (host: MeshNode): string {
  const a = host.multiaddrs().find(m => m.includes('/tcp/') && !m.includes('/ws'))
  if (a === undefined) throw new Error(`host ${host.peerId} has no tcp address: ${host.multiaddrs().join(', ')}`)
  return a
}

/** Waits until every host is connected to every other. */
export async function fullMesh (hosts: readonly MeshNode[], timeoutMs = 15_000): Promise<void> {
  await waitFor(() => hosts.every(h => hosts.every(o => o === h || h.peers().includes(o.peerId))),
    `a full mesh of ${hosts.length} hosts (peers: ${hosts.map(h => h.peers().length).join(', ')})`, timeoutMs)
}

export const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}
export const readU32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0)
export const text = (s: string): Uint8Array => new TextEncoder().encode(s)
export const str = (b: Uint8Array): string => new TextDecoder().decode(b)

/** Runs `fn` with a fresh Mesh and stops every host it started, even when `fn` fails. */
export async function withMesh<T> (fn: (mesh: Mesh) => Promise<T>): Promise<T> {
  const mesh = new Mesh()
  try {
    return await fn(mesh)
  } finally {
    await mesh.stop()
  }
}
