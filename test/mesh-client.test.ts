// /gem/1/client, the protocol browser peers speak to a server node, driven from a Node libp2p host against a real
// `gem start` process: publish, live and group subscriptions with acks, reads, topics — and garbage, wrong types,
// oversize payloads and a client vanishing mid-subscription, each refused with a code while the node keeps serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GemError, decodeRecord, encodeRecord } from '@gem-mesh/core'
import {
  CLIENT_DELIVER_PROTOCOL, CLIENT_PROTOCOL, decodeDeliveryBatch, decodeRecordsFrame, encodeDeliveryBatch, encodeHeadBody,
} from '@gem-mesh/core/mesh'
import type { DeliveryBatch, MeshNode } from '@gem-mesh/core/mesh'
import { api, readAll, startGem, tcpTarget, tempDataDir } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'
import { withMesh, text } from '../packages/node/test/mesh/mesh-harness.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

const td = new TextDecoder()

async function call (host: MeshNode, peer: string, head: unknown, body?: Uint8Array): Promise<any> {
  return JSON.parse(td.decode(await host.request(peer, CLIENT_PROTOCOL, encodeHeadBody(head, body ?? new Uint8Array(0)), { timeoutMs: 10_000 })))
}

async function refusal (p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.ok(GemError.is(err), `expected a GemError, got ${String(err)}`)
  return err.code
}

