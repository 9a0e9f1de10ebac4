// The replication frame: round trips of every message type, and malformed frames refused with BAD_REQUEST.
// Pure bytes in and out; the same checks run on Node, Deno and Bun.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeReplicationFrame, encodeReplicationFrame } from '../../src/replication/replica-codec.ts'
import type { PartitionEnvelope } from '../../src/replication/replica-codec.ts'
import { encodeHeadBody } from '../../src/head-body.ts'

const te = new TextEncoder()

test('every replication message survives the frame', () => {
  const envelopes: PartitionEnvelope[] = [
    { topic: 't', partition: 0, message: { v: 1, type: 'vote', epoch: 3, candidate: 'a', lastEpoch: 2, end: 9, pre: true } },
    { topic: 't', partition: 1, message: { v: 1, type: 'vote-reply', epoch: 3, granted: false, pre: true, voterEpoch: 4 } },
    { topic: 't', partition: 2, message: { v: 1, type: 'append', epoch: 3, leader: 'a', prev: 4, prevEpoch: 2, entries: [{ epoch: 3, value: new Uint8Array([1, 2, 3]) }, { epoch: 3, value: new Uint8Array(0) }], commit: 4, stable: true, compactable: 2, groups: { g: 1 } } },
    { topic: 't', partition: 3, message: { v: 1, type: 'append-reply', epoch: 3, from: 'b', ok: true, end: 6 } },
    { topic: 't', partition: 4, message: { v: 1, type: 'snapshot', epoch: 3, leader: 'a', base: 100, baseEpoch: 2, commit: 120 } },
  ]
  for (const env of envelopes) assert.deepEqual(decodeReplicationFrame(encodeReplicationFrame(env)), env)
})

test('malformed frames are refused with BAD_REQUEST and say why', () => {
  const good = encodeReplicationFrame({ topic: 't', partition: 0, message: { v: 1, type: 'append', epoch: 1, leader: 'a', prev: 0, prevEpoch: 0, entries: [{ epoch: 1, value: new Uint8Array([7, 7]) }], commit: 0, stable: true, groups: {} } })
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array(0), /shorter than its header/],
    [new Uint8Array([0, 0, 0, 50, 1]), /past the end/],
    [encodeHeadBody(null).map((b, i) => (i === 4 ? 0x7b : b)), /not JSON|topic/],
    [encodeHeadBody({ t: 't', p: -1, m: {} }), /topic and a partition/],
    [encodeHeadBody({ t: 't', p: 0, m: { v: 9, type: 'vote' } }), /version/],
    [encodeHeadBody({ t: 't', p: 0, m: { v: 1, type: 'vote-reply', epoch: 1, granted: true } }, te.encode('junk')), /bytes after the envelope/],
    [good.subarray(0, good.byteLength - 1), /entry size past the end/],
    [new Uint8Array([...good, 9]), /bytes after the last entry/],
  ]
  for (const [frame, why] of cases) {
    assert.throws(() => decodeReplicationFrame(frame), (e: Error & { code?: string }) => e.code === 'BAD_REQUEST' && why.test(e.message), why.source)
  }
})
