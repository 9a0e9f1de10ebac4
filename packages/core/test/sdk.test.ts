// The SDK (createGem) on the memory tier in virtual time: publish and payload encoding, handler and
// iterator subscriptions, acks, groups, credit, resume after restart, input validation and close.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import process from 'node:process'
import { createGem } from '../src/api/gem.ts'
import type { Gem } from '../src/api/gem.ts'
import type { ReceivedMessage } from '../src/api/subscription.ts'
import { ManualClock } from '../src/clock.ts'
import { GemError } from '../src/errors.ts'
import type { GemErrorCode } from '../src/errors.ts'
import { MemoryTier } from '../src/store/memory-tier.ts'
import { settle, waitFor } from './wait-for.ts'

const te = new TextEncoder()

/** A gem in virtual time: ack deadlines and redelivery backoff never fire unless a test advances the clock. */
async function openGem (opts: { tier?: MemoryTier } = {}): Promise<{ gem: Gem, tier: MemoryTier, clock: ManualClock }> {
  const tier = opts.tier ?? new MemoryTier()
  const clock = new ManualClock()
  const gem = await createGem({ tier, clock, ownsTier: opts.tier === undefined, retentionCheckMs: 0 })
  return { gem, tier, clock }
}

/** Fails (instead of hanging the run) when `p` has not settled within `ms`; closing the gem then ends its loops. */
async function withDeadline<T> (p: Promise<T>, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario did not finish within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, expired])
  } finally {
    clearTimeout(timer)
  }
}

/** Runs `body` on a fresh gem with topic `t`, within a deadline, and closes the gem even when the body fails. */
async function withGem (body: (gem: Gem, clock: ManualClock) => Promise<void>, partitions = 1): Promise<void> {
  const { gem, clock } = await openGem()
  try {
    await gem.topics.create('t', { partitions })
    await withDeadline(body(gem, clock))
  } finally {
    await gem.close()
  }
}

const isCode = (code: GemErrorCode) => (e: unknown): boolean => {
  assert.ok(GemError.is(e), `expected a GemError ${code}, got ${String(e)}`)
  assert.equal(e.code, code, e.message)
  return true
}

/** The committed offset (every offset below is acked) of a durable group on one partition. */
function committed (gem: Gem, group: string, partition = 0): number | undefined {
  return gem.broker.stats().groups.find(g => g.topic === 't' && g.group === group)?.committed[partition].offset
}

async function publishAll (gem: Gem, payloads: unknown[]): Promise<void> {
  for (const p of payloads) await gem.publish('t', p)
}

describe('publish', () => {
  test('resolves id, partition, offset and duplicate', () => withGem(async gem => {
    const a = await gem.publish('t', 'a')
    assert.equal(typeof a.id, 'string')
    assert.ok(a.id.length > 0)
    assert.deepEqual({ ...a, id: '' }, { id: '', partition: 0, offset: 0, duplicate: false })
    const b = await gem.publish('t', 'b')
    assert.equal(b.offset, 1)
    assert.notEqual(b.id, a.id)
    await gem.topics.create('two', { partitions: 2 })
    const c = await gem.publish('two', 'c', { partition: 1 })
    assert.deepEqual([c.partition, c.offset], [1, 0])
  }))

  test('strings are UTF-8, JSON values round-trip with gem-encoding json, bytes stay bytes', () => withGem(async gem => {
    const text = 'héllo, 世界 🌍'
    const doc = { n: 1.5, list: [true, null, 'x'], nested: { a: 'b' } }
    const bytes = new Uint8Array([0, 255, 1, 128])
    const window = new Uint8Array([9, 9, 1, 2, 3, 9]).subarray(2, 5)
    await gem.publish('t', text)
    await gem.publish('t', doc, { headers: { trace: 'abc' } })
    await gem.publish('t', 42)
    await gem.publish('t', null)
    await gem.publish('t', bytes)
    await gem.publish('t', window)
    await gem.publish('t', new Uint8Array([7, 8]).buffer)
    await gem.publish('t', new Uint16Array([1, 0x0201]))
    // The caller reuses its buffer after the publish resolved: the stored message must not change.
    bytes[0] = 99
    window[0] = 99

    const got: ReceivedMessage[] = []
    for await (const msg of gem.subscribe('t', { group: 'g', ack: 'manual' })) {
      got.push(msg)
      if (got.length === 8) break
    }
    assert.equal(got[0].text(), text)
    assert.deepEqual(got[0].payload, te.encode(text))
    assert.equal(got[0].headers['gem-encoding'], undefined)
    assert.deepEqual(got[1].json(), doc)
    assert.deepEqual(got[1].headers, { trace: 'abc', 'gem-encoding': 'json' })
    assert.equal(got[2].json(), 42)
    assert.equal(got[3].json(), null)
    assert.equal(got[3].headers['gem-encoding'], 'json')
    assert.ok(got[4].payload instanceof Uint8Array)
    assert.deepEqual([...got[4].payload], [0, 255, 1, 128])
    assert.equal(got[4].headers['gem-encoding'], undefined)
    assert.deepEqual([...got[5].payload], [1, 2, 3])
    assert.deepEqual([...got[6].payload], [7, 8])
    assert.equal(got[7].payload.byteLength, 4, 'a Uint16Array is sent as its bytes, not as JSON')
    assert.equal(got[7].headers['gem-encoding'], undefined)
  }))

  test('an explicit id is deduplicated', () => withGem(async gem => {
    const first = await gem.publish('t', { order: 1 }, { id: 'order-1' })
    const again = await gem.publish('t', { order: 1 }, { id: 'order-1' })
    assert.deepEqual(again, { ...first, duplicate: true })
    const [x, y] = await Promise.all([
      gem.publish('t', 'b', { id: 'order-2' }),
      gem.publish('t', 'b', { id: 'order-2' }),
    ])
    assert.equal(x.offset, y.offset)
    assert.deepEqual([x.duplicate, y.duplicate].sort(), [false, true])
    assert.equal(gem.topics.get('t').offsets[0].high, 2)
  }))
})