test('the delivery batch codec round-trips and refuses malformed frames with BAD_REQUEST or CORRUPT_RECORD', () => {
  const record = { id: 'm1', topic: 't', partition: 0, offset: 7, payload: text('hi'), headers: {}, priority: 5, timestamp: 1, attempt: 1 }
  const rec = decodeRecord(encodeRecord(record as never))
  const frame = encodeDeliveryBatch({ sid: 's', deliveries: [{ tag: '0.7.1', attempt: 1, record: rec }] })
  const back = decodeDeliveryBatch(frame)
  assert.equal(back.sid, 's')
  assert.equal(back.deliveries[0].record.offset, 7)
  assert.equal(td.decode(back.deliveries[0].record.payload), 'hi')
  const flipped = frame.slice()
  flipped[flipped.length - 3] ^= 0xff
  assert.throws(() => decodeDeliveryBatch(flipped), (e: unknown) => GemError.is(e, 'CORRUPT_RECORD'))
  for (const bad of [new Uint8Array(0), text('nope'), encodeHeadBody({ sid: 1, d: [] }), encodeHeadBody({ sid: 's', d: [['t', 1, 999]] }), encodeHeadBody({ sid: 's', d: [[1, 'x', -1]] })]) {
    assert.throws(() => decodeDeliveryBatch(bad), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
  }
})

test('/gem/1/client: publish, live and group subscriptions, acks, reads and topics; bad input refused with codes', { timeout: 120_000 }, async () => {
  const data = tempDataDir('gem-client-')
  let node: GemProcess | undefined
  try {
    node = await startGem(data.dir, ['--webrtc-direct', 'false'])
    const target = await tcpTarget(node.url)
    const { peer } = target

    await withMesh(async mesh => {
      const host = await mesh.startConnected(target)
      const batches: DeliveryBatch[] = []
      await host.handle(CLIENT_DELIVER_PROTOCOL, (_from, frame) => { batches.push(decodeDeliveryBatch(frame)) })

      assert.equal((await call(host, peer, { op: 'hello', addrs: [] })).peerId, peer)
      const created = await call(host, peer, { op: 'topics', action: 'create', name: 'orders', config: { partitions: 1 } })
      assert.equal(created.name, 'orders')
      assert.ok((await call(host, peer, { op: 'topics', action: 'list' })).some((t: { name: string }) => t.name === 'orders'))

      await call(host, peer, { op: 'subscribe', sid: 'live', topic: 'orders', mode: 'tail' })
      await call(host, peer, { op: 'subscribe', sid: 'grp', topic: 'orders', mode: 'consume', opts: { group: 'billing', from: 'earliest' } })
      for (let i = 0; i < 5; i++) {
        const r = await call(host, peer, { op: 'publish', topic: 'orders', input: { id: `o-${i}` } }, text(`order ${i}`))
        assert.equal(r.offset, i)
      }
      const of = (sid: string) => batches.filter(b => b.sid === sid).flatMap(b => b.deliveries)
      await waitFor(() => of('live').length === 5 && of('grp').length === 5, 'five live and five group deliveries', 20_000)
      assert.deepEqual(of('live').map(d => td.decode(d.record.payload)), [0, 1, 2, 3, 4].map(i => `order ${i}`))
      assert.ok(of('live').every(d => d.tag === ''), 'live deliveries take no acks')
      const metrics = await (await fetch(`${node!.url}/metrics`)).text()
      assert.match(metrics, /^gem_edge_peers 1$/m)
      assert.match(metrics, /^gem_edge_subscriptions 2$/m)
      const acked = await call(host, peer, { op: 'ack', sid: 'grp', tags: [...of('grp').map(d => d.tag), 'bogus'] })
      assert.deepEqual(acked, { acked: 5, unknown: ['bogus'] })
      const read = decodeRecordsFrame(await host.request(peer, CLIENT_PROTOCOL, encodeHeadBody({ op: 'read', topic: 'orders', from: 2, limit: 2 }), { timeoutMs: 5_000 }))
      assert.deepEqual(read.records.map(r => r.offset), [2, 3])
      assert.equal(read.next, 4)
      // A live subscription resumed where a peer stopped (after a failover or a feed switch) replays the rest, then goes live.
      const resumed = await call(host, peer, { op: 'subscribe', sid: 'resumed', topic: 'orders', mode: 'tail', resume: [3] })
      assert.deepEqual(resumed.from, [3])
      await waitFor(() => of('resumed').length === 2, 'two replayed live deliveries', 20_000)
      assert.deepEqual(of('resumed').map(d => d.record.offset), [3, 4])
      assert.deepEqual((await call(host, peer, { op: 'subscribe', sid: 'fresh', topic: 'orders', mode: 'tail' })).from, [5])
      await call(host, peer, { op: 'unsubscribe', sid: 'resumed' })
      await call(host, peer, { op: 'unsubscribe', sid: 'fresh' })

      // Bad input: malformed frames, wrong types, unknown ops, missing topics, oversize payloads.
      for (const frame of [new Uint8Array(0), new Uint8Array([0, 0, 0, 200, 1]), text('not a frame'), crypto.getRandomValues(new Uint8Array(2048))]) {
        assert.equal(await refusal(host.request(peer, CLIENT_PROTOCOL, frame, { timeoutMs: 5_000 })), 'BAD_REQUEST')
      }
      const bad: unknown[] = [
        [], 'x', { op: 'nope' }, { op: 'publish', topic: 42 }, { op: 'publish', topic: 'orders', input: 'x' },
        { op: 'subscribe', sid: 's', topic: 'orders', mode: 'sideways' }, { op: 'subscribe', sid: 'x'.repeat(100), topic: 'orders', mode: 'tail' },
        { op: 'subscribe', sid: 's', topic: 'orders', mode: 'consume', opts: { group: 5 } }, { op: 'ack', sid: 'grp', tags: 'all' },
        { op: 'nack', sid: 'grp', tags: [], delayMs: -1 }, { op: 'read', topic: 'orders', from: -1 }, { op: 'topics', action: 'explode' },
        { op: 'hello', addrs: [1, 2] }, { op: 'feeder' },
        { op: 'subscribe', sid: 's', topic: 'orders', mode: 'tail', resume: 3 }, { op: 'subscribe', sid: 's', topic: 'orders', mode: 'tail', resume: [-1] },
        { op: 'subscribe', sid: 's', topic: 'orders', mode: 'tail', resume: ['0'] },
      ]
      for (const head of bad) assert.equal(await refusal(call(host, peer, head)), 'BAD_REQUEST', JSON.stringify(head))
      assert.equal(await refusal(call(host, peer, { op: 'subscribe', sid: 's', topic: 'missing', mode: 'tail' })), 'TOPIC_NOT_FOUND')
      assert.equal(await refusal(call(host, peer, { op: 'publish', topic: 'orders', input: { id: 'big' } }, new Uint8Array(5 * 1024 * 1024))), 'PAYLOAD_TOO_LARGE')
      assert.equal(await refusal(host.request(peer, CLIENT_PROTOCOL, new Uint8Array(9 * 1024 * 1024))), 'PAYLOAD_TOO_LARGE')
      assert.deepEqual(await call(host, peer, { op: 'ack', sid: 'nobody', tags: ['x'] }), { acked: 0, unknown: ['x'] })

      // A client that vanishes mid-subscription: its group deliveries go back to the group.
      await call(host, peer, { op: 'publish', topic: 'orders', input: { id: 'o-5' } }, text('order 5'))
      await waitFor(() => of('grp').length === 6, 'the sixth group delivery', 20_000)
      await mesh.stopHost(host)
    })

    // Another client attaches to the same group: the unacknowledged delivery comes again, the acked ones do not.
    await withMesh(async mesh => {
      const host = await mesh.startConnected(target, 'connected again')
      const batches: DeliveryBatch[] = []
      await host.handle(CLIENT_DELIVER_PROTOCOL, (_from, frame) => { batches.push(decodeDeliveryBatch(frame)) })
      await call(host, peer, { op: 'subscribe', sid: 'grp2', topic: 'orders', mode: 'consume', opts: { group: 'billing' } })
      await waitFor(() => batches.some(b => b.deliveries.length > 0), 'a redelivery', 20_000)
      const ds = batches.flatMap(b => b.deliveries)
      assert.deepEqual(ds.map(d => d.record.id), ['o-5'])
      assert.equal(ds[0].attempt, 2)
    })

    assert.equal((await api(node.url, 'GET', '/health')).status, 200)
    assert.deepEqual((await readAll(node.url, 'orders')).map(m => m.id), ['o-0', 'o-1', 'o-2', 'o-3', 'o-4', 'o-5'])
  } finally {
    await node?.kill()
    data.remove()
  }
})
