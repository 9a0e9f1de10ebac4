// Load prediction on real node processes: /cluster's predicted loads, sampled features and decisions (placement, leadership),
// EWMA when the model is missing (said once), and admission's credit and OVERLOADED while the node keeps serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { waitFor } from '../packages/core/test/wait-for.ts'
import { api, startGem, tempDataDir } from './support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from './support/mesh.ts'

test('three nodes: every node has a predicted load in /cluster, and a topic is placed on max(current, predicted) load', { timeout: 120_000 }, async () => {
  await withMeshProcesses(3, async ({ nodes }) => {
    const url = nodes[0].url
    // On every node, since whichever is the topic controller places the topic below on its own view of the loads.
    const [cluster] = await waitFor(async () => {
      const cs = await Promise.all(nodes.map(async n => (await api(n.url, 'GET', '/cluster')).json))
      return cs.every(c => c.nodes.length === 3 && c.nodes.every((n: { predicted: unknown }) => typeof n.predicted === 'number')) ? cs : undefined
    }, 'a prediction for every node on every node', 60_000)
    assert.equal(cluster.prediction.predictor, 'onnx')
    assert.ok(Array.isArray(cluster.decisions))
    for (const n of cluster.nodes) {
      for (const field of ['id', 'peer_id', 'role', 'http_url', 'multiaddrs', 'state', 'load', 'predicted_load']) assert.ok(field in n, `node field ${field} kept`)
      assert.equal(n.predicted, n.predicted_load)
      assert.ok(n.predicted >= 0 && n.predicted < 10)
    }
    assert.equal((await api(url, 'POST', '/topics', { name: 'predicted', partitions: 3 })).status, 201)
    // The topic controller placed it (the lowest node id; the create was forwarded there if that is not nodes[0]).
    const decisions = (await Promise.all(nodes.map(async n => (await api(n.url, 'GET', '/cluster')).json.decisions))).flat()
    const placements = decisions.filter((d: { kind: string, topic?: string }) => d.kind === 'placement' && d.topic === 'predicted')
    assert.equal(placements.length, 1, `one placement decision: ${JSON.stringify(decisions)}`)
    const placement = placements[0]
    assert.equal(placement.predictor, 'onnx')
    assert.equal(Object.keys(placement.loads).length, 3)
    assert.ok(typeof placement.at === 'string' && !Number.isNaN(Date.parse(placement.at)))
  })
})

test('a missing model: one warning, EWMA; admission refuses with OVERLOADED under load and the node keeps serving', { timeout: 120_000 }, async () => {
  const dir = tempDataDir('gem-predict-')
  // A capacity line of 1% utilization makes any real load "over capacity", so admission acts at once.
  const node = await startGem(dir.dir, ['--predict-model', join(dir.dir, 'missing.onnx'), '--predict-capacity', '0.01', '--predict-max-wait-ms', '0', '--predict-admission', 'true'])
  try {
    const warnings = node.output().split('\n').filter(l => l.includes('falling back to EWMA'))
    assert.equal(warnings.length, 1, node.output())
    assert.match(warnings[0], /MODEL_INVALID/)
    assert.equal((await api(node.url, 'GET', '/cluster')).json.prediction.predictor, 'ewma')
    assert.equal((await api(node.url, 'POST', '/topics', { name: 'busy', partitions: 1 })).status, 201)
    const deadline = Date.now() + 40_000
    let overloaded: { status: number, json: any } | undefined
    let sent = 0
    // Bounded: at most 40 s and 40,000 publishes, 32 in flight.
    while (overloaded === undefined && Date.now() < deadline && sent < 40_000) {
      const batch = await Promise.all(Array.from({ length: 32 }, (_, i) => api(node.url, 'POST', '/topics/busy/messages', { payload: `m-${sent + i}` })))
      sent += batch.length
      overloaded = batch.find(r => r.status === 429)
      for (const r of batch) if (r.status !== 201 && r.status !== 429) assert.fail(`unexpected ${r.status} ${JSON.stringify(r.json)}`)
    }
    assert.ok(overloaded !== undefined, `no OVERLOADED after ${sent} publishes`)
    assert.equal(overloaded.json.error, 'OVERLOADED')
    assert.match(overloaded.json.message, /credit/)
    const cluster = (await api(node.url, 'GET', '/cluster')).json
    const admission = cluster.decisions.find((d: { kind: string }) => d.kind === 'admission')
    assert.ok(admission !== undefined, JSON.stringify(cluster.decisions))
    assert.ok(admission.credit < 1)
    assert.equal(admission.prediction.predictor, 'ewma')
    assert.ok(admission.prediction.current > 0.01)
    assert.ok(cluster.prediction.admission.refused >= 1)
    assert.equal((await api(node.url, 'GET', '/health')).status, 200)
  } finally {
    await node.kill()
    dir.remove()
  }
})

