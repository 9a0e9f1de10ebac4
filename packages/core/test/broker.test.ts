// The broker engine on the memory tier in virtual time: ordering, idempotency, consumer groups,
// redelivery, dead letters, credit, start positions, retention and recovery.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Broker } from '../src/broker.ts'
import type { Delivery } from '../src/broker-types.ts'
import type { GemRecord } from '../src/message.ts'
import { ManualClock } from '../src/clock.ts'
import { GemError } from '../src/errors.ts'
import { MemoryTier } from '../src/store/memory-tier.ts'
import { GatedTier } from './gated-tier.ts'
import { encodeRecordFrames } from '../src/codec.ts'
import { settle, waitFor } from './wait-for.ts'

const te = new TextEncoder()
const td = new TextDecoder()
const bytes = (s: string): Uint8Array => te.encode(s)

async function openBroker (opts: { tier?: MemoryTier, clock?: ManualClock, autoCreateTopics?: boolean, retentionCheckMs?: number, segmentBytes?: number } = {}) {
  const tier = opts.tier ?? new MemoryTier()
  const clock = opts.clock ?? new ManualClock()
  let seed = 42
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const broker = await Broker.open({ tier, clock, random, ownsTier: false, retentionCheckMs: opts.retentionCheckMs ?? 0, autoCreateTopics: opts.autoCreateTopics, segmentBytes: opts.segmentBytes })
  return { broker, tier, clock }
}

function collector () {
  const got: Delivery[] = []
  return { got, deliver: (d: Delivery) => { got.push(d) } }
}