describe('handler subscriptions', () => {
  test('records already published are delivered on attach with attempt 1', () => withGem(async gem => {
    await publishAll(gem, ['m0', 'm1', 'm2'])
    const got: ReceivedMessage[] = []
    const sub = gem.subscribe('t', msg => { got.push(msg) }, { group: 'g' })
    await sub.ready
    await waitFor(() => got.length === 3, '3 deliveries')
    assert.deepEqual(got.map(m => [m.text(), m.attempt]), [['m0', 1], ['m1', 1], ['m2', 1]])
    await waitFor(() => committed(gem, 'g') === 3, 'auto-acks committed')
    sub.close()
  }))

  test('a slow async handler gets messages one at a time, in order, never concurrently', () => withGem(async gem => {
    const gates: Array<() => void> = []
    const seen: string[] = []
    let running = 0
    let maxRunning = 0
    const sub = gem.subscribe('t', async msg => {
      running++
      maxRunning = Math.max(maxRunning, running)
      seen.push(msg.text())
      await new Promise<void>(resolve => { gates.push(resolve) })
      running--
    }, { group: 'g' })
    await sub.ready
    await publishAll(gem, ['m0', 'm1', 'm2', 'm3', 'm4'])
    for (let i = 0; i < 5; i++) {
      await waitFor(() => gates.length === i + 1, `handler call ${i}`)
      await settle()
      assert.equal(gates.length, i + 1, 'no second call while the first is running')
      assert.equal(committed(gem, 'g'), i, 'a message is acked only when its handler returns')
      gates[i]()
    }
    await waitFor(() => committed(gem, 'g') === 5, 'all acked')
    assert.equal(maxRunning, 1)
    assert.deepEqual(seen, ['m0', 'm1', 'm2', 'm3', 'm4'])
    sub.close()
  }))

  test('a throwing handler nacks and the message comes back with attempt 2', () => withGem(async gem => {
    const calls: Array<[string, number]> = []
    const sub = gem.subscribe('t', async msg => {
      calls.push([msg.text(), msg.attempt])
      if (msg.text() === 'bad' && msg.attempt === 1) throw new Error('transient failure')
    }, { group: 'g' })
    await sub.ready
    await publishAll(gem, ['a', 'bad', 'c'])
    await waitFor(() => committed(gem, 'g') === 3, 'everything acked in the end')
    assert.deepEqual(calls.filter(c => c[0] === 'bad'), [['bad', 1], ['bad', 2]])
    assert.equal(calls.length, 4)
    assert.equal(gem.broker.stats().redelivered, 1)
    sub.close()
  }))

  test('ready rejects with TOPIC_NOT_FOUND for a missing topic and nothing is unhandled', () => withGem(async gem => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
    process.on('unhandledRejection', onUnhandled)
    try {
      const awaited = gem.subscribe('missing', () => {}, { group: 'g' })
      await assert.rejects(awaited.ready, isCode('TOPIC_NOT_FOUND'))
      // Nobody ever looks at this one's `ready`.
      gem.subscribe('missing', () => {})
      await settle()
      assert.deepEqual(unhandled, [])
      // The gem is unharmed.
      assert.equal((await gem.publish('t', 'x')).offset, 0)
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  }))
})