test('GET /metrics carries the load-prediction metrics', { timeout: 60_000 }, async () => {
  const dir = tempDataDir('gem-predict-metrics-')
  const node = await startGem(dir.dir)
  try {
    const text = await waitFor(async () => {
      const t = await (await fetch(node.url + '/metrics')).text()
      return /gem_load_predicted\{node="[^"]+"\} \d/.test(t) ? t : undefined
    }, 'a predicted load in /metrics', 20_000)
    assert.match(text, /gem_publish_credit [\d.]+/)
    assert.match(text, /# TYPE gem_load_decisions_total counter/)
    assert.match(text, /gem_publish_admission_refused_total 0/)
  } finally {
    await node.kill()
    dir.remove()
  }
})

test('the byte-rate and connections features are sampled from real traffic: publish and delivery bytes, open WebSocket and SSE clients', { timeout: 60_000 }, async () => {
  const dir = tempDataDir('gem-predict-features-')
  const node = await startGem(dir.dir)
  let ws: WebSocket | undefined
  const sse = new AbortController()
  try {
    assert.equal((await api(node.url, 'POST', '/topics', { name: 'feat', partitions: 1 })).status, 201)
    ws = new WebSocket(node.url.replace(/^http/, 'ws') + '/ws')
    await new Promise<void>((resolve, reject) => { ws!.onopen = () => resolve(); ws!.onerror = () => reject(new Error('ws did not open')) })
    ws.send(JSON.stringify({ type: 'subscribe', topic: 'feat', client_id: 'features' }))
    const events = await fetch(`${node.url}/topics/feat/events?group=features&from=earliest`, { signal: sse.signal })
    assert.equal(events.status, 200)
    events.body!.pipeTo(new WritableStream()).catch(() => {})
    let sent = 0
    // Bounded: at most 40 s and 20,000 publishes of 256 bytes, 50 a batch, until a sample shows them.
    const features = await waitFor(async () => {
      if (sent < 20_000) {
        const r = await api(node.url, 'POST', '/topics/feat/messages', { messages: Array.from({ length: 50 }, (_, i) => ({ payload: 'x'.repeat(250) + String(sent + i).padStart(6, '0') })) })
        assert.equal(r.status, 201, JSON.stringify(r.json))
        sent += 50
      }
      const f = (await api(node.url, 'GET', '/cluster')).json.prediction?.features
      return f != null && f.bytes_rate > 0 && f.publish_rate > 0 && f.connections >= 2 ? f : undefined
    }, 'a feature sample with bytes and connections', 40_000)
    // Every publish is 256 payload bytes, and it is delivered at least once (the SSE group): bytes >= 256 x rate.
    assert.ok(features.bytes_rate >= 256 * features.publish_rate, JSON.stringify(features))
    assert.ok(features.connections >= 2, JSON.stringify(features))
  } finally {
    sse.abort()
    ws?.close()
    await node.kill()
    dir.remove()
  }
})

test('a node predicted over capacity hands the leadership of a partition it leads to a follower', { timeout: 150_000 }, async () => {
  // One node is made the busy one: readers hammer its gateway (full event loop, utilization near 1) while publishes keep
  // every partition loaded. Over the 2% capacity line every node is "hot", but only the busy one is above the 0.95
  // target, and its followers, well under it, can take a leadership. Without the readers the outcome would depend on
  // how fast the machine is (on a quiet one no node reaches the target, so nothing needs to move).
  await withMeshProcesses(3, async ({ nodes, ids }) => {
    assert.equal((await api(nodes[0].url, 'POST', '/topics', { name: 'hot', partitions: 6 })).status, 201)
    const busy = nodes[ids.indexOf(await agreedLeader(nodes, 'hot', 0))]
    const deadline = Date.now() + 60_000
    type Move = { kind: string, topic: string, partition: number, from: string, to: string, prediction: { predictor: string, current: number, predicted: number } }
    let move: Move | undefined
    let sent = 0
    let reading = true
    // Bounded: until a move is seen or the deadline, each reader one request at a time.
    const readers = Array.from({ length: 6 }, async (_, i) => {
      while (reading && Date.now() < deadline) await api(busy.url, 'GET', `/topics/hot/messages?partition=${i}&from=0&limit=1000`).catch(() => {})
    })
    try {
      // Bounded: at most 60 s and 60,000 publishes, a batch of 20 per node in turn.
      while (move === undefined && Date.now() < deadline && sent < 60_000) {
        for (const n of nodes) {
          const r = await api(n.url, 'POST', '/topics/hot/messages', { messages: Array.from({ length: 20 }, (_, i) => ({ payload: `m-${sent + i}`, key: `k-${(sent + i) % 12}` })) })
          assert.equal(r.status, 201, JSON.stringify(r.json))
          sent += 20
        }
        for (const n of nodes) {
          const decisions = (await api(n.url, 'GET', '/cluster')).json.decisions as Move[]
          move ??= decisions.find(d => d.kind === 'move-leader')
        }
      }
    } finally {
      reading = false
      await Promise.all(readers)
    }
    assert.ok(move !== undefined, `no leadership move after ${sent} publishes`)
    assert.equal(move.topic, 'hot')
    assert.notEqual(move.from, move.to)
    assert.equal(move.prediction.predictor, 'onnx')
    assert.ok(move.prediction.predicted > 0.02, `decided over capacity: ${JSON.stringify(move.prediction)}`)
    // The transfer lands: every node agrees on a leader other than the one that handed it off.
    const leader = await agreedLeader(nodes, 'hot', move.partition, move.from)
    assert.notEqual(leader, move.from)
  }, ['--predict-capacity', '0.02', '--predict-target', '0.95', '--predict-moves', 'true'])
})
