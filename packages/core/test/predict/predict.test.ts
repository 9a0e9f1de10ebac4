// Load prediction without a model runtime: the bounded history, the model input, the baselines, the trainer and ONNX
// writer's determinism, the decisions, publish admission and the recorded-trace parser with malformed files.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../src/clock.ts'
import { GemError } from '../../src/errors.ts'
import {
  admissionCredit, buildDataset, DEFAULT_POLICY, EwmaPredictor, forecastOf, generateTrace, HORIZONS_S, INPUT_SIZE, isHeldOut,
  LastValuePredictor, LoadHistory, LoadPredictionService, mlpForward, mlpToOnnx, parseRecordedTrace, planLeaderMoves, planReplicaMove, PublishAdmission,
  trainMlp, WINDOW, WORKLOADS, writeModelInput,
} from '../../src/predict/index.ts'
import type { LoadFeatures, LoadForecast, PartitionLoad } from '../../src/predict/index.ts'

const sample = (load: number): LoadFeatures => ({ publishRate: 0, deliveryRate: 0, bytesRate: 0, backlog: 0, consumerLag: 0, eventLoopLagMs: 0, connections: 0, load })
const flat = (load: number): LoadForecast => forecastOf(load, HORIZONS_S.map(() => 0))

describe('load history', () => {
  test('keeps at most `capacity` samples per series, oldest first, and a bounded number of series', () => {
    const h = new LoadHistory({ capacity: 4, maxSeries: 2, staleMs: 10_000 })
    for (let i = 0; i < 10; i++) h.add('a', sample(i), i * 1000)
    assert.deepEqual(h.loads('a', 100), [6, 7, 8, 9])
    assert.deepEqual(h.loads('a', 2), [8, 9])
    h.add('b', sample(1), 10_000)
    h.add('c', sample(2), 11_000)
    assert.equal(h.size, 2)
    assert.deepEqual(h.loads('a', 4), [], 'the series updated longest ago went first')
    h.prune(30_000)
    assert.equal(h.size, 0, 'stale series are dropped')
  })

  test('the model input is the past relative to now, then now; short windows pad with their oldest value', () => {
    const out = new Float32Array(INPUT_SIZE)
    writeModelInput(Array.from({ length: WINDOW }, (_, i) => i), out)
    assert.equal(out[WINDOW - 1], WINDOW - 1)
    assert.equal(out[0], -(WINDOW - 1))
    writeModelInput([2, 3], out)
    assert.equal(out[0], -1)
    assert.equal(out[WINDOW - 2], -1)
    assert.equal(out[WINDOW - 1], 3)
  })
})

describe('baselines', () => {
  test('last value and EWMA forecasts', async () => {
    const [lv] = await new LastValuePredictor().predict([[0.1, 0.2, 0.4]])
    assert.deepEqual(lv.ahead, HORIZONS_S.map(() => 0.4))
    const [ew] = await new EwmaPredictor(0.5).predict([[0, 1]])
    assert.deepEqual(ew.ahead, HORIZONS_S.map(() => 0.5))
    assert.equal(ew.peak, 1)
    assert.throws(() => new EwmaPredictor(0), RangeError)
  })
})

