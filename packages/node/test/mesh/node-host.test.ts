// The Node mesh host: persisted peer key, --join target resolution, listeners, and hosts in separate processes
// (frames/s between processes; webrtc-direct, which runs only in a child process). Everything started is stopped.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { GemError } from '@gem-mesh/core'
import { PEER_KEY_FILE, loadOrCreatePeerKey, resolveJoinTarget } from '../../src/mesh/node-host.ts'
import { Mesh, withMesh, tcpAddr, u32, readU32, waitFor } from './mesh-harness.ts'

const CHILD = join(import.meta.dirname, 'mesh-child.ts')

/** Starts mesh-child.ts and resolves with its first JSON line. */
function startChild (mode: string, children: Set<ChildProcess>): Promise<{ child: ChildProcess, ready: Record<string, unknown> }> {
  const child = spawn(process.execPath, [CHILD, mode], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.add(child)
  let stderr = ''
  child.stderr!.on('data', d => { stderr += String(d) })
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.once('line', line => { resolve({ child, ready: JSON.parse(line) }) })
    child.once('exit', code => { reject(new Error(`mesh-child ${mode} exited ${code} before reporting: ${stderr}`)) })
  })
}

function stopChildren (children: Set<ChildProcess>): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  children.clear()
}

/** A stand-in for the gateway's GET /info. */
async function infoServer (body: unknown): Promise<{ url: string, server: Server }> {
  const server = createServer((req, res) => {
    if (req.url === '/info') { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(body)) } else { res.statusCode = 404; res.end() }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server }
}

describe('node mesh host', () => {
  test('the peer id survives restarts: the key is kept in <dataDir>/peer.key, mode 0600', async () => {
    await withMesh(async mesh => {
      const dir = mesh.dir()
      const first = await mesh.start({ dataDir: dir })
      const id = first.peerId
      await mesh.stopHost(first)
      assert.equal(statSync(join(dir, PEER_KEY_FILE)).mode & 0o777, 0o600)
      const second = await mesh.start({ dataDir: dir })
      assert.equal(second.peerId, id)
      const other = await mesh.start({ dataDir: mesh.dir() })
      assert.notEqual(other.peerId, id)
      // a damaged key is refused, never silently replaced
      const bad = mesh.dir()
      writeFileSync(join(bad, PEER_KEY_FILE), 'not a key')
      await assert.rejects(loadOrCreatePeerKey(bad), (e: unknown) => GemError.is(e, 'CORRUPT_RECORD'))
    })
  })

  test('listens on 127.0.0.1 with tcp and websockets by default; both carry GEM frames', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const addrs = a.multiaddrs()
      assert.ok(addrs.every(m => m.startsWith('/ip4/127.0.0.1/')), addrs.join(', '))
      const ws = addrs.find(m => m.includes('/ws/'))
      assert.ok(ws !== undefined, 'a websockets address')
      await a.handle('/gem/1/echo', (_from, f) => f)
      const b = await mesh.start()
      await b.dial(ws)
      assert.ok(b.node.getConnections()[0].remoteAddr.toString().includes('/ws'))
      assert.equal(readU32(await b.request(a.peerId, '/gem/1/echo', u32(5))), 5)
    })
  })

  test('resolveJoinTarget: a multiaddr as is; an http url through /info; a clear error when multiaddrs is missing', async () => {
    const mesh = new Mesh()
    const servers: Server[] = []
    try {
      const a = await mesh.start()
      const addr = tcpAddr(a)
      assert.deepEqual((await resolveJoinTarget(addr)).map(String), [addr])
      await assert.rejects(resolveJoinTarget('/not/a/multiaddr'), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      await assert.rejects(resolveJoinTarget('ftp://x'), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))

      const bare = addr.replace(/\/p2p\/.*$/, '')
      const good = await infoServer({ peer_id: a.peerId, multiaddrs: [bare] })
      servers.push(good.server)
      assert.deepEqual((await resolveJoinTarget(good.url)).map(String), [addr], 'peer_id appended where missing')
      // --join through the http url
      const b = await mesh.start({ join: [good.url] })
      await waitFor(() => b.peers().includes(a.peerId), 'b connected to a')

      const old = await infoServer({ status: 'ok' })
      servers.push(old.server)
      await assert.rejects(resolveJoinTarget(old.url), (e: unknown) => GemError.is(e, 'BAD_REQUEST') && /multiaddrs/.test(e.message))
      await assert.rejects(resolveJoinTarget('http://127.0.0.1:1'), (e: unknown) => GemError.is(e, 'PEER_UNREACHABLE'))
    } finally {
      for (const s of servers) s.close()
      await mesh.stop()
    }
  })

  test('frames between two processes over tcp (frames/s reported)', async t => {
    const mesh = new Mesh()
    const children = new Set<ChildProcess>()
    try {
      const { child, ready } = await startChild('receiver', children)
      const a = await mesh.start()
      const peer = ready.peerId as string
      await a.dial((ready.multiaddrs as string[]).find(m => !m.includes('/ws'))!)
      const N = 50_000
      const started = performance.now()
      const sends: Array<Promise<void>> = []
      for (let i = 0; i < N; i++) sends.push(a.send(peer, '/gem/1/bulk', new Uint8Array(32)))
      await Promise.all(sends)
      let count = 0
      await waitFor(async () => {
        count = Number(new TextDecoder().decode(await a.request(peer, '/gem/1/count', new Uint8Array(0))))
        return count === N
      }, `${N} frames at the child (has ${count})`, 60_000)
      const secs = (performance.now() - started) / 1000
      t.diagnostic(`${N} frames of 32 bytes, parent -> child process over tcp: ${Math.round(N / secs)} frames/s`)
      child.stdin!.end()
      await waitFor(() => child.exitCode !== null, 'the child to stop')
      assert.equal(child.exitCode, 0)
    } finally {
      stopChildren(children)
      await mesh.stop()
    }
  })

  test('webrtc-direct carries requests and frames (in a child process: node-datachannel may abort on stop)', async t => {
    const children = new Set<ChildProcess>()
    try {
      const { ready } = await startChild('webrtc-pair', children)
      assert.equal(ready.echoed, 'over webrtc-direct')
      assert.equal(ready.count, 20_000)
      assert.match(String(ready.transport), /webrtc-direct/)
      t.diagnostic(`20000 frames of 32 bytes over webrtc-direct (two hosts in one child process): ${String(ready.framesPerSecond)} frames/s`)
    } finally {
      stopChildren(children)
    }
  })
})
