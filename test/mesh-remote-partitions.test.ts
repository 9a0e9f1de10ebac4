// Reads, live subscriptions and ephemeral consumers through a node that holds no replica of the partition (4 nodes,
// replication 3): the node asks a replica over `/gem/1/read` (long-polled for live; a caught-up copy for a consumer),
// follows another replica when that one is SIGKILLed, and never answers from a stale or empty local copy. Bad read
// requests are refused with codes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { GemError } from '@gem-mesh/core'
import { CLIENT_DELIVER_PROTOCOL, CLIENT_PROTOCOL, READ_PROTOCOL, decodeDeliveryBatch, encodeHeadBody } from '@gem-mesh/core/mesh'
import type { DeliveryBatch, MeshNode } from '@gem-mesh/core/mesh'
import { api, readAll, tcpTarget } from './support/gem-process.ts'
import { withMeshProcesses } from './support/mesh.ts'
import { withMesh } from '../packages/node/test/mesh/mesh-harness.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

const te = new TextEncoder()
const td = new TextDecoder()

async function call (host: MeshNode, peer: string, head: unknown): Promise<any> {
  return JSON.parse(td.decode(await host.request(peer, CLIENT_PROTOCOL, encodeHeadBody(head, new Uint8Array(0)), { timeoutMs: 20_000 })))
}

async function refusal (p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.ok(GemError.is(err), `expected a GemError, got ${String(err)}`)
  return err.code
}