describe('traces, training and the ONNX writer', () => {
  test('traces are deterministic per seed and workload, and never negative', () => {
    for (const w of WORKLOADS) {
      const a = generateTrace(w, 3, { seconds: 300 })
      assert.deepEqual(a.load, generateTrace(w, 3, { seconds: 300 }).load)
      assert.notDeepEqual(a.load, generateTrace(w, 4, { seconds: 300 }).load)
      assert.ok(a.load.every(v => v >= 0 && Number.isFinite(v)))
    }
  })

  test('the same data and seed give the same weights and the same ONNX bytes', () => {
    const data = buildDataset([generateTrace('ramp', 1, { seconds: 200 })], 5)
    const opts = { seed: 3, sizes: [INPUT_SIZE, 8, HORIZONS_S.length], epochs: 2 }
    const a = trainMlp(data, opts)
    const b = trainMlp(data, opts)
    const doc = { inputName: 'load_window', outputName: 'load_delta', docString: 't' }
    assert.deepEqual(mlpToOnnx(a, doc), mlpToOnnx(b, doc))
    assert.equal(mlpForward(a, data.x.subarray(0, INPUT_SIZE), 1).length, HORIZONS_S.length)
    assert.throws(() => trainMlp(data, { ...opts, sizes: [3, 2] }), RangeError)
  })

  test('the held-out split of recorded traces is stable by name', () => {
    assert.equal(isHeldOut('a.jsonl'), isHeldOut('a.jsonl'))
    const names = Array.from({ length: 200 }, (_, i) => `trace-${i}.jsonl`)
    const held = names.filter(isHeldOut).length
    assert.ok(held > 20 && held < 70, `about a fifth held out, got ${held}`)
  })
})

describe('recorded traces', () => {
  const header = JSON.stringify({ gem_trace: 1, started: '2026-01-01T00:00:00.000Z', source: 'test' })
  test('parses one trace per series long enough to use', () => {
    const lines = [header]
    for (let i = 0; i < 70; i++) lines.push(JSON.stringify({ ts: 'x', series: 'node:a', load: i / 100 }), JSON.stringify({ ts: 'x', series: 'node:b', load: 0.1 }))
    lines.push(JSON.stringify({ ts: 'x', series: 'node:short', load: 0.1 }))
    const traces = parseRecordedTrace('t.jsonl', lines.join('\n') + '\n')
    assert.deepEqual(traces.map(t => t.name), ['t.jsonl/node:a', 't.jsonl/node:b'])
    assert.equal(traces[0].load[69], 0.69)
  })

  test('malformed files fail with BAD_REQUEST naming the line', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /empty/],
      ['{"not":"a header"}', /:1: not a gem trace/],
      [`${header}\n{broken`, /:2: not JSON/],
      [`${header}\n[1,2]`, /:2: each line must be a JSON object/],
      [`${header}\n{"series":"node:a","load":"high"}`, /:2: load must be/],
      [`${header}\n{"series":"node:a","load":-1}`, /:2: load must be/],
      [`${header}\n{"load":0.5}`, /:2: series must be/],
    ]
    for (const [text, message] of bad) {
      assert.throws(() => parseRecordedTrace('t.jsonl', text), (e: unknown) => GemError.is(e, 'BAD_REQUEST') && message.test((e as Error).message), text)
    }
  })
})

