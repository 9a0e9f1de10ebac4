// Joining and discovery: one contact is enough; kad-dht (GEM's own /gem/1/kad protocol) finds the rest.
// Real libp2p hosts over tcp on 127.0.0.1; every host is stopped even when a test fails.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { withMesh, fullMesh, tcpAddr, waitFor } from './mesh-harness.ts'

describe('mesh discovery', () => {
  test('two hosts connect through one contact and report connect events', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const connected: string[] = []
      a.on('connect', id => { connected.push(id) })
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      await fullMesh([a, b])
      assert.deepEqual(b.peers(), [a.peerId])
      assert.ok(connected.includes(b.peerId))
      const gone: string[] = []
      a.on('disconnect', id => { gone.push(id) })
      await mesh.stopHost(b)
      await waitFor(() => gone.includes(b.peerId), 'a disconnect event for the stopped host')
    })
  })

  test('four hosts joined in a chain (each knows only the previous one) become a full mesh', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      const c = await mesh.start({ bootstrap: [tcpAddr(b)] })
      const d = await mesh.start({ bootstrap: [tcpAddr(c)] })
      await fullMesh([a, b, c, d])
      for (const h of [a, b, c, d]) assert.equal(h.peers().length, 3)
    })
  })

  test('without dialDiscovered a host still learns the others (peer store) but dials only its contact', async () => {
    await withMesh(async mesh => {
      const a = await mesh.start()
      const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
      await fullMesh([a, b])
      const c = await mesh.start({ bootstrap: [tcpAddr(a)], dialDiscovered: false })
      await waitFor(async () => (await c.knownPeers()).includes(b.peerId), 'c to learn of b through the dht')
      // b is known and reachable on demand: a send dials it
      let got = 0
      await b.handle('/gem/1/hello', () => { got++ })
      await c.send(b.peerId, '/gem/1/hello', new Uint8Array([1]))
      await waitFor(() => got === 1, 'the frame at b')
    })
  })
})