describe('iterator subscriptions', () => {
  test('for await receives in order; auto-ack acks the previous message on next() and on break', () => withGem(async gem => {
    await publishAll(gem, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'])
    const seen: string[] = []
    for await (const msg of gem.subscribe('t', { group: 'g' })) {
      seen.push(msg.text())
      assert.equal(committed(gem, 'g'), msg.offset, 'everything before this message is acked')
      if (msg.offset === 3) break
    }
    assert.deepEqual(seen, ['m0', 'm1', 'm2', 'm3'])
    assert.equal(committed(gem, 'g'), 4, 'break acked the last message')
    // The rest goes to the next consumer of the group, as first deliveries never acked.
    const rest: string[] = []
    for await (const msg of gem.subscribe('t', { group: 'g' })) {
      rest.push(msg.text())
      if (rest.length === 2) break
    }
    assert.deepEqual(rest, ['m4', 'm5'])
    assert.equal(committed(gem, 'g'), 6)
  }))

  test('manual acks advance the committed offset only when called', () => withGem(async gem => {
    await publishAll(gem, ['m0', 'm1', 'm2'])
    const held: ReceivedMessage[] = []
    for await (const msg of gem.subscribe('t', { group: 'g', ack: 'manual' })) {
      held.push(msg)
      if (held.length === 3) break
    }
    assert.equal(committed(gem, 'g'), 0)
    assert.equal(await held[1].ack(), true)
    assert.equal(committed(gem, 'g'), 0, 'offset 0 is still open')
    assert.equal(await held[0].ack(), true)
    assert.equal(committed(gem, 'g'), 2)
    assert.equal(await held[0].ack(), false, 'a second ack matches nothing')
  }))

  test('msg.nack() redelivers with the next attempt number', () => withGem(async gem => {
    await gem.publish('t', 'job')
    const attempts: number[] = []
    for await (const msg of gem.subscribe('t', { group: 'g', ack: 'manual' })) {
      attempts.push(msg.attempt)
      if (msg.attempt < 3) { assert.equal(await msg.nack(), true); continue }
      await msg.ack()
      break
    }
    assert.deepEqual(attempts, [1, 2, 3])
    assert.equal(committed(gem, 'g'), 1)
  }))

  test('sub.close() ends a waiting loop and yields nothing it had queued', () => withGem(async gem => {
    const sub = gem.subscribe('t', { group: 'g', ack: 'manual' })
    await sub.ready
    const seen: string[] = []
    const loop = (async () => {
      for await (const msg of sub) {
        seen.push(msg.text())
        if (seen.length === 1) {
          // Two more arrive while this one is being handled; closing must not hand them out.
          await publishAll(gem, ['m1', 'm2'])
          await waitFor(() => gem.broker.stats().groups[0].inFlight === 3, 'm1 and m2 queued')
          sub.close()
        }
      }
    })()
    await gem.publish('t', 'm0')
    await loop
    assert.deepEqual(seen, ['m0'])
    assert.equal(sub.closed, true)
    const stats = gem.broker.stats().groups[0]
    assert.equal(stats.consumers, 0)
    assert.equal(stats.inFlight, 0, 'what the closed subscription held went back to the group')
  }))

  test('an AbortSignal ends the loop, also when it is aborted before subscribing', () => withGem(async gem => {
    const ac = new AbortController()
    const seen: string[] = []
    const loop = (async () => {
      for await (const msg of gem.subscribe('t', { group: 'g', signal: ac.signal })) seen.push(msg.text())
    })()
    await gem.publish('t', 'm0')
    await waitFor(() => seen.length === 1, 'first message')
    ac.abort()
    await loop
    assert.deepEqual(seen, ['m0'])

    const sub = gem.subscribe('t', { group: 'g2', from: 'earliest', signal: AbortSignal.abort() })
    assert.equal(sub.closed, true)
    let n = 0
    for await (const _ of sub) n++
    assert.equal(n, 0)
    await sub.ready
    await settle()
    assert.equal(gem.broker.stats().groups.find(g => g.group === 'g2')?.consumers ?? 0, 0)
  }))

  test('iterating a missing topic throws TOPIC_NOT_FOUND', () => withGem(async gem => {
    await assert.rejects(async () => {
      for await (const _ of gem.subscribe('missing', { group: 'g' })) assert.fail('no messages expected')
    }, isCode('TOPIC_NOT_FOUND'))
  }))
})

describe('groups', () => {
  test('two subscribers in one group share the work: each message goes to exactly one', () => withGem(async gem => {
    const a: number[] = []
    const b: number[] = []
    const subA = gem.subscribe('t', m => { a.push(m.offset) }, { group: 'g' })
    const subB = gem.subscribe('t', m => { b.push(m.offset) }, { group: 'g' })
    await Promise.all([subA.ready, subB.ready])
    await Promise.all(Array.from({ length: 20 }, (_, i) => gem.publish('t', `m${i}`)))
    await waitFor(() => committed(gem, 'g') === 20, 'all 20 acked')
    assert.deepEqual([...a, ...b].sort((x, y) => x - y), [...Array(20).keys()])
    assert.ok(a.length > 0 && b.length > 0, `both got work: ${a.length} / ${b.length}`)
    subA.close()
    subB.close()
  }))

  test('two groups each get every message', () => withGem(async gem => {
    const a: string[] = []
    const b: string[] = []
    const subA = gem.subscribe('t', m => { a.push(m.text()) }, { group: 'ga' })
    const subB = gem.subscribe('t', m => { b.push(m.text()) }, { group: 'gb' })
    await Promise.all([subA.ready, subB.ready])
    await publishAll(gem, ['m0', 'm1', 'm2'])
    await waitFor(() => a.length === 3 && b.length === 3, 'both groups')
    assert.deepEqual(a, ['m0', 'm1', 'm2'])
    assert.deepEqual(b, ['m0', 'm1', 'm2'])
    subA.close()
    subB.close()
  }))

  test('an ephemeral subscription starts at latest and leaves no group behind', () => withGem(async gem => {
    await publishAll(gem, ['old0', 'old1'])
    const got: string[] = []
    const sub = gem.subscribe('t', m => { got.push(m.text()) })
    await sub.ready
    assert.match(sub.group ?? '', /^_ephemeral\./)
    await publishAll(gem, ['new0', 'new1'])
    await waitFor(() => got.length === 2, 'the live messages')
    assert.deepEqual(got, ['new0', 'new1'])
    sub.close()
    await gem.publish('t', 'after-close')
    await settle()
    assert.deepEqual(got, ['new0', 'new1'])
    assert.deepEqual(gem.broker.stats().groups, [])
  }))

  test('maxInFlight bounds what a manual-ack subscriber holds', () => withGem(async gem => {
    const held: ReceivedMessage[] = []
    const sub = gem.subscribe('t', m => { held.push(m) }, { group: 'g', ack: 'manual', maxInFlight: 3 })
    await sub.ready
    await publishAll(gem, Array.from({ length: 10 }, (_, i) => `m${i}`))
    await waitFor(() => held.length === 3, '3 deliveries')
    await settle()
    assert.equal(held.length, 3, 'no fourth delivery before an ack')
    assert.equal(gem.broker.stats().groups[0].inFlight, 3)
    await held[0].ack()
    await waitFor(() => held.length === 4, 'a fourth delivery after one ack')
    await settle()
    assert.equal(held.length, 4)
    for (const m of held.slice(1)) await m.ack()
    await waitFor(() => held.length === 7, 'three more after three acks')
    assert.deepEqual(held.map(m => m.offset), [0, 1, 2, 3, 4, 5, 6])
    sub.close()
  }))
})

describe('restart', () => {
  test('a durable group resumes from its committed position on a new gem over the same tier', () => withDeadline((async () => {
    const tier = new MemoryTier()
    try {
      let { gem } = await openGem({ tier })
      try {
        await gem.topics.create('t')
        await publishAll(gem, ['m0', 'm1', 'm2', 'm3', 'm4'])
        // Auto-acks are fire-and-forget: close() must still make them durable.
        const seen: string[] = []
        const sub = gem.subscribe('t', m => { seen.push(m.text()) }, { group: 'auto' })
        await sub.ready
        await waitFor(() => seen.length === 5, 'auto group read everything')
        const held: ReceivedMessage[] = []
        for await (const msg of gem.subscribe('t', { group: 'manual', ack: 'manual', maxInFlight: 3 })) {
          held.push(msg)
          if (held.length === 3) break
        }
        await held[0].ack()
        await held[1].ack()
      } finally {
        await gem.close()
      }
      ;({ gem } = await openGem({ tier }))
      try {
        assert.equal(committed(gem, 'auto'), 5)
        assert.equal(committed(gem, 'manual'), 2)
        await gem.publish('t', 'm5')
        const auto: string[] = []
        const sub = gem.subscribe('t', m => { auto.push(m.text()) }, { group: 'auto' })
        const manual: Array<[string, number]> = []
        for await (const msg of gem.subscribe('t', { group: 'manual' })) {
          manual.push([msg.text(), msg.attempt])
          if (manual.length === 4) break
        }
        assert.deepEqual(manual, [['m2', 2], ['m3', 1], ['m4', 1], ['m5', 1]], 'm2 was delivered before the restart')
        await waitFor(() => auto.length === 1, 'the new message')
        assert.deepEqual(auto, ['m5'])
        sub.close()
      } finally {
        await gem.close()
      }
    } finally {
      await tier.close()
    }
  })()))
})

describe('bad input', () => {
  test('publish with an already-aborted signal rejects and stores nothing', () => withGem(async gem => {
    await assert.rejects(gem.publish('t', 'x', { signal: AbortSignal.abort() }), (e: unknown) => (e as Error).name === 'AbortError')
    assert.equal(gem.topics.get('t').offsets[0].high, 0)
  }))

  test('invalid publishes and subscribes reject with BAD_REQUEST and the gem keeps working', () => withGem(async gem => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const bad: Array<[string, () => Promise<unknown>]> = [
      ['priority 0', () => gem.publish('t', 'x', { priority: 0 })],
      ['a non-string header', () => gem.publish('t', 'x', { headers: { n: 1 } as unknown as Record<string, string> })],
      ['a non-string header with a JSON payload', () => gem.publish('t', { a: 1 }, { headers: { n: 1 } as unknown as Record<string, string> })],
      ['headers that are a string', () => gem.publish('t', { a: 1 }, { headers: 'zz' as unknown as Record<string, string> })],
      ['headers that are null', () => gem.publish('t', { a: 1 }, { headers: null as unknown as Record<string, string> })],
      ['a function payload', () => gem.publish('t', () => 1)],
      ['a symbol payload', () => gem.publish('t', Symbol('s'))],
      ['an undefined payload', () => gem.publish('t', undefined)],
      ['a bigint payload', () => gem.publish('t', { n: 1n })],
      ['a cyclic payload', () => gem.publish('t', cyclic)],
      ['an empty topic name', () => gem.publish('', 'x')],
      ['subscribing to an empty topic name', () => gem.subscribe('', () => {}).ready],
      ['a bad group name', () => gem.subscribe('t', () => {}, { group: 'no spaces' }).ready],
      ['maxInFlight 0', () => gem.subscribe('t', () => {}, { group: 'g', maxInFlight: 0 }).ready],
    ]
    for (const [what, call] of bad) {
      await assert.rejects(call(), (e: unknown) => {
        assert.ok(GemError.is(e, 'BAD_REQUEST'), `${what}: expected BAD_REQUEST, got ${String(e)}`)
        return true
      })
    }
    assert.equal(gem.topics.get('t').offsets[0].high, 0, 'nothing was stored')
    const r = await gem.publish('t', 'ok')
    assert.equal(r.offset, 0)
    const got: string[] = []
    for await (const msg of gem.subscribe('t', { group: 'g' })) { got.push(msg.text()); break }
    assert.deepEqual(got, ['ok'])
  }))
})

describe('close', () => {
  test('close() with subscriptions open resolves; afterwards publish, subscribe and ack reject with CLOSED', () => withDeadline((async () => {
    const { gem } = await openGem()
    let closed = false
    try {
      await gem.topics.create('t')
      const handled: ReceivedMessage[] = []
      const handlerSub = gem.subscribe('t', m => { handled.push(m) }, { group: 'h', ack: 'manual' })
      const iterSub = gem.subscribe('t', { group: 'i' })
      await Promise.all([handlerSub.ready, iterSub.ready])
      const loop = (async () => { for await (const _ of iterSub) { /* drain until closed */ } })()
      await gem.publish('t', 'x')
      await waitFor(() => handled.length === 1, 'a delivery')
      // A second close() waits for the same flush.
      await Promise.all([gem.close(), gem.close()])
      closed = true
      await loop
      assert.equal(handlerSub.closed, true)
      await assert.rejects(gem.publish('t', 'y'), isCode('CLOSED'))
      await assert.rejects(gem.subscribe('t', () => {}).ready, isCode('CLOSED'))
      await assert.rejects(handled[0].ack(), isCode('CLOSED'))
    } finally {
      if (!closed) await gem.close()
    }
  })()))
})
