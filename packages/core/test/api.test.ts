// The SDK surface (createGem): payload encodings, handler and iterator subscriptions, auto and
// manual acks, groups sharing work, resume after reopen, and errors that leave the gem usable.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createGem } from '../src/api/gem.ts'
import type { ReceivedMessage } from '../src/api/subscription.ts'
import { GemError } from '../src/errors.ts'
import { MemoryTier } from '../src/store/memory-tier.ts'
import { waitFor } from './wait-for.ts'

const isCode = (code: string) => (e: unknown) => GemError.is(e) && e.code === code

describe('createGem', () => {
  test('payloads: bytes stay bytes, strings are UTF-8, JSON values round-trip', async () => {
    const gem = await createGem()
    await gem.topics.create('p')
    await gem.publish('p', new Uint8Array([0, 255]))
    await gem.publish('p', 'héllo')
    await gem.publish('p', { n: 1, list: [true, null] })
    const { messages } = await gem.read('p')
    assert.deepEqual([...messages[0].payload], [0, 255])
    assert.equal(new TextDecoder().decode(messages[1].payload), 'héllo')
    assert.equal(messages[2].headers['gem-encoding'], 'json')
    assert.deepEqual(JSON.parse(new TextDecoder().decode(messages[2].payload)), { n: 1, list: [true, null] })
    await gem.close()
  })

  test('a handler sees one message at a time, in order; a throw nacks and the message returns as attempt 2', async () => {
    const gem = await createGem()
    await gem.topics.create('h')
    for (let i = 0; i < 20; i++) await gem.publish('h', `m${i}`)
    const seen: Array<[string, number]> = []
    let running = 0
    let maxRunning = 0
    let failedOnce = false
    const sub = gem.subscribe('h', async msg => {
      running++
      maxRunning = Math.max(maxRunning, running)
      await new Promise(resolve => setTimeout(resolve, 0))
      running--
      if (msg.text() === 'm5' && !failedOnce) { failedOnce = true; throw new Error('boom') }
      seen.push([msg.text(), msg.attempt])
    }, { group: 'g', from: 'earliest' })
    await sub.ready
    await waitFor(() => seen.length === 20, '20 handled messages')
    assert.equal(maxRunning, 1)
    assert.deepEqual(seen.filter(([t]) => t === 'm5'), [['m5', 2]])
    assert.deepEqual(seen.filter(([t]) => t !== 'm5').map(([t]) => t), Array.from({ length: 20 }, (_, i) => `m${i}`).filter(t => t !== 'm5'))
    await waitFor(() => gem.broker.stats().groups[0].committed[0].offset === 20, 'all acked')
    sub.close()
    await gem.close()
  })

  test('an iterator acks the previous message when asked for the next, and on break', async () => {
    const gem = await createGem()
    await gem.topics.create('it')
    for (let i = 0; i < 5; i++) await gem.publish('it', `m${i}`)
    const got: number[] = []
    for await (const msg of gem.subscribe('it', { group: 'g', from: 'earliest' })) {
      got.push(msg.offset)
      if (got.length === 3) break
    }
    assert.deepEqual(got, [0, 1, 2])
    await waitFor(() => gem.broker.stats().groups[0].committed[0].offset === 3, 'committed 3')
    await gem.close()
  })

  test('manual acks, nack, maxInFlight and close()', async () => {
    const gem = await createGem()
    await gem.topics.create('m')
    for (let i = 0; i < 4; i++) await gem.publish('m', `m${i}`)
    const sub = gem.subscribe('m', { group: 'g', from: 'earliest', ack: 'manual', maxInFlight: 2 })
    const it = sub[Symbol.asyncIterator]()
    const a = (await it.next()).value as ReceivedMessage
    const b = (await it.next()).value as ReceivedMessage
    assert.deepEqual([a.offset, b.offset], [0, 1])
    assert.equal(await a.nack(), true)
    const again = (await it.next()).value as ReceivedMessage
    assert.deepEqual([again.offset, again.attempt], [0, 2])
    assert.equal(await again.ack(), true)
    assert.equal(await b.ack(), true)
    const c = (await it.next()).value as ReceivedMessage
    assert.equal(c.offset, 2)
    sub.close()
    assert.equal((await it.next()).done, true, 'close ends the iteration')
    await gem.close()
  })

  test('two consumers of one group share the work; two groups each get everything', async () => {
    const gem = await createGem()
    await gem.topics.create('w', { partitions: 2 })
    const a: number[] = []
    const b: number[] = []
    const other: number[] = []
    const subs = [
      gem.subscribe('w', m => { a.push(m.partition * 1000 + m.offset) }, { group: 'workers', maxInFlight: 1 }),
      gem.subscribe('w', m => { b.push(m.partition * 1000 + m.offset) }, { group: 'workers', maxInFlight: 1 }),
      gem.subscribe('w', m => { other.push(m.partition * 1000 + m.offset) }, { group: 'audit' }),
    ]
    await Promise.all(subs.map(s => s.ready))
    for (let i = 0; i < 40; i++) await gem.publish('w', `m${i}`)
    await waitFor(() => a.length + b.length === 40 && other.length === 40, 'all delivered')
    assert.ok(a.length > 0 && b.length > 0, 'both workers got some')
    assert.equal(new Set([...a, ...b]).size, 40, 'each message to exactly one worker')
    for (const s of subs) s.close()
    await gem.close()
  })

  test('an ephemeral subscription starts at latest and leaves no group behind', async () => {
    const gem = await createGem()
    await gem.topics.create('e')
    await gem.publish('e', 'old')
    const got: string[] = []
    const sub = gem.subscribe('e', m => { got.push(m.text()) })
    await sub.ready
    await gem.publish('e', 'new')
    await waitFor(() => got.length === 1, 'one live message')
    assert.deepEqual(got, ['new'])
    sub.close()
    assert.deepEqual(gem.broker.stats().groups, [])
    await gem.close()
  })

  test('a durable group resumes from its committed position in a new gem on the same storage', async () => {
    const tier = new MemoryTier()
    let gem = await createGem({ tier, ownsTier: false })
    await gem.topics.create('r')
    for (let i = 0; i < 6; i++) await gem.publish('r', `m${i}`)
    for await (const msg of gem.subscribe('r', { group: 'g', from: 'earliest', ack: 'manual' })) {
      await msg.ack()
      if (msg.offset === 2) break
    }
    await gem.close()
    gem = await createGem({ tier, ownsTier: false })
    const next = await (gem.subscribe('r', { group: 'g' })[Symbol.asyncIterator]()).next()
    assert.equal((next.value as ReceivedMessage).offset, 3)
    await gem.close()
  })

  test('errors carry codes and leave the gem working', async () => {
    const gem = await createGem()
    await gem.topics.create('x')
    const missing = gem.subscribe('nope', () => {})
    await assert.rejects(missing.ready, isCode('TOPIC_NOT_FOUND'))
    await assert.rejects(async () => { for await (const _ of gem.subscribe('nope')) { /* never */ } }, isCode('TOPIC_NOT_FOUND'))
    await assert.rejects(gem.publish('x', 'a', { priority: 0 }), isCode('BAD_REQUEST'))
    await assert.rejects(gem.publish('x', 'a', { headers: { n: 1 as unknown as string } }), isCode('BAD_REQUEST'))
    await assert.rejects(gem.publish('', 'a'), isCode('BAD_REQUEST'))
    await assert.rejects(gem.publish('x', () => 1), isCode('BAD_REQUEST'))
    await assert.rejects(gem.publish('x', 'a', { signal: AbortSignal.abort() }))
    const ok = await gem.publish('x', 'still fine', { id: 'once' })
    assert.deepEqual(await gem.publish('x', 'still fine', { id: 'once' }), { ...ok, duplicate: true })
    await gem.close()
    await assert.rejects(gem.publish('x', 'late'), isCode('CLOSED'))
  })

  test('an iterator over a topic that gets deleted throws TOPIC_NOT_FOUND', async () => {
    const gem = await createGem()
    await gem.topics.create('d')
    const sub = gem.subscribe('d', { group: 'g' })
    await sub.ready
    const loop = (async () => { for await (const _ of sub) { /* nothing arrives */ } })()
    await gem.topics.delete('d')
    await assert.rejects(loop, isCode('TOPIC_NOT_FOUND'))
    await gem.close()
  })
})


test('payloadText keeps a leading byte order mark: a string payload comes back exactly as it was published', async () => {
  const { payloadText } = await import('../src/api/payload.ts')
  assert.equal(payloadText(new TextEncoder().encode('\uFEFFhello')), '\uFEFFhello')
})