describe('decisions', () => {
  const part = (topic: string, leader: string, replicas: string[], load: number): PartitionLoad => ({ topic, partition: 0, leader, replicas, forecast: flat(load) })

  test('a node predicted over capacity hands its hottest partition to the follower with the most room', () => {
    const nodes = [
      { id: 'a', forecast: forecastOf(0.6, [0.1, 0.2, 0.3, 0.35]) }, // 0.6 now, 0.95 in 30 s
      { id: 'b', forecast: flat(0.5) },
      { id: 'c', forecast: flat(0.2) },
    ]
    const parts = [part('hot', 'a', ['a', 'b', 'c'], 0.35), part('cold', 'a', ['a', 'b', 'c'], 0.05)]
    const moves = planLeaderMoves(nodes, parts, DEFAULT_POLICY, 'test')
    assert.equal(moves.length, 1, 'one move brings a under target')
    const m = moves[0]
    assert.ok(m.kind === 'move-leader')
    assert.equal(m.topic, 'hot')
    assert.equal(m.to, 'c')
    assert.equal(m.prediction.current, 0.6)
    assert.ok(m.prediction.predicted > DEFAULT_POLICY.capacity)
    assert.equal(m.prediction.horizonS, 30)
    // The same loads, but current only: no move (the reactive controller waits).
    assert.deepEqual(planLeaderMoves(nodes.map(n => ({ id: n.id, forecast: flat(n.forecast.current) })), parts, DEFAULT_POLICY, 'test'), [])
  })

  test('no move onto a follower that would end over target', () => {
    const nodes = [{ id: 'a', forecast: flat(0.95) }, { id: 'b', forecast: flat(0.6) }]
    assert.deepEqual(planLeaderMoves(nodes, [part('hot', 'a', ['a', 'b'], 0.4)], DEFAULT_POLICY, 'test'), [])
  })

  test('a hot leader with no follower able to take its partition moves a follower replica to the coolest non-holder', () => {
    const nodes = [{ id: 'a', forecast: forecastOf(0.8, [0.1, 0.15, 0.15, 0.15]) }, { id: 'b', forecast: flat(0.6) }, { id: 'c', forecast: flat(0.55) }, { id: 'd', forecast: flat(0.1) }, { id: 'e', forecast: flat(0.2) }]
    const parts = [part('hot', 'a', ['a', 'b', 'c'], 0.4), part('cold', 'a', ['a', 'b', 'c'], 0.05)]
    const handOffs = planLeaderMoves(nodes, parts, DEFAULT_POLICY, 'test')
    assert.deepEqual(handOffs.map(d => d.kind === 'move-leader' && d.topic), ['cold'], 'no follower has room for the hot leadership; the cold one is not enough')
    const m = planReplicaMove('a', nodes, parts, DEFAULT_POLICY, 'test')
    assert.ok(m !== undefined && m.kind === 'move-replica')
    assert.deepEqual([m.topic, m.from, m.to, m.hot], ['hot', 'b', 'd', 'a'], 'the most loaded follower makes room on the coolest node')
    assert.equal(m.prediction.current, 0.8)
    assert.ok(m.prediction.predicted > DEFAULT_POLICY.capacity)
    // Once d holds it, the leadership can go there.
    const after = [part('hot', 'a', ['a', 'c', 'd'], 0.4)]
    const lead = planLeaderMoves(nodes, after, DEFAULT_POLICY, 'test')
    assert.equal(lead.length, 1)
    assert.ok(lead[0].kind === 'move-leader' && lead[0].to === 'd')
  })

  test('a follower over capacity now loses the replica of the hottest partition its leader leads; not on a forecast alone', () => {
    const parts = [part('warm', 'a', ['a', 'b', 'c'], 0.1), part('hot', 'a', ['a', 'b', 'c'], 0.3)]
    const now = [{ id: 'a', forecast: flat(0.3) }, { id: 'b', forecast: flat(0.9) }, { id: 'c', forecast: flat(0.3) }, { id: 'd', forecast: flat(0.5) }]
    const m = planReplicaMove('a', now, parts, DEFAULT_POLICY, 'test')
    assert.ok(m !== undefined && m.kind === 'move-replica')
    assert.deepEqual([m.topic, m.from, m.to, m.hot], ['hot', 'b', 'd', 'b'])
    const predictedOnly = now.map(n => n.id === 'b' ? { id: 'b', forecast: forecastOf(0.6, [0.3, 0.3, 0.3, 0.3]) } : n)
    assert.equal(planReplicaMove('a', predictedOnly, parts, DEFAULT_POLICY, 'test'), undefined)
  })

  test('no replica move onto a node that would end over target, nor for partitions another node leads', () => {
    const parts = [part('hot', 'a', ['a', 'b', 'c'], 0.3)]
    const full = [{ id: 'a', forecast: flat(0.3) }, { id: 'b', forecast: flat(0.9) }, { id: 'c', forecast: flat(0.3) }, { id: 'd', forecast: flat(0.66) }]
    assert.equal(planReplicaMove('a', full, parts, DEFAULT_POLICY, 'test'), undefined, 'd would end at 0.72, over the 0.7 target')
    const room = full.map(n => n.id === 'd' ? { id: 'd', forecast: flat(0.2) } : n)
    assert.equal(planReplicaMove('c', room, parts, DEFAULT_POLICY, 'test'), undefined, 'c does not lead it')
  })

  test('credit: cut at once near saturation, given back a step at a time', () => {
    assert.equal(admissionCredit(flat(0.5), DEFAULT_POLICY), 1)
    const hot = forecastOf(0.9, [0.2, 0.3, 0.3, 0.3]) // over capacity now, saturating within 5 s
    const cut = admissionCredit(hot, DEFAULT_POLICY, 1)
    assert.ok(cut < 1 && cut >= DEFAULT_POLICY.minCredit)
    assert.ok(Math.abs(admissionCredit(flat(0.5), DEFAULT_POLICY, cut) - (cut + 0.1)) < 1e-9)
    // A high forecast alone, while the node is under capacity, leaves credit alone: moves have time to work.
    assert.equal(admissionCredit(forecastOf(0.5, [0.6, 0.6, 0.6, 0.6]), DEFAULT_POLICY), 1)
  })
})

