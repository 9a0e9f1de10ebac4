// The SDK end to end in the page, on the default MemoryTier and the real (browser) clock and timers:
// publish, ordered group consumption with auto ack, nack and redelivery, idempotent publish. Closes every gem it opens.
import { createGem, ENCODING_HEADER } from '@gem-mesh/core'
import type { Gem, ReceivedMessage } from '@gem-mesh/core'
import { assert, assertEqual, assertSameJson, runCheck, waitUntil } from './check.ts'
import type { CheckResult } from './report.ts'

const MESSAGES = 1000

/** Even messages are strings, odd ones JSON values: both payload encodings go through the same log. */
function payloadOf (i: number): unknown {
  return i % 2 === 0 ? `message ${i} — ünïcødé ✓` : { i, tags: ['a', i], nested: { ok: true, half: i / 2 }, none: null }
}

async function withGem (body: (gem: Gem) => Promise<void>): Promise<void> {
  const gem = await createGem()
  try {
    await body(gem)
  } finally {
    await gem.close()
  }
}

function committed (gem: Gem, topic: string, group: string): number | undefined {
  return gem.broker.stats().groups.find(g => g.topic === topic && g.group === group)?.committed[0]?.offset
}

async function publishAndConsumeInOrder (gem: Gem): Promise<void> {
  await gem.topics.create('orders', { partitions: 1 })
  const published: Array<{ id: string, offset: number }> = []
  for (let i = 0; i < MESSAGES; i++) {
    const r = await gem.publish('orders', payloadOf(i))
    assertEqual(r.partition, 0, `publish ${i}: partition`)
    assertEqual(r.offset, i, `publish ${i}: offset`)
    assertEqual(r.duplicate, false, `publish ${i}: duplicate`)
    published.push({ id: r.id, offset: r.offset })
  }
  assertEqual(new Set(published.map(p => p.id)).size, MESSAGES, 'generated ids are unique')
  assertEqual(gem.topics.get('orders').offsets[0].high, MESSAGES, 'high offset after publishing')

  const received: ReceivedMessage[] = []
  const sub = gem.subscribe('orders', msg => { received.push(msg) }, { group: 'billing', from: 'earliest' })
  try {
    await sub.ready
    assertEqual(sub.group, 'billing', 'subscription group')
    await waitUntil(() => received.length >= MESSAGES, `${MESSAGES} deliveries (have ${received.length})`)
    // Auto ack: every handler success acks; the group's committed floor reaches the end of the log.
    await waitUntil(() => committed(gem, 'orders', 'billing') === MESSAGES, `group billing to commit offset ${MESSAGES} (at ${committed(gem, 'orders', 'billing')})`)
  } finally {
    sub.close()
  }
  assertEqual(received.length, MESSAGES, 'deliveries (no redelivery after auto ack)')
  received.forEach((msg, i) => {
    assertEqual(msg.offset, i, `delivery ${i}: offset (in order)`)
    assertEqual(msg.attempt, 1, `delivery ${i}: attempt`)
    assertEqual(msg.partition, 0, `delivery ${i}: partition`)
    assertEqual(msg.topic, 'orders', `delivery ${i}: topic`)
    assertEqual(msg.id, published[i].id, `delivery ${i}: id`)
    assert(msg.settled, `delivery ${i}: settled by auto ack`)
    if (i % 2 === 0) {
      assertEqual(msg.text(), payloadOf(i), `delivery ${i}: string payload`)
      assertEqual(msg.headers[ENCODING_HEADER], undefined, `delivery ${i}: a string carries no encoding header`)
    } else {
      assertSameJson(msg.json(), payloadOf(i), `delivery ${i}: JSON payload`)
      assertEqual(msg.headers[ENCODING_HEADER], 'json', `delivery ${i}: encoding header`)
    }
  })
  const stats = gem.broker.stats().groups.find(g => g.topic === 'orders' && g.group === 'billing')
  assertEqual(stats?.backlog, 0, 'billing backlog after acks')
}

async function nackRedelivers (gem: Gem): Promise<void> {
  await gem.topics.create('jobs', { partitions: 1 })
  for (const p of ['first', 'second', 'third']) await gem.publish('jobs', p)
  const seen: Array<{ offset: number, attempt: number, text: string }> = []
  const sub = gem.subscribe('jobs', async msg => {
    seen.push({ offset: msg.offset, attempt: msg.attempt, text: msg.text() })
    // An explicit nack on one message and a throwing handler (auto nack) on another.
    if (msg.offset === 1 && msg.attempt === 1) await msg.nack()
    if (msg.offset === 2 && msg.attempt === 1) throw new Error('handler failure (expected by the test)')
  }, { group: 'workers', from: 'earliest' })
  try {
    await sub.ready
    await waitUntil(() => committed(gem, 'jobs', 'workers') === 3, `group workers to commit offset 3 (seen ${JSON.stringify(seen)})`)
  } finally {
    sub.close()
  }
  const sorted = [...seen].sort((a, b) => a.offset - b.offset || a.attempt - b.attempt)
  assertSameJson(sorted, [
    { offset: 0, attempt: 1, text: 'first' },
    { offset: 1, attempt: 1, text: 'second' },
    { offset: 1, attempt: 2, text: 'second' },
    { offset: 2, attempt: 1, text: 'third' },
    { offset: 2, attempt: 2, text: 'third' },
  ], 'deliveries by offset and attempt')
}

async function idempotentPublish (gem: Gem): Promise<void> {
  await gem.topics.create('payments', { partitions: 1 })
  await gem.publish('payments', 'before')
  const first = await gem.publish('payments', { amount: 42 }, { id: 'payment-42' })
  assertSameJson(first, { id: 'payment-42', partition: 0, offset: 1, duplicate: false }, 'first publish of payment-42')
  const again = await gem.publish('payments', { amount: 999 }, { id: 'payment-42' })
  assertSameJson(again, { id: 'payment-42', partition: 0, offset: 1, duplicate: true }, 'repeated publish of payment-42')
  const after = await gem.publish('payments', 'after')
  assertEqual(after.offset, 2, 'the next new message takes the next offset')
  assertEqual(gem.topics.get('payments').offsets[0].high, 3, 'high offset (the duplicate stored nothing)')
  const { messages: records, next } = await gem.read('payments', { from: 0, limit: 10 })
  assertEqual(next, 3, 'read: next offset')
  assertSameJson(records.map(r => [r.offset, r.id === 'payment-42']), [[0, false], [1, true], [2, false]], 'stored records')
  assertSameJson(JSON.parse(new TextDecoder().decode(records[1].payload)), { amount: 42 }, 'the first payload won')
}

export async function runSdkScenario (): Promise<CheckResult[]> {
  return [
    await runCheck(`publish ${MESSAGES} strings and JSON values, consume them in order with a group (handler, auto ack)`, () => withGem(publishAndConsumeInOrder)),
    await runCheck('nack and a throwing handler redeliver with attempt 2', () => withGem(nackRedelivers)),
    await runCheck('publishing a repeated id is idempotent', () => withGem(idempotentPublish)),
  ]
}