describe('publish and read', () => {
  test('offsets are dense and reads return records in order', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('orders')
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => broker.publish('orders', { payload: bytes(`m${i}`) })))
    assert.deepEqual(results.map(r => r.offset), Array.from({ length: 100 }, (_, i) => i))
    const { messages, next } = await broker.read('orders', 0, 10, 5)
    assert.deepEqual(messages.map(m => td.decode(m.payload)), ['m10', 'm11', 'm12', 'm13', 'm14'])
    assert.equal(next, 15)
    assert.deepEqual(broker.getTopic('orders').offsets, [{ partition: 0, low: 0, high: 100 }])
    await broker.close()
  })

  test('keys pick a stable partition; no key spreads round-robin', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('k', { partitions: 4 })
    const a = await Promise.all([1, 2, 3].map(() => broker.publish('k', { payload: bytes('x'), key: 'user-7' })))
    assert.equal(new Set(a.map(r => r.partition)).size, 1)
    const b = await Promise.all([1, 2, 3, 4].map(() => broker.publish('k', { payload: bytes('x') })))
    assert.deepEqual(b.map(r => r.partition).sort(), [0, 1, 2, 3])
    await broker.close()
  })

  test('unknown topics, bad names and bad input are refused with codes', async () => {
    const { broker } = await openBroker()
    await assert.rejects(broker.publish('nope', { payload: bytes('x') }), (e: unknown) => GemError.is(e, 'TOPIC_NOT_FOUND'))
    await assert.rejects(broker.createTopic('bad/name'), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    await broker.createTopic('t')
    await assert.rejects(broker.createTopic('t'), (e: unknown) => GemError.is(e, 'TOPIC_EXISTS'))
    await assert.rejects(broker.publish('t', { payload: 'str' as unknown as Uint8Array }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    await assert.rejects(broker.publish('t', { payload: bytes('x'), priority: 11 }), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    await assert.rejects(broker.publish('t', { payload: new Uint8Array(5 * 1024 * 1024) }), (e: unknown) => GemError.is(e, 'PAYLOAD_TOO_LARGE'))
    await assert.rejects(broker.read('t', 3, 0, 10), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    assert.equal(broker.getTopic('t').offsets[0].high, 0)
    await broker.close()
  })

  test('an empty partition copy can start where its replicas do; a group from earliest starts there; a used log refuses', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('copy')
    broker.startPartitionAt('copy', 0, 500)
    assert.deepEqual(broker.getTopic('copy').offsets, [{ partition: 0, low: 500, high: 500 }])
    const c = collector()
    const h = await broker.consume('copy', { group: 'g', from: 'earliest' }, c.deliver)
    const records: GemRecord[] = [500, 501].map(offset => ({
      id: `r${offset}`, topic: 'copy', partition: 0, offset, payload: bytes(`p${offset}`), headers: {}, priority: 5, timestamp: 1, ttl: 0, attempt: 0,
    }))
    await broker.appendSequenced('copy', 0, records)
    await waitFor(() => c.got.length === 2, 'both copied records delivered')
    assert.deepEqual(c.got.map(d => d.record.offset), [500, 501])
    assert.throws(() => broker.startPartitionAt('copy', 0, 900), (e: unknown) => GemError.is(e, 'INTERNAL'))
    assert.throws(() => broker.startPartitionAt('copy', 1, 9), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    assert.throws(() => broker.startPartitionAt('copy', 0, -1), (e: unknown) => GemError.is(e, 'BAD_REQUEST'))
    h.close()
    await broker.close()
  })

  test('auto-creation makes the topic on first publish', async () => {
    const { broker } = await openBroker({ autoCreateTopics: true })
    const r = await broker.publish('fresh', { payload: bytes('x') })
    assert.equal(r.offset, 0)
    assert.equal(broker.getTopic('fresh').partitions, 1)
    await broker.close()
  })
})

function sequenced (topic: string, from: number, count: number, size = 16): { records: GemRecord[], frames: Uint8Array[] } {
  const records: GemRecord[] = Array.from({ length: count }, (_, i) => ({
    id: `s${from + i}`, topic, partition: 0, offset: from + i, payload: new Uint8Array(size).fill(97), headers: {}, priority: 5, timestamp: 1, ttl: 0, attempt: 0,
  }))
  return { records, frames: encodeRecordFrames(records) }
}

describe('sequenced appends (replication apply) are visible before their write lands', () => {
  test('reads, tails and groups see them while the write is held; sync() waits for it', async () => {
    const tier = new GatedTier()
    const { broker } = await openBroker({ tier })
    await broker.createTopic('rep')
    const c = collector()
    const h = await broker.consume('rep', { group: 'g', from: 'earliest' }, c.deliver)
    tier.hold = true
    // A write already in flight: the records below queue behind it, so their batch has not even formed yet.
    const before = broker.createTopic('other')
    await waitFor(() => tier.held.length === 1, 'the topic write held')
    const a = sequenced('rep', 0, 3)
    await broker.appendSequenced('rep', 0, a.records, a.frames) // resolves with the write still held
    assert.equal(broker.getTopic('rep').offsets[0].high, 3)
    assert.deepEqual((await broker.read('rep', 0, 0, 10)).messages.map(m => m.id), ['s0', 's1', 's2'])
    await waitFor(() => c.got.length === 3, 'group delivery before the write')
    // A start by time finds them too, though no segment's stats count them yet.
    const byTime = collector()
    const ht = await broker.consume('rep', { from: { timestamp: 1 } }, byTime.deliver)
    await waitFor(() => byTime.got.length === 3, 'a consumer from a timestamp gets the records shown early')
    ht.close()
    let synced = false
    void broker.sync().then(() => { synced = true })
    await settle()
    assert.equal(synced, false, 'sync() must wait for the held write')
    tier.hold = false
    tier.release()
    await waitFor(() => { tier.release(); return synced }, 'sync() once the writes are released')
    await before
    // On the tier now: a broker reopened on it finds all three.
    h.close()
    await broker.close()
    const again = await openBroker({ tier })
    assert.deepEqual((await again.broker.read('rep', 0, 0, 10)).messages.map(m => m.id), ['s0', 's1', 's2'])
    await again.broker.close()
  })

  test('past the bound of unwritten bytes, an append waits for the write; later ones queue behind it in order', async () => {
    const tier = new GatedTier()
    const { broker } = await openBroker({ tier })
    await broker.createTopic('big')
    tier.hold = true
    const first = sequenced('big', 0, 1, 1024)
    await broker.appendSequenced('big', 0, first.records, first.frames)
    const large = sequenced('big', 1, 5, 1024 * 1024) // 5 MiB: over the bound
    let done = false
    const p = broker.appendSequenced('big', 0, large.records, large.frames).then(() => { done = true })
    const small = sequenced('big', 6, 1, 16)
    let smallDone = false
    const q = broker.appendSequenced('big', 0, small.records, small.frames).then(() => { smallDone = true })
    await settle()
    assert.equal(done, false)
    assert.equal(smallDone, false, 'a small append behind a waiting one must wait too (no gap for readers)')
    assert.equal(broker.getTopic('big').offsets[0].high, 1)
    tier.hold = false
    tier.release()
    await Promise.all([p, q])
    assert.equal(broker.getTopic('big').offsets[0].high, 7)
    assert.deepEqual((await broker.read('big', 0, 0, 10)).messages.map(m => m.offset), [0, 1, 2, 3, 4, 5, 6])
    await broker.close()
  })

  test('a failed write of records already shown breaks the log: later appends fail UNAVAILABLE, the error is reported', async () => {
    const tier = new GatedTier()
    const errors: string[] = []
    const broker = await Broker.open({ tier, clock: new ManualClock(), ownsTier: false, retentionCheckMs: 0, observer: { error: (where: string) => { errors.push(where) } } })
    await broker.createTopic('bad')
    tier.failNext = true
    const a = sequenced('bad', 0, 2)
    await broker.appendSequenced('bad', 0, a.records, a.frames)
    await waitFor(() => errors.includes('storage'), 'storage error reported')
    const b = sequenced('bad', 2, 1)
    await assert.rejects(broker.appendSequenced('bad', 0, b.records, b.frames), (e: unknown) => GemError.is(e, 'UNAVAILABLE'))
    // Other topics keep working.
    await broker.createTopic('fine')
    assert.equal((await broker.publish('fine', { payload: bytes('x') })).offset, 0)
    await broker.close()
  })
})

describe('group commit', () => {
  test('a burst over one write\'s byte bound is written in several writes, and every publish of it resolves', async () => {
    // 16 publishes of ~1 MiB: the first write takes 8 and leaves exactly as many (a split that once dropped the rest).
    const { broker } = await openBroker()
    await broker.createTopic('burst')
    const results = await Promise.all(Array.from({ length: 16 }, () => broker.publish('burst', { payload: new Uint8Array(1024 * 1024 - 128) })))
    assert.deepEqual(results.map(r => r.offset), Array.from({ length: 16 }, (_, i) => i))
    assert.equal(broker.getTopic('burst').offsets[0].high, 16)
    await broker.close()
  })
})

describe('idempotent publish', () => {
  test('a repeated id answers with the original offset and stores nothing new', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t')
    const first = await broker.publish('t', { payload: bytes('a'), id: 'order-1' })
    const again = await broker.publish('t', { payload: bytes('a'), id: 'order-1' })
    assert.deepEqual(again, { ...first, duplicate: true })
    const [c1, c2] = await Promise.all([
      broker.publish('t', { payload: bytes('b'), id: 'order-2' }),
      broker.publish('t', { payload: bytes('b'), id: 'order-2' }),
    ])
    assert.equal(c1.offset, c2.offset)
    assert.equal(broker.getTopic('t').offsets[0].high, 2)
    await broker.close()
  })

  test('the window survives a restart and expires with time', async () => {
    const tier = new MemoryTier()
    const clock = new ManualClock()
    let { broker } = await openBroker({ tier, clock })
    await broker.createTopic('t')
    const first = await broker.publish('t', { payload: bytes('a'), id: 'x' })
    await broker.close()
    ;({ broker } = await openBroker({ tier, clock }))
    assert.deepEqual(await broker.publish('t', { payload: bytes('a'), id: 'x' }), { ...first, duplicate: true })
    clock.advance(121_000)
    const later = await broker.publish('t', { payload: bytes('a'), id: 'x' })
    assert.equal(later.duplicate, false)
    assert.equal(later.offset, 1)
    await broker.close()
  })
})

describe('consumer groups', () => {
  test('a group receives every record in order with attempt 1 and acks advance the committed offset', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t')
    for (let i = 0; i < 10; i++) await broker.publish('t', { payload: bytes(`m${i}`) })
    const c = collector()
    const h = await broker.consume('t', { group: 'g' }, c.deliver)
    await waitFor(() => c.got.length === 10, '10 deliveries')
    assert.deepEqual(c.got.map(d => d.record.offset), [...Array(10).keys()])
    assert.ok(c.got.every(d => d.attempt === 1))
    for (const d of c.got.slice(0, 4)) assert.equal(await h.ack(d.tag), true)
    assert.equal(await h.ack('0.2.1'), false, 'a second ack is unknown')
    assert.deepEqual(broker.stats().groups[0].committed, [{ partition: 0, offset: 4 }])
    assert.equal(broker.stats().groups[0].backlog, 6)
    h.close()
    await broker.close()
  })

  test('maxInFlight limits what a consumer holds until it acks', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t')
    for (let i = 0; i < 5; i++) await broker.publish('t', { payload: bytes('x') })
    const c = collector()
    const h = await broker.consume('t', { group: 'g', maxInFlight: 2 }, c.deliver)
    await waitFor(() => c.got.length === 2, '2 deliveries')
    await settle()
    assert.equal(c.got.length, 2)
    await h.ack(c.got[0].tag)
    await waitFor(() => c.got.length === 3, 'a third delivery after one ack')
    h.close()
    await broker.close()
  })

  test('an unacked record comes back after the deadline with attempt 2, then goes to the DLQ', async () => {
    const { broker, clock } = await openBroker()
    await broker.createTopic('jobs')
    await broker.publish('jobs', { payload: bytes('job'), headers: { trace: 'abc' } })
    const c = collector()
    const h = await broker.consume('jobs', { group: 'workers', ackWaitMs: 1000, maxDeliver: 3, backoffMs: 100, maxBackoffMs: 1000 }, c.deliver)
    await waitFor(() => c.got.length === 1, 'first delivery')
    clock.advance(999)
    await settle()
    assert.equal(c.got.length, 1, 'not redelivered before the deadline')
    clock.advance(1 + 125) // deadline, then at most 1.25 x backoff
    await waitFor(() => c.got.length === 2, 'redelivery')
    assert.equal(c.got[1].attempt, 2)
    assert.equal(c.got[1].record.offset, 0)
    clock.advance(1000 + 250)
    await waitFor(() => c.got.length === 3, 'third delivery')
    assert.equal(c.got[2].attempt, 3)
    clock.advance(1000)
    await waitFor(() => broker.stats().deadLettered === 1, 'dead-lettering')
    const dlq = await broker.read('jobs.dlq', 0, 0, 10)
    assert.equal(dlq.messages.length, 1)
    const dead = dlq.messages[0]
    assert.equal(td.decode(dead.payload), 'job')
    assert.equal(dead.attempt, 3)
    assert.equal(dead.headers.trace, 'abc')
    assert.equal(dead.headers['gem-dlq-topic'], 'jobs')
    assert.equal(dead.headers['gem-dlq-offset'], '0')
    assert.match(dead.headers['gem-dlq-reason'], /ack deadline expired: 3 deliveries/)
    assert.equal(broker.stats().groups.find(g => g.group === 'workers')!.committed[0].offset, 1)
    h.close()
    await broker.close()
  })

  test('a nack redelivers at once with the next attempt number', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t')
    await broker.publish('t', { payload: bytes('x') })
    const c = collector()
    const h = await broker.consume('t', { group: 'g' }, c.deliver)
    await waitFor(() => c.got.length === 1, 'delivery')
    assert.equal(await h.nack(c.got[0].tag), true)
    await waitFor(() => c.got.length === 2, 'redelivery after nack')
    assert.equal(c.got[1].attempt, 2)
    assert.equal(await h.ack(c.got[0].tag), false, 'a tag from attempt 1 does not settle attempt 2')
    assert.equal(await h.nack(c.got[0].tag), false)
    await h.ack(c.got[1].tag)
    h.close()
    await broker.close()
  })

  test('records held by a consumer that leaves go to the others, in offset order', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t')
    for (let i = 0; i < 4; i++) await broker.publish('t', { payload: bytes('x') })
    const a = collector()
    const ha = await broker.consume('t', { group: 'g', maxInFlight: 4 }, a.deliver)
    await waitFor(() => a.got.length === 4, 'a holds 4')
    const b = collector()
    const hb = await broker.consume('t', { group: 'g' }, b.deliver)
    ha.close()
    await waitFor(() => b.got.length === 4, 'b gets them')
    assert.ok(b.got.every(d => d.attempt === 2))
    // Requeued together, redelivered in their offset order (not reversed by the schedule's heap).
    assert.deepEqual(b.got.map(d => d.record.offset), [0, 1, 2, 3])
    hb.close()
    await broker.close()
  })

  test('start positions: latest, offset and timestamp', async () => {
    const { broker, clock } = await openBroker()
    await broker.createTopic('t')
    for (let i = 0; i < 5; i++) { await broker.publish('t', { payload: bytes(`m${i}`) }); clock.advance(1000) }
    const t3 = (await broker.read('t', 0, 3, 1)).messages[0].timestamp
    const latest = collector()
    const h1 = await broker.consume('t', { group: 'l', from: 'latest' }, latest.deliver)
    const byOffset = collector()
    const h2 = await broker.consume('t', { group: 'o', from: { offset: 2 } }, byOffset.deliver)
    const byTime = collector()
    const h3 = await broker.consume('t', { group: 'ts', from: { timestamp: t3 } }, byTime.deliver)
    await broker.publish('t', { payload: bytes('m5') })
    await waitFor(() => latest.got.length === 1 && byOffset.got.length === 4 && byTime.got.length === 3, 'deliveries')
    assert.equal(latest.got[0].record.offset, 5)
    assert.deepEqual(byOffset.got.map(d => d.record.offset), [2, 3, 4, 5])
    assert.deepEqual(byTime.got.map(d => d.record.offset), [3, 4, 5])
    for (const h of [h1, h2, h3]) h.close()
    await broker.close()
  })

  test('committed offsets and attempt counts survive a restart', async () => {
    const tier = new MemoryTier()
    const clock = new ManualClock()
    let { broker } = await openBroker({ tier, clock })
    await broker.createTopic('t')
    for (let i = 0; i < 6; i++) await broker.publish('t', { payload: bytes(`m${i}`) })
    const c = collector()
    const h = await broker.consume('t', { group: 'g' }, c.deliver)
    await waitFor(() => c.got.length === 6, 'deliveries')
    await h.ack(c.got[0].tag)
    await h.ack(c.got[1].tag)
    await h.ack(c.got[3].tag) // out of order: 2 stays unacked
    await broker.close()
    ;({ broker } = await openBroker({ tier, clock }))
    assert.equal(broker.stats().groups[0].committed[0].offset, 2)
    const again = collector()
    const h2 = await broker.consume('t', { group: 'g' }, again.deliver)
    await waitFor(() => again.got.length === 3, 'redeliveries after restart')
    assert.deepEqual(again.got.map(d => d.record.offset), [2, 4, 5], 'acked offset 3 is not redelivered')
    assert.ok(again.got.every(d => d.attempt === 2), 'delivered before the restart, so this is attempt 2')
    h2.close()
    await broker.close()
  })

  test('pull waits for records and ack/nack work by tag', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t')
    const pending = broker.pull('t', 'p', { max: 5, waitMs: 10_000 })
    await settle()
    await broker.publish('t', { payload: bytes('a') })
    const got = await pending
    assert.equal(got.length, 1)
    const r = await broker.ack('t', 'p', [got[0].tag, 'garbage'])
    assert.deepEqual(r, { acked: 1, unknown: ['garbage'] })
    assert.deepEqual(await broker.pull('t', 'p', { max: 5 }), [])
    await broker.close()
  })

  test('expired records (ttl) are skipped, not delivered', async () => {
    const { broker, clock } = await openBroker()
    await broker.createTopic('t')
    await broker.publish('t', { payload: bytes('old'), ttl: 1000 })
    await broker.publish('t', { payload: bytes('new') })
    clock.advance(2000)
    const c = collector()
    const h = await broker.consume('t', { group: 'g' }, c.deliver)
    await waitFor(() => c.got.length === 1, 'one delivery')
    assert.equal(td.decode(c.got[0].record.payload), 'new')
    h.close()
    await broker.close()
  })
})