test('a node without a replica reads, tails and consumes (ephemeral, with acks) the partition from a replica, also after the leader is SIGKILLed', { timeout: 180_000 }, async () => {
  await withMeshProcesses(4, async ({ nodes, ids }) => {
    assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: 'far', partitions: 1, replication: 3 })).status, 201)
    type Cluster = { partitions: Array<{ topic: string, leader: string | null, replicas: string[] }>, nodes: Array<{ id: string, peer_id: string | null }> }
    // The replicas agree on one leader (the node without a replica has no view of its own to give).
    const views = await waitFor(async () => {
      const vs = await Promise.all(nodes.map(async n => ((await api(n.url, 'GET', '/cluster')).json as Cluster)))
      const ps = vs.map(v => v.partitions.find(p => p.topic === 'far')).filter(p => p?.leader != null)
      return ps.length >= 3 && ps.every(p => p!.leader === ps[0]!.leader && p!.replicas.length === 3) ? vs : undefined
    }, 'the replicas to agree on the leader of far/0', 30_000)
    const cluster = views.find(v => v.partitions.find(p => p.topic === 'far')?.leader != null)!
    const { leader: leaderId, replicas } = cluster.partitions.find(p => p.topic === 'far')!
    const holds = (i: number): boolean => replicas.includes(ids[i]) || replicas.includes(cluster.nodes.find(n => n.id === ids[i])?.peer_id ?? '')
    const away = nodes.findIndex((_, i) => !holds(i))
    assert.ok(away >= 0, `one of 4 nodes holds no replica of ${JSON.stringify(replicas)}`)
    const leader = ids.indexOf(leaderId!)
    const publisher = nodes.find((_, i) => i !== away && i !== leader)!
    for (let i = 0; i < 5; i++) assert.equal((await api(publisher.url, 'POST', '/topics/far/messages', { payload: `before-${i}` })).status, 201)

    // An ephemeral consumer (acks, no group) on that node, as a browser peer makes one over /gem/1/client.
    const target = await tcpTarget(nodes[away].url)
    await withMesh(async mesh => {
      const host = await mesh.startConnected(target)
      const batches: DeliveryBatch[] = []
      await host.handle(CLIENT_DELIVER_PROTOCOL, (_from, frame) => { batches.push(decodeDeliveryBatch(frame)) })
      await call(host, target.peer, { op: 'hello', addrs: [] })
      await call(host, target.peer, { op: 'subscribe', sid: 'eph', topic: 'far', mode: 'consume', opts: { from: 'earliest' } })
      const consumed = (): Array<{ tag: string, payload: string }> => batches.filter(b => b.sid === 'eph').flatMap(b => b.deliveries).map(d => ({ tag: d.tag, payload: td.decode(d.record.payload) }))

      const ws = new WebSocket(nodes[away].url.replace(/^http/, 'ws') + '/ws')
      try {
        await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
        const live: string[] = []
        ws.on('message', (data: Buffer) => {
          const f = JSON.parse(data.toString()) as { type: string, message?: { payload: string } }
          if (f.type === 'event') live.push(f.message!.payload)
        })
        // last_n replays the end of the remote partition, then it goes on live.
        ws.send(JSON.stringify({ type: 'subscribe', topic: 'far', last_n: 2 }))
        await waitFor(() => live.length === 2, 'the last two records replayed', 20_000)
        for (let i = 0; i < 20; i++) assert.equal((await api(publisher.url, 'POST', '/topics/far/messages', { payload: `live-${i}` })).status, 201)
        await waitFor(() => live.length === 22, 'twenty live records through the node without a replica', 20_000)
        assert.deepEqual((await readAll(nodes[away].url, 'far')).map(m => m.payload), [...Array.from({ length: 5 }, (_, i) => `before-${i}`), ...Array.from({ length: 20 }, (_, i) => `live-${i}`)])
        // Without copies of the partitions held elsewhere, this consumer got nothing at all.
        await waitFor(() => consumed().length >= 25, 'the ephemeral consumer to get the 25 records so far', 20_000)

        // The replica it follows may be the leader: kill the leader, publish through a survivor.
        if (nodes[leader] !== nodes[away]) await nodes[leader].kill()
        for (let i = 0; i < 10; i++) {
          const payload = `after-${i}`
          await waitFor(async () => (await api(publisher.url, 'POST', '/topics/far/messages', { payload, id: payload })).status === 201, `publish ${payload}`, 30_000)
        }
        await waitFor(() => live.length === 32, 'the live subscription follows another replica', 30_000)
        assert.deepEqual(live, ['before-3', 'before-4', ...Array.from({ length: 20 }, (_, i) => `live-${i}`), ...Array.from({ length: 10 }, (_, i) => `after-${i}`)])
        await waitFor(() => consumed().length >= 35, 'the ephemeral consumer to go on after the leader died', 30_000)
        const all = [...Array.from({ length: 5 }, (_, i) => `before-${i}`), ...Array.from({ length: 20 }, (_, i) => `live-${i}`), ...Array.from({ length: 10 }, (_, i) => `after-${i}`)]
        assert.deepEqual(consumed().map(d => d.payload), all)
        assert.ok(consumed().every(d => d.tag !== ''), 'consumer deliveries carry ack tags')
        assert.deepEqual(await call(host, target.peer, { op: 'ack', sid: 'eph', tags: consumed().map(d => d.tag) }), { acked: 35, unknown: [] })
      } finally {
        ws.terminate()
      }
    })

    // Bad reads: malformed frames and fields, and a node asked for a partition it does not hold.
    await withMesh(async mesh => {
      const host = await mesh.startConnected(target)
      for (const frame of [new Uint8Array(0), te.encode('not json'), te.encode('{}'), te.encode(JSON.stringify({ topic: 'far', partition: -1, from: 0, back: 0, limit: 1, waitMs: 0 })),
        te.encode(JSON.stringify({ topic: 'far', partition: 0, from: 'x', back: 0, limit: 1, waitMs: 0 }))]) {
        assert.equal(await refusal(host.request(target.peer, READ_PROTOCOL, frame, { timeoutMs: 5_000 })), 'BAD_REQUEST')
      }
      const ok = { topic: 'far', partition: 0, from: 0, back: 0, limit: 10, waitMs: 0 }
      assert.equal(await refusal(host.request(target.peer, READ_PROTOCOL, te.encode(JSON.stringify(ok)), { timeoutMs: 5_000 })), 'UNAVAILABLE')
      assert.equal(await refusal(host.request(target.peer, READ_PROTOCOL, te.encode(JSON.stringify({ ...ok, topic: 'nope' })), { timeoutMs: 5_000 })), 'TOPIC_NOT_FOUND')
    })
    assert.equal((await api(nodes[away].url, 'GET', '/health')).status, 200)
  })
})
