// The hello exchange over real libp2p connections: each side learns the other's GEM card on connect,
// forgets it on disconnect, and a malformed hello is refused with BAD_REQUEST while the host keeps serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HELLO_PROTOCOL, PeerDirectory } from '@gem-mesh/core/mesh'
import type { MeshNode, NodeCard } from '@gem-mesh/core/mesh'
import { withMesh, tcpAddr, text, waitFor } from './mesh-harness.ts'

const cardOf = (host: MeshNode, nodeId: string): () => NodeCard =>
  () => ({ nodeId, peerId: host.localPeerId, httpUrl: `http://127.0.0.1/${nodeId}`, multiaddrs: host.multiaddrs(), role: 'server' })

test('two nodes learn each other\'s cards on connect and forget them on disconnect; bad hellos are refused', () => withMesh(async mesh => {
  const a = await mesh.start()
  const dirA = new PeerDirectory(a, cardOf(a, 'node-a'))
  await dirA.start()
  const b = await mesh.start({ bootstrap: [tcpAddr(a)] })
  const dirB = new PeerDirectory(b, cardOf(b, 'node-b'))
  await dirB.start()
  try {
    await waitFor(() => dirA.get(b.peerId)?.nodeId === 'node-b' && dirB.get(a.peerId)?.nodeId === 'node-a', 'both cards')
    assert.equal(dirA.get(b.peerId)?.httpUrl, 'http://127.0.0.1/node-b')
    assert.ok(dirB.get(a.peerId)!.multiaddrs.length > 0)

    for (const bad of ['not json', '{"nodeId":""}', '{"nodeId":"x"}', '[]']) {
      await assert.rejects(b.request(a.peerId, HELLO_PROTOCOL, text(bad), { timeoutMs: 5_000 }), { code: 'BAD_REQUEST' })
    }
    // Still serving, and the bad hellos did not overwrite what it knew.
    assert.equal(dirA.get(b.peerId)?.nodeId, 'node-b')
    const ok = await b.request(a.peerId, HELLO_PROTOCOL, text(JSON.stringify(cardOf(b, 'node-b')())), { timeoutMs: 5_000 })
    assert.equal(JSON.parse(new TextDecoder().decode(ok)).nodeId, 'node-a')

    await dirB.stop()
    await mesh.stopHost(b)
    await waitFor(() => dirA.get(b.peerId) === undefined, 'a forgets b after it disconnects')
    assert.deepEqual(dirA.peers(), [])
  } finally {
    await dirA.stop()
  }
}))
