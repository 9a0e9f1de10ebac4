// Hostile peers on the mesh's own protocols: a libp2p host sends garbage to a real node's /gem/1/publish, topics,
// group, fetch, move, replicate, group-state and deliver streams. Requests get BAD_REQUEST; the node keeps serving and loses nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GemError } from '@gem-mesh/core'
import { api, readAll, startGem, tcpTarget, tempDataDir } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'
import { withMesh, text } from '../packages/node/test/mesh/mesh-harness.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

const garbage = (): Uint8Array[] => [
  new Uint8Array(0),
  new Uint8Array([1, 2, 3]),
  text('not json at all'),
  text('{"op":"create","topic":{"name":42}}'),
  text('{"op":"attach","cid":"x","topic":"orders","opts":"nope"}'),
  new Uint8Array([0, 0, 0, 200, 123]), // a header length past the end
  new Uint8Array([0, 0, 0, 2, 123, 125, 9, 9]), // an envelope of the wrong shape
  crypto.getRandomValues(new Uint8Array(4096)),
]

test('garbage on every mesh protocol: clear refusals, the node keeps serving, stored messages intact', { timeout: 120_000 }, async () => {
  const data = tempDataDir('gem-bad-mesh-')
  let node: GemProcess | undefined
  try {
    node = await startGem(data.dir, ['--webrtc-direct', 'false'])
    assert.equal((await api(node.url, 'POST', '/topics', { name: 'orders' })).status, 201)
    for (let i = 0; i < 5; i++) assert.equal((await api(node.url, 'POST', '/topics/orders/messages', { id: `o-${i}`, payload: i })).status, 201)
    const target = await tcpTarget(node.url)
    const { peer } = target

    await withMesh(async mesh => {
      const host = await mesh.startConnected(target)
      for (const protocol of ['/gem/1/publish', '/gem/1/topics', '/gem/1/group', '/gem/1/fetch', '/gem/1/move']) {
        for (const frame of garbage()) {
          const err = await host.request(peer, protocol, frame, { timeoutMs: 5_000 }).then(() => undefined, (e: unknown) => e)
          // An empty or accidental valid-looking frame may be answered; anything malformed must be refused with a code.
          if (err !== undefined) assert.ok(GemError.is(err) && ['BAD_REQUEST', 'TOPIC_NOT_FOUND', 'NOT_LEADER'].includes(err.code), `${protocol}: ${String(err)}`)
        }
      }
      // One-way protocols: nothing to answer, nothing may break.
      for (const protocol of ['/gem/1/replicate', '/gem/1/group-state', '/gem/1/deliver']) {
        for (const frame of garbage()) await host.send(peer, protocol, frame).catch(() => {})
      }
      // A well-formed publish for a topic that does not exist, and one for a partition out of range.
      const head = (o: unknown): Uint8Array => { const j = text(JSON.stringify(o)); const f = new Uint8Array(4 + j.byteLength + 1); new DataView(f.buffer).setUint32(0, j.byteLength); f.set(j, 4); return f }
      await assert.rejects(host.request(peer, '/gem/1/publish', head({ topic: 'nope', input: { id: 'x', partition: 0 } })), (e: unknown) => GemError.is(e, 'TOPIC_NOT_FOUND'))
      await assert.rejects(host.request(peer, '/gem/1/publish', head({ topic: 'orders', input: { id: 'x', partition: 7 } })), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      // Replica moves: a host request that does not name the node among the learners, one for a topic it does not know,
      // a drop for a partition it holds no replica of (nothing happens), and a placement update of the wrong shape.
      const move = (o: unknown): Promise<unknown> => host.request(peer, '/gem/1/move', text(JSON.stringify(o)), { timeoutMs: 5_000 })
      await assert.rejects(move({ op: 'host', topic: 'orders', partition: 0, voters: ['a'], learners: ['b'] }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      await assert.rejects(move({ op: 'host', topic: 'nope', partition: 0, voters: ['a'], learners: [peer] }), (e: unknown) => GemError.is(e, 'TOPIC_NOT_FOUND'))
      await assert.rejects(move({ op: 'host', topic: 'orders', partition: 0, voters: 'a', learners: [peer] }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      await assert.rejects(move({ op: 'evict', topic: 'orders', partition: 0 }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      await move({ op: 'drop', topic: 'orders', partition: 0 })
      const topics = (o: unknown): Promise<unknown> => host.request(peer, '/gem/1/topics', text(JSON.stringify(o)), { timeoutMs: 5_000 })
      const def = { name: 'orders', partitions: 1, replication: 1, retention: {}, createdAt: 1, replicas: [[peer]] }
      await assert.rejects(topics({ op: 'place', topic: { ...def, placed: [[1]] } }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      await assert.rejects(topics({ op: 'place', topic: { ...def, placed: 'x' } }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
      // Creates forwarded to this node as the topic controller: wrong types, a bad name, a bad config, an existing name.
      for (const bad of [{ name: 7 }, { name: 'a b' }, { name: 'ok', config: 'x' }, { name: 'ok', config: [] }, { name: 'ok', config: { partitions: -1 } }]) {
        await assert.rejects(topics({ op: 'create-topic', ...bad }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'), JSON.stringify(bad))
      }
      const existing = JSON.parse(new TextDecoder().decode(await host.request(peer, '/gem/1/topics', text(JSON.stringify({ op: 'create-topic', name: 'orders' })), { timeoutMs: 5_000 })))
      assert.equal(existing.created, false)
      assert.equal(existing.topic.name, 'orders')
    })

    assert.equal((await api(node.url, 'GET', '/health')).status, 200)
    const r = await api(node.url, 'POST', '/topics/orders/messages', { id: 'o-5', payload: 5 })
    assert.equal(r.status, 201, JSON.stringify(r.json))
    const stored = await readAll(node.url, 'orders')
    assert.deepEqual(stored.map(m => m.id), ['o-0', 'o-1', 'o-2', 'o-3', 'o-4', 'o-5'])
  } finally {
    await node?.kill()
    data.remove()
  }
})
