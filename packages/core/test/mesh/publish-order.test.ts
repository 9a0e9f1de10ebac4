// PublishOrder: an entry node's publishes to one partition keep their arrival order across retries (a leader change
// fails some in flight; later publishes must not overtake them). Virtual time, no transport.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../src/clock.ts'
import { PublishOrder } from '../../src/mesh/publish-order.ts'
import { settle } from '../wait-for.ts'

test('retried publishes go again in their order, and later publishes wait behind them until they succeed', async () => {
  const clock = new ManualClock()
  const order = new PublishOrder(clock, 50)
  const sent: number[] = []
  const turns = Array.from({ length: 5 }, () => order.open('t/0'))
  // Normal operation: every publish may go at once (pipelined), nothing is held.
  for (const t of turns) { assert.equal(order.ready(t), undefined); sent.push(t.seq) }
  order.done(turns[0])
  // The leader changes: 1 and 2 fail; 3 and 4 are still in flight.
  const r2 = order.retry(turns[2]).then(() => sent.push(2))
  const r1 = order.retry(turns[1]).then(() => sent.push(1))
  const late = order.open('t/0')
  const lateReady = order.ready(late)!.then(() => sent.push(late.seq))
  assert.equal(order.blocked, 1)
  clock.advance(50)
  await settle()
  // 1 and 2 go again in their order; 5 waits (3 and 4 are unresolved, and 1 and 2 are retries not yet through).
  assert.deepEqual(sent.slice(5), [1, 2])
  await Promise.all([r1, r2])
  // 3 fails too while 1 and 2 are out again: it waits for them (they could fail and retry behind it).
  const r3 = order.retry(turns[3]).then(() => sent.push(3))
  order.done(turns[4])
  clock.advance(50)
  await settle()
  assert.deepEqual(sent.slice(5), [1, 2])
  order.done(turns[1])
  order.done(turns[2])
  clock.advance(50)
  await settle()
  await r3
  // 3 goes alone: 5 was never tried and waits until the retry ahead of it has succeeded.
  assert.deepEqual(sent.slice(5), [1, 2, 3])
  order.done(turns[3])
  clock.advance(50)
  await settle()
  await lateReady
  assert.deepEqual(sent.slice(5), [1, 2, 3, 5])
  order.done(late)
  assert.equal(order.blocked, 0)
  // Other partitions are never held by this one's retries.
  const other = order.open('t/1')
  assert.equal(order.ready(other), undefined)
  order.done(other)
})

test('a held publish waits for an earlier attempt still outstanding, then goes right after it is retried', async () => {
  const clock = new ManualClock()
  const order = new PublishOrder(clock, 50)
  const [a, b] = [order.open('t/0'), order.open('t/0')]
  order.ready(a)
  order.ready(b)
  const sent: string[] = []
  const rb = order.retry(b).then(() => sent.push('b'))
  clock.advance(50)
  await settle()
  assert.equal(sent.length, 0, 'b must not overtake a, which has not answered yet')
  const ra = order.retry(a).then(() => sent.push('a'))
  clock.advance(50)
  await settle()
  await Promise.all([ra, rb])
  assert.deepEqual(sent, ['a', 'b'])
})
