// Hosts under hostile or broken peers: other wire versions, garbage, oversize frames, peers that vanish
// mid-stream or restart, and gossip. Real hosts over tcp on 127.0.0.1; every host is stopped even on failure.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import { GemError } from '@gem-mesh/core'
import { FRAME, FrameDecoder, WIRE_VERSION, decodeErrorPayload, encodeFrame } from '@gem-mesh/core/mesh'
import type { Frame, MeshNode } from '@gem-mesh/core/mesh'
import { withMesh, fullMesh, readU32, str, tcpAddr, text, u32, waitFor } from './mesh-harness.ts'

/** Opens a raw libp2p stream (no MeshTransport) and collects what comes back until the stream closes. */
async function rawStream (from: MeshNode, to: MeshNode, protocol: string): Promise<{ stream: Stream, received: Uint8Array[], closed: Promise<void> }> {
  const stream = await from.node.dialProtocol(peerIdFromString(to.peerId), protocol)
  const received: Uint8Array[] = []
  stream.addEventListener('message', evt => { received.push(evt.data.subarray()) })
  const closed = new Promise<void>(resolve => {
    stream.addEventListener('close', () => { resolve() })
    stream.addEventListener('remoteCloseWrite', () => { resolve() })
  })
  return { stream, received, closed }
}

function framesOf (chunks: Uint8Array[]): Frame[] {
  const d = new FrameDecoder()
  return chunks.flatMap(c => d.decode(c))
}

/** The host still answers a normal request. */
async function stillServes (client: MeshNode, server: MeshNode): Promise<void> {
  assert.equal(readU32(await client.request(server.peerId, '/gem/1/echo', u32(99))), 99)
}