describe('publish admission', () => {
  test('full credit admits at once; low credit delays, then refuses with OVERLOADED', async () => {
    const clock = new ManualClock(0)
    const a = new PublishAdmission({ clock, maxWaitMs: 250, minRate: 10 })
    await a.admit()
    a.setCredit(0.5, 20) // 10 publishes/s
    const waits: Array<Promise<void>> = []
    let refused: unknown
    for (let i = 0; i < 3; i++) waits.push(a.admit().catch(e => { refused = e }))
    assert.equal(a.stats().refused, 1, 'the third would wait 300 ms, over maxWaitMs')
    await waits[2]
    assert.ok(GemError.is(refused, 'OVERLOADED'))
    assert.ok(typeof (refused as GemError).details?.retryAfterMs === 'number')
    clock.advance(100)
    clock.advance(100)
    await Promise.all(waits)
    assert.equal(a.stats().delayed, 2)
    a.setCredit(1, 20)
    await a.admit()
    assert.equal(a.stats().rate, null)
  })
})

describe('publish admission order', () => {
  test('waiters are released first in, first out, also when the credit rises or a token refills meanwhile', async () => {
    const clock = new ManualClock(0)
    const a = new PublishAdmission({ clock, maxWaitMs: 1_000, minRate: 10 })
    a.setCredit(0.5, 20) // 10 publishes/s, no token at hand
    const order: number[] = []
    const waits = [0, 1, 2].map(i => a.admit().then(() => { order.push(i) }))
    clock.advance(60)
    for (let i = 0; i < 5; i++) await Promise.resolve()
    a.setCredit(0.9, 200) // 180 publishes/s: the queue drains faster, still in order
    clock.advance(45) // a token refilled: a newcomer must still queue behind the waiters
    for (let i = 0; i < 5; i++) await Promise.resolve() // released waiters continue before the newcomer arrives
    waits.push(a.admit().then(() => { order.push(3) }))
    for (let i = 0; i < 10 && order.length < 4; i++) { clock.advance(20); await Promise.resolve() }
    await Promise.all(waits)
    assert.deepEqual(order, [0, 1, 2, 3])
    a.setCredit(1, 200)
    await a.admit()
  })
})