describe('tails and retention', () => {
  test('a tail replays the last N and then follows live commits without a gap', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t')
    for (let i = 0; i < 10; i++) await broker.publish('t', { payload: bytes(`m${i}`) })
    const seen: number[] = []
    const tail = await broker.tail('t', { lastN: 3 }, rs => { for (const r of rs) seen.push(r.offset) })
    await broker.publish('t', { payload: bytes('m10') })
    await waitFor(() => seen.length === 4, 'tail records')
    assert.deepEqual(seen, [7, 8, 9, 10])
    tail.close()
    await broker.close()
  })

  test('a tail resumed from per-partition offsets replays what it missed, then follows live, each record once in order', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('t', { partitions: 3 })
    // 20 records per partition; payloads of 300 KiB on partition 2 so its replay spans several 4 MiB reads.
    for (let i = 0; i < 20; i++) {
      for (let p = 0; p < 3; p++) await broker.publish('t', { payload: p === 2 ? new Uint8Array(300 * 1024) : bytes(`p${p}-${i}`), partition: p })
    }
    const seen = new Map<number, number[]>([[0, []], [1, []], [2, []]])
    const tail = await broker.tail('t', { from: [15, null, 0] }, rs => { for (const r of rs) seen.get(r.partition)!.push(r.offset) })
    assert.deepEqual(tail.from, [15, 20, 0])
    for (let p = 0; p < 3; p++) await broker.publish('t', { payload: bytes('live'), partition: p })
    await waitFor(() => seen.get(0)!.length === 6 && seen.get(1)!.length === 1 && seen.get(2)!.length === 21, 'resumed records')
    assert.deepEqual(seen.get(0), [15, 16, 17, 18, 19, 20])
    assert.deepEqual(seen.get(1), [20])
    assert.deepEqual(seen.get(2), Array.from({ length: 21 }, (_, i) => i))
    tail.close()
    // A resume point beyond the log (a peer that saw more on another replica) replays nothing and says so.
    const ahead = await broker.tail('t', { from: [99] }, () => {})
    assert.deepEqual(ahead.from, [99, 21, 21])
    ahead.close()
    for (const bad of [[-1], ['3'], [1.5], 'x', {}]) {
      await assert.rejects(broker.tail('t', { from: bad as unknown as number[] }, () => {}), (e: GemError) => e.code === 'BAD_REQUEST')
    }
    await broker.close()
  })

  test('retention drops whole old segments and groups move past them', async () => {
    const { broker, clock } = await openBroker({ segmentBytes: 1024 })
    await broker.createTopic('t', { retention: { maxAgeMs: 60_000, maxBytes: 0 } })
    for (let i = 0; i < 50; i++) await broker.publish('t', { payload: new Uint8Array(100) })
    clock.advance(120_000)
    await broker.publish('t', { payload: new Uint8Array(100) })
    const dropped = await broker.applyRetention()
    assert.ok(dropped > 0)
    const { low, high } = broker.getTopic('t').offsets[0]
    assert.ok(low > 0 && low <= 50, `low ${low}`)
    assert.equal(high, 51)
    const r = await broker.read('t', 0, 0, 1000)
    assert.equal(r.messages[0].offset, low)
    assert.equal(r.messages.at(-1)!.offset, 50)
    await broker.close()
  })

  test('retention by bytes keeps each partition under its limit (plus the newest segment)', async () => {
    const { broker } = await openBroker({ segmentBytes: 2048 })
    await broker.createTopic('b', { retention: { maxAgeMs: 0, maxBytes: 8192 } })
    for (let i = 0; i < 200; i++) await broker.publish('b', { payload: new Uint8Array(200) })
    await broker.applyRetention()
    const { low, high } = broker.getTopic('b').offsets[0]
    assert.equal(high, 200)
    assert.ok(low > 150, `low ${low}: old segments dropped`)
    const r = await broker.read('b', 0, 0, 1000)
    assert.equal(r.messages.length, high - low)
    // A group starting from 'earliest' begins at the new low.
    const got: number[] = []
    const h = await broker.consume('b', { group: 'g', from: 'earliest' }, d => { got.push(d.record.offset) })
    await waitFor(() => got.length === high - low, 'all retained records')
    assert.equal(got[0], low)
    h.close()
    await broker.close()
  })

  test('deleting a topic ends its tails, consumers and pending pulls with TOPIC_NOT_FOUND', async () => {
    const { broker } = await openBroker()
    await broker.createTopic('gone')
    const ended: string[] = []
    await broker.tail('gone', {}, () => {}, err => { ended.push(`tail:${err.code}`) })
    await broker.consume('gone', { group: 'g' }, () => {}, err => { ended.push(`consumer:${err.code}`) })
    const pending = broker.pull('gone', 'p', { max: 5, waitMs: 60_000 })
    await settle()
    await broker.deleteTopic('gone')
    assert.deepEqual(await pending, [])
    assert.deepEqual(ended.sort(), ['consumer:TOPIC_NOT_FOUND', 'tail:TOPIC_NOT_FOUND'])
    await broker.close()
  })
})

