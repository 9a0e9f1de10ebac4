// Framed streams between real hosts: batching and order at volume, requests and their failures, backpressure,
// unreachable peers (refused and hanging dials). tcp on 127.0.0.1; every host is stopped even on failure.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import type { Socket } from 'node:net'
import { GemError } from '@gem-mesh/core'
import { generatePeerKey, multiaddr, peerIdOf } from '@gem-mesh/core/mesh'
import { Mesh, withMesh, fullMesh, readU32, str, tcpAddr, text, u32, waitFor } from './mesh-harness.ts'

const N = 50_000

describe('mesh streams', () => {
  test(`${N} small frames each way arrive complete and in order per peer and protocol`, async t => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      await fullMesh([a, b])
      const seen = new Map<string, number>() // `${to}/${protocol}` -> next expected sequence
      const disorder: string[] = []
      const sink = (to: string, protocol: string) => (_from: string, frame: Uint8Array): void => {
        const key = `${to}${protocol}`
        const next = seen.get(key) ?? 0
        const got = readU32(frame)
        if (got !== next && disorder.length < 5) disorder.push(`${key}: expected ${next}, got ${got}`)
        seen.set(key, got + 1)
      }
      for (const [h, name] of [[a, 'a'], [b, 'b']] as const) {
        await h.handle('/gem/1/bulk-x', sink(name, '/x'))
        await h.handle('/gem/1/bulk-y', sink(name, '/y'))
      }
      const started = performance.now()
      const sends: Array<Promise<void>> = []
      for (let i = 0; i < N; i++) {
        const frame = new Uint8Array(32)
        frame.set(u32(i))
        sends.push(a.send(b.peerId, '/gem/1/bulk-x', frame), a.send(b.peerId, '/gem/1/bulk-y', frame), b.send(a.peerId, '/gem/1/bulk-x', frame))
      }
      await Promise.all(sends)
      await waitFor(() => ['b/x', 'b/y', 'a/x'].every(k => seen.get(k) === N), 'every frame at its receiver', 60_000)
      const secs = (performance.now() - started) / 1000
      assert.deepEqual(disorder, [])
      t.diagnostic(`${3 * N} frames of 32 bytes over tcp (two in-process hosts, 3 streams): ${Math.round(3 * N / secs)} frames/s`)
    })
  })

  test('a sender that awaits every send still gets all frames through in order', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      const got: number[] = []
      await b.handle('/gem/1/seq', (_from, f) => { got.push(readU32(f)) })
      for (let i = 0; i < 500; i++) await a.send(b.peerId, '/gem/1/seq', u32(i))
      await waitFor(() => got.length === 500, '500 frames')
      assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i))
    })
  })

  test('a full queue makes send wait (backpressure) and loses nothing', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start({ maxQueuedBytes: 4096 })
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      const got: number[] = []
      await b.handle('/gem/1/bp', (_from, f) => { got.push(readU32(f)) })
      await a.send(b.peerId, '/gem/1/bp', u32(0)) // stream open
      let pendingAtReturn = 0
      const sends: Array<Promise<void>> = []
      for (let i = 1; i <= 2000; i++) {
        const frame = new Uint8Array(200)
        frame.set(u32(i))
        let settled = false
        const p = a.send(b.peerId, '/gem/1/bp', frame)
        p.then(() => { settled = true }, () => { settled = true })
        await null // let an already-resolved promise report itself
        if (!settled) pendingAtReturn++
        sends.push(p)
        if (i % 100 === 0) await Promise.all(sends.splice(0))
      }
      await Promise.all(sends)
      await waitFor(() => got.length === 2001, 'all 2001 frames')
      assert.deepEqual(got, Array.from({ length: 2001 }, (_, i) => i))
      assert.ok(pendingAtReturn > 0, 'some sends waited for queue space')
    })
  })

  test('request/response: answers, handler errors keep their code, timeouts reject with TIMEOUT', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      await b.handle('/gem/1/control', async (from, f) => {
        const cmd = str(f)
        if (cmd === 'echo-from') return text(from)
        if (cmd === 'not-leader') throw new GemError('NOT_LEADER', 'ask node-2')
        if (cmd === 'boom') throw new Error('kaboom')
        if (cmd === 'silent') return new Promise<never>(() => {})
        if (cmd === 'void') return undefined
        return f
    })
    assert.equal(str(await a.request(b.peerId, '/gem/1/control', text('echo-from'))), a.peerId)
    assert.deepEqual(await a.request(b.peerId, '/gem/1/control', text('void')), new Uint8Array(0))
    await assert.rejects(a.request(b.peerId, '/gem/1/control', text('not-leader')),
      (e: unknown) => GemError.is(e, 'NOT_LEADER') && e.message === 'ask node-2')
    await assert.rejects(a.request(b.peerId, '/gem/1/control', text('boom')),
      (e: unknown) => GemError.is(e, 'INTERNAL') && /kaboom/.test(e.message))
    await assert.rejects(a.request(b.peerId, '/gem/1/control', text('silent'), { timeoutMs: 200 }),
      (e: unknown) => GemError.is(e, 'TIMEOUT'))
    // many concurrent requests, answered out of order, each matched to its caller
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => a.request(b.peerId, '/gem/1/control', u32(i))))
    answers.forEach((r, i) => { assert.equal(readU32(r), i) })
    // requests both ways on the same protocol
    await a.handle('/gem/1/control', (_from, f) => f)
    assert.equal(readU32(await b.request(a.peerId, '/gem/1/control', u32(7))), 7)
    })
  })

  test('an oversize frame is refused before it is sent', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start({ maxFrameBytes: 1024 })
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      await assert.rejects(a.send(b.peerId, '/gem/1/big', new Uint8Array(1025)), (e: unknown) => GemError.is(e, 'PAYLOAD_TOO_LARGE'))
      await assert.rejects(a.send(b.peerId, 'no-prefix', new Uint8Array(1)), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    })
  })

  test('unreachable peers: unknown, refused and hanging dials reject with PEER_UNREACHABLE', async () => {
    const mesh = new Mesh()
    const sockets = new Set<Socket>()
    // accepts TCP and then says nothing: the noise handshake hangs, as dials sometimes do
    const blackhole = createServer(s => { sockets.add(s) })
    try {
      const a = await mesh.start({ dialTimeoutMs: 500 })
      const stranger = peerIdOf(await generatePeerKey())
      await assert.rejects(a.send(stranger, '/gem/1/x', new Uint8Array(1)), (e: unknown) => GemError.is(e, 'PEER_UNREACHABLE'))

      const b = await mesh.start()
      const bAddr = tcpAddr(b)
      await a.dial(bAddr)
      await mesh.stopHost(b)
      await waitFor(() => !a.peers().includes(b.peerId), 'a to see b gone')
      await assert.rejects(a.send(b.peerId, '/gem/1/x', new Uint8Array(1)), (e: unknown) => GemError.is(e, 'PEER_UNREACHABLE'))

      await new Promise<void>(resolve => blackhole.listen(0, '127.0.0.1', resolve))
      const port = (blackhole.address() as { port: number }).port
      const ghost = peerIdOf(await generatePeerKey())
      await a.node.peerStore.merge((await import('@libp2p/peer-id')).peerIdFromString(ghost), {
        multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${port}`)],
      })
      const started = Date.now()
      await assert.rejects(a.request(ghost, '/gem/1/x', new Uint8Array(1), { timeoutMs: 30_000 }),
        (e: unknown) => GemError.is(e, 'PEER_UNREACHABLE'))
      assert.ok(Date.now() - started < 30_000, 'the dial timeout, not the request timeout, ended it')
      // the transport still works after all that
      const c = await mesh.start({ bootstrap: [tcpAddr(a)] })
      await c.handle('/gem/1/x', (_from, f) => f)
      assert.deepEqual(await a.request(c.peerId, '/gem/1/x', u32(1)), u32(1))
    } finally {
      for (const s of sockets) s.destroy()
      blackhole.close()
      await mesh.stop()
    }
  })
})