describe('the prediction loop', () => {
  test('samples, forecasts and records an admission decision with its prediction', async () => {
    const clock = new ManualClock(0)
    let load = 0.5
    const admission = new PublishAdmission({ clock })
    const moves: string[] = []
    const s = new LoadPredictionService({
      self: 'a', predictor: new LastValuePredictor(), clock, admission,
      sampleSelf: () => ({ ...sample(load), publishRate: 1000 }),
      peers: () => [{ id: 'b', load: 0.2 }, { id: 'c', load: undefined }],
      // t/1 has most of the publishes but its follower's load is unknown; t/0 can go to b.
      partitions: () => [
        { topic: 't', partition: 0, leader: 'a', replicas: ['a', 'b'], end: clock.now() * 0.3 },
        { topic: 't', partition: 1, leader: 'a', replicas: ['a', 'c'], end: clock.now() * 0.7 },
      ],
      transferLeadership: async (topic, partition, to) => { moves.push(`${topic}/${partition}->${to}`) },
    })
    for (let i = 0; i < 5; i++) { await s.tick(); clock.advance(1000) }
    assert.equal(s.decisions().length, 0, 'nothing to decide at 0.5')
    assert.equal(s.predictedLoad('a'), 0.5)
    assert.equal(s.predictedLoad('b'), 0.2)
    assert.equal(s.predictedLoad('c'), undefined)
    load = 0.99
    clock.advance(1000)
    await s.tick()
    const kinds = s.decisions().map(d => d.kind)
    assert.ok(kinds.includes('admission'), `decisions: ${kinds}`)
    assert.ok(admission.currentCredit < 1)
    assert.deepEqual(moves, ['t/0->b'])
    s.recordPlacement('new', { a: 0.99 })
    assert.equal(s.decisions().at(-1)?.kind, 'placement')
    s.stop()
  })
})

describe('placement on predicted load', () => {
  test('a node with predicted leadership load gets fewer leaders; without it, placement is unchanged', async () => {
    const { HashRing, assignPartitions } = await import('../../src/ring/index.ts')
    const ring = HashRing.from(['a', 'b', 'c'].map(id => ({ id, weight: 1 })))
    const keys = Array.from({ length: 30 }, (_, i) => ({ key: `t/${i}` }))
    const leadersOf = (p: Map<string, string[]>, id: string): number => [...p.values()].filter(r => r[0] === id).length
    const plain = assignPartitions(ring, keys, { replication: 3 })
    assert.deepEqual(assignPartitions(ring, keys, { replication: 3, leaderBackground: new Map() }), plain)
    const busy = assignPartitions(ring, keys, { replication: 3, leaderBackground: new Map([['a', 0.95 * 30]]) })
    assert.ok(leadersOf(busy, 'a') < leadersOf(plain, 'a') / 2, `a leads ${leadersOf(busy, 'a')} instead of ${leadersOf(plain, 'a')}`)
    assert.equal([...busy.values()].every(r => new Set(r).size === 3), true, 'replica sets stay full and distinct')
  })
})

describe('the flash-crowd simulator', () => {
  test('the same seed gives the same run; decisions on forecasts act where decisions on current load wait', async () => {
    const { runFlashCrowdSim } = await import('../../src/sim/flash-crowd-sim.ts')
    const a = await runFlashCrowdSim({ seed: 2, predictor: new LastValuePredictor(), seconds: 400 })
    const b = await runFlashCrowdSim({ seed: 2, predictor: new LastValuePredictor(), seconds: 400 })
    assert.deepEqual(a, b)
    assert.ok(a.messages > 0 && a.p99LatencyMs >= a.p50LatencyMs)
    // A predictor that sees the crowd coming (it adds the trend of the last 5 s, 30 s ahead) moves leaders earlier.
    const trend = { name: 'trend', predict: async (ws: ReadonlyArray<ArrayLike<number>>) => ws.map(w => {
      const now = w.length === 0 ? 0 : w[w.length - 1]
      const slope = w.length > 5 ? (now - w[w.length - 6]) / 5 : 0
      return forecastOf(now, HORIZONS_S.map(h => Math.max(0, slope) * h))
    }) }
    const p = await runFlashCrowdSim({ seed: 2, predictor: trend, seconds: 400 })
    assert.ok(p.overloadNodeSeconds <= a.overloadNodeSeconds, `predictive ${p.overloadNodeSeconds} vs reactive ${a.overloadNodeSeconds}`)
  })
})
