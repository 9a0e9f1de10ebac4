// The dashboard's pure data code (demo/src): the mesh graph built from /cluster and the peer's links, and the
// history that turns consecutive snapshots into topic rates, backlogs and load series, and the decision lines.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MeshHistory } from '../demo/src/history.ts'
import type { MeshSnapshot } from '../demo/src/cluster-poller.ts'
import { meshGraph } from '../demo/src/mesh-graph-model.ts'
import { describeDecision } from '../demo/src/views/decisions-view.ts'
import type { ClusterNode, ClusterView, NodeStats } from '../demo/src/node-api.ts'

function server (id: string, extra: Partial<ClusterNode> = {}): ClusterNode {
  return { id, peer_id: `peer-${id}`, role: 'server', http_url: `http://127.0.0.1:1/${id}`, multiaddrs: [], state: 'alive', load: 0.5, predicted_load: null, ...extra }
}

function cluster (highs: Record<string, number[]>, nodes = [server('a'), server('b'), server('c')]): ClusterView {
  return {
    nodes,
    partitions: Object.entries(highs).flatMap(([topic, hs]) => hs.map((high, partition) => ({ topic, partition, leader: 'a', replicas: ['a', 'b', 'c'], epoch: 1, offsets: { low: 0, high } }))),
  }
}

function snapshot (at: number, c: ClusterView, stats: Record<string, NodeStats> = {}, fresh = true): MeshSnapshot {
  return { at, cluster: c, stats: new Map(Object.entries(stats)), source: 'http://127.0.0.1:1', fresh }
}

test('the mesh graph: servers in a TCP mesh, this page linked to each peer by its most direct transport', () => {
  const g = meshGraph(cluster({}, [server('a'), server('b'), server('c', { state: 'dead' }), { ...server('me'), role: 'browser', peer_id: 'self' }]), 'self', [
    { id: 'peer-a', role: 'server', transports: ['websockets'] },
    { id: 'browser-2', role: 'browser', transports: ['relayed', 'webrtc'] },
  ], 'peer-a')
  assert.deepEqual(g.nodes.map(n => [n.key, n.kind, n.state]), [
    ['self', 'self', 'alive'], ['peer-a', 'server', 'alive'], ['peer-b', 'server', 'alive'], ['peer-c', 'server', 'dead'], ['browser-2', 'browser', 'connected'],
  ])
  // Only alive servers are meshed; the dead one stays on the graph without links.
  assert.deepEqual(g.links.map(l => [l.source, l.target, l.kind, l.attached === true]), [
    ['peer-a', 'peer-b', 'tcp', false],
    ['self', 'peer-a', 'websockets', true],
    ['self', 'browser-2', 'webrtc', false],
  ])
})

test('history: topic rates from offset deltas, never negative, and one backlog per (topic, group)', () => {
  const h = new MeshHistory(3)
  const group = (backlog: number): NodeStats => ({ published: 0, delivered: 0, groups: [{ topic: 'orders', group: 'billing', backlog, in_flight: 0, consumers: 1 }] })
  assert.equal(h.add(snapshot(1_000, cluster({ orders: [10, 0] }))), true)
  assert.equal(h.topics[0].rate, 0)
  h.add(snapshot(3_000, cluster({ orders: [20, 10], sensors: [5] }), { a: group(7), b: group(4) }))
  const orders = h.topics.find(t => t.name === 'orders')!
  assert.equal(orders.rate, 10) // 20 more messages in 2 s
  assert.equal(orders.messages, 30)
  assert.equal(orders.partitions, 2)
  assert.deepEqual([orders.backlog, orders.groups], [7, 1]) // the same group seen on two nodes counts once
  assert.equal(h.topics.find(t => t.name === 'sensors')!.rate, 0) // no earlier sample: no rate yet

  // An answering node that holds fewer records (another source) must not yield a negative rate.
  h.add(snapshot(4_000, cluster({ orders: [5, 5], sensors: [5] })))
  assert.equal(h.topics.find(t => t.name === 'orders')!.rate, 0)

  // A stale snapshot (no node answered) adds no sample; the series stay bounded by capacity.
  assert.equal(h.add(snapshot(5_000, cluster({ orders: [5, 5] }), {}, false)), false)
  h.add(snapshot(6_000, cluster({ orders: [6, 5] })))
  assert.equal(h.times.length, 3)
  assert.deepEqual(h.topicRates.get('sensors'), [0, 0, null])
  assert.deepEqual(h.times, [3, 4, 6])
})

test('history: predicted load is plotted when the gateway reports it, under any of its names', () => {
  const h = new MeshHistory()
  const report = { publish_rate: 0, delivery_rate: 0, backlog: 0, event_loop_lag_ms: 1, weight: 1, predicted: 0.2 }
  h.add(snapshot(1_000, cluster({}, [server('a', { predicted_load: 0.7 }), server('b', { load_report: report }), server('c'), server('d', { predicted: 0.4, predicted_load: 0.4 })])))
  assert.deepEqual([...h.nodePredicted.entries()], [['a', [0.7]], ['b', [0.2]], ['c', [null]], ['d', [0.4]]])
  assert.deepEqual(h.nodeLoad.get('a'), [0.5])
})

test('decisions: a replica move reads with its nodes and the prediction it was taken on', () => {
  const line = describeDecision({ at: '2026-12-01T00:00:00.000Z', kind: 'move-replica', topic: 'hot', partition: 2, from: 'b', to: 'd', hot: 'b', prediction: { predictor: 'onnx', current: 0.9, predicted: 0.95, horizon_s: 10 } })
  assert.match(line, /^hot\/2 replica b → d for b \(90% now, 95% predicted in 10 s, onnx\)$/)
  assert.match(describeDecision({ at: '2026-12-01T00:00:00.000Z', kind: 'move-leader', topic: 'hot', partition: 0, from: 'a', to: 'c' }), /^hot\/0 a → c$/)
})