describe('mesh robustness', () => {
  test('another wire version on a raw stream is answered with VERSION_MISMATCH and closed; the host keeps serving', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      const errors: GemError[] = []
      b.on('error', e => { errors.push(e) })
      await b.handle('/gem/1/echo', (_from, f) => f)
      const raw = await rawStream(a, b, '/gem/1/echo')
      const future = encodeFrame(FRAME.REQUEST, 1, text('hello from v2'))
      future[0] = WIRE_VERSION + 1
      raw.stream.send(future)
      await raw.closed
      const answer = framesOf(raw.received)
      assert.equal(answer.length, 1)
      assert.equal(answer[0].type, FRAME.ERROR)
      assert.equal(answer[0].id, 0)
      const err = decodeErrorPayload(answer[0].payload)
      assert.equal(err.code, 'VERSION_MISMATCH')
      assert.match(err.message, /version 2/)
      assert.ok(errors.some(e => e.code === 'VERSION_MISMATCH'), 'the server reports it too')
      raw.stream.abort(new Error('done'))
      await stillServes(a, b)
    })
  })

  test('a MeshTransport talking to a peer of another version fails loudly on both request and send', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      // b plays a newer node: it answers every stream with a frame of wire version 2
      await b.node.handle('/gem/1/newer', stream => {
        stream.addEventListener('message', () => {
          const f = encodeFrame(FRAME.RESPONSE, 1, new Uint8Array(0))
          f[0] = 2
          stream.send(f)
        })
    })
    const errors: GemError[] = []
    a.on('error', e => { errors.push(e) })
    await assert.rejects(a.request(b.peerId, '/gem/1/newer', text('hi')), (e: unknown) => GemError.is(e, 'VERSION_MISMATCH'))
    await assert.rejects(a.send(b.peerId, '/gem/1/newer', text('again')), (e: unknown) => GemError.is(e, 'VERSION_MISMATCH'))
    assert.ok(errors.some(e => e.code === 'VERSION_MISMATCH'))
    // a protocol the peer does not speak at all (a /gem/2 node) is a version mismatch too
    await assert.rejects(a.request(b.peerId, '/gem/1/unknown', text('?')), (e: unknown) => GemError.is(e, 'VERSION_MISMATCH'))
    await b.handle('/gem/1/echo', (_from, f) => f)
    await stillServes(a, b)
    })
  })

  test('garbage, oversize frames and half frames on raw streams: clear errors, and the host keeps running', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)], maxFrameBytes: 4096 })
      await b.handle('/gem/1/echo', (_from, f) => f)

      const garbage = await rawStream(a, b, '/gem/1/echo')
      garbage.stream.send(Uint8Array.of(WIRE_VERSION, 200, 1, 2, 3))
      await garbage.closed
      assert.equal(decodeErrorPayload(framesOf(garbage.received)[0].payload).code, 'BAD_REQUEST')
      garbage.stream.abort(new Error('done'))

      const big = await rawStream(a, b, '/gem/1/echo')
      big.stream.send(encodeFrame(FRAME.DATA, 0, new Uint8Array(5000)).subarray(0, 100))
      await big.closed
      assert.equal(decodeErrorPayload(framesOf(big.received)[0].payload).code, 'PAYLOAD_TOO_LARGE')
      big.stream.abort(new Error('done'))

      // half a frame, then the writer goes away mid-frame
      const half = await rawStream(a, b, '/gem/1/echo')
      half.stream.send(encodeFrame(FRAME.REQUEST, 5, new Uint8Array(1000)).subarray(0, 300))
      half.stream.abort(new Error('gone mid-frame'))

      await stillServes(a, b)
    })
  })

  test('a peer stopping mid-stream fails pending work cleanly and does not disturb the sender', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      const c = await mesh.start({ bootstrap: [tcpAddr(a)] })
      let atB = 0
      await b.handle('/gem/1/bulk', () => { atB++ })
      await b.handle('/gem/1/slow', () => new Promise<never>(() => {}))
      await c.handle('/gem/1/echo', (_from, f) => f)
      const pendingRequest = a.request(b.peerId, '/gem/1/slow', text('never answered'), { timeoutMs: 30_000 })
      const outcomes = { ok: 0, unreachable: 0, other: [] as string[] }
      const sends: Array<Promise<void>> = []
      for (let i = 0; i < 20_000; i++) {
        sends.push(a.send(b.peerId, '/gem/1/bulk', new Uint8Array(64)).then(() => { outcomes.ok++ }, (e: unknown) => {
          if (GemError.is(e, 'PEER_UNREACHABLE')) outcomes.unreachable++
          else outcomes.other.push(String(e))
        }))
        if (i === 5_000) await waitFor(() => atB > 0, 'the first frames at b')
        if (i === 10_000) void mesh.stopHost(b)
        if (i % 1000 === 0) await null
      }
      await Promise.all(sends)
      await assert.rejects(pendingRequest, (e: unknown) => GemError.is(e, 'PEER_UNREACHABLE'))
      assert.deepEqual(outcomes.other, [])
      await stillServes(a, c)
    })
  })

  test('a restarted peer (same key, same port) is reached again by send and request', async () => {
    await withMesh(async mesh => {
      const dir = mesh.dir()
      const a = await mesh.start()
      const b1 = await mesh.start({ dataDir: dir, bootstrap: [tcpAddr(a)] })
      const port = Number(/\/tcp\/(\d+)\/p2p/.exec(tcpAddr(b1))![1])
      const got: number[] = []
      const serve = async (b: MeshNode): Promise<void> => {
        await b.handle('/gem/1/data', (_from, f) => { got.push(readU32(f)) })
        await b.handle('/gem/1/echo', (_from, f) => f)
      }
      await serve(b1)
      await a.send(b1.peerId, '/gem/1/data', u32(1))
      await stillServes(a, b1)
      await mesh.stopHost(b1)
      await waitFor(() => !a.peers().includes(b1.peerId), 'a to notice b is gone')

      const b2 = await mesh.start({ dataDir: dir, tcpPort: port })
      assert.equal(b2.peerId, b1.peerId)
      await serve(b2)
      await a.send(b2.peerId, '/gem/1/data', u32(2)) // the channel redials the known address
      await stillServes(a, b2)
      await waitFor(() => got.length === 2, 'both frames')
      assert.deepEqual(got, [1, 2])
    })
  })

  test('gossip reaches every subscriber under gem/1/; malformed gossip is reported, not delivered', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      const c = await mesh.start({ bootstrap: [tcpAddr(b)] })
      await fullMesh([a, b, c])
      const inbox = new Map<string, string[]>()
      const errors: GemError[] = []
      for (const [h, name] of [[a, 'a'], [b, 'b'], [c, 'c']] as const) {
        inbox.set(name, [])
        h.subscribeGossip('membership', (from, data) => { inbox.get(name)!.push(`${from === a.peerId ? 'a' : from}:${str(data)}`) })
        h.on('error', e => { errors.push(e) })
      }
      await waitFor(() => [b, c].every(h => a.gossipPeers('membership').includes(h.peerId)), 'a to see b and c subscribed')
      await a.publishGossip('membership', text('alive'))
      await waitFor(() => inbox.get('b')!.length === 1 && inbox.get('c')!.length === 1, 'the gossip at b and c')
      assert.deepEqual(inbox.get('b'), ['a:alive'])
      assert.deepEqual(inbox.get('c'), ['a:alive'])
      assert.deepEqual(inbox.get('a'), [], 'no echo to the publisher')

      await a.node.services.pubsub.publish('gem/1/membership', Uint8Array.of(9, 9, 9))
      await waitFor(() => errors.some(e => e.code === 'VERSION_MISMATCH'), 'the malformed gossip reported')
      assert.equal(inbox.get('b')!.length, 1)
      assert.equal(inbox.get('c')!.length, 1)
    })
  })
})
