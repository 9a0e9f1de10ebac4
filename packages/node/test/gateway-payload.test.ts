// The JSON <-> bytes payload mapping and the publish-request parser, without a server: every JSON surface uses them.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { GemError } from '@gem-mesh/core'
import type { GemRecord } from '@gem-mesh/core'
import { messageView, payloadFromJson } from '../src/gateway/payload.ts'
import { parsePublishRequest } from '../src/gateway/publish-request.ts'

const te = new TextEncoder()
/** Bytes compared by value, whatever Uint8Array subclass (Buffer) carries them. */
const plain = (b: Uint8Array): Uint8Array => Uint8Array.from(b)

function record (payload: Uint8Array, headers: Record<string, string> = {}, extra: Partial<GemRecord> = {}): GemRecord {
  return { id: 'm1', topic: 't', partition: 0, offset: 7, payload, headers, priority: 5, timestamp: Date.UTC(2025, 0, 2, 3, 4, 5, 6), ttl: 0, attempt: 0, ...extra }
}

function roundTrip (body: Record<string, unknown>): ReturnType<typeof messageView> {
  const input = parsePublishRequest(body, 1 << 20, '')
  return messageView(record(input.payload, input.headers ?? {}))
}

describe('payload mapping', () => {
  test('a JSON string is stored as its UTF-8 bytes, with no encoding header', () => {
    const p = payloadFromJson({ payload: 'héllo ✓' }, '')
    assert.deepEqual(plain(p.bytes), te.encode('héllo ✓'))
    assert.equal(p.encoding, undefined)
    const input = parsePublishRequest({ payload: 'x' }, 100, '')
    assert.equal(input.headers, undefined)
  })

  test('other JSON values are stored as JSON text marked gem-encoding: json, and come back as values', () => {
    for (const v of [{ a: [1, 2, { b: null }] }, [1, 'two'], 42, 1.5, true, false, null]) {
      const input = parsePublishRequest({ payload: v }, 1 << 20, '')
      assert.equal(input.headers?.['gem-encoding'], 'json')
      assert.deepEqual(plain(input.payload), te.encode(JSON.stringify(v)))
      const view = roundTrip({ payload: v })
      assert.deepEqual(view.payload, v)
      assert.deepEqual(view.headers, {}, 'the encoding header is hidden')
    }
  })

  test('payload_base64 stores raw bytes and comes back as payload_base64', () => {
    const bytes = new Uint8Array([0, 255, 128, 10, 13])
    const b64 = Buffer.from(bytes).toString('base64')
    const input = parsePublishRequest({ payload_base64: b64, headers: { a: 'b' } }, 100, '')
    assert.deepEqual(input.payload, bytes)
    assert.deepEqual(input.headers, { a: 'b', 'gem-encoding': 'base64' })
    const view = roundTrip({ payload_base64: b64, headers: { a: 'b' } })
    assert.equal(view.payload_base64, b64)
    assert.equal('payload' in view, false)
    assert.deepEqual(view.headers, { a: 'b' })
  })

  test('base64 of valid UTF-8 text still comes back as base64 (the producer chose bytes)', () => {
    const view = roundTrip({ payload_base64: Buffer.from('plain').toString('base64') })
    assert.equal(view.payload_base64, Buffer.from('plain').toString('base64'))
  })

  test('unpadded base64 is accepted; malformed base64 is refused', () => {
    assert.deepEqual(payloadFromJson({ payload_base64: 'AQI' }, '').bytes, new Uint8Array([1, 2]))
    for (const bad of ['A', 'AQ=I', '!!!!', 'AQI=A===', 'AQ==='] as const) {
      assert.throws(() => payloadFromJson({ payload_base64: bad }, ''), (e: unknown) => GemError.is(e, 'BAD_REQUEST'), bad)
    }
  })

  test('bytes that are not UTF-8 and carry no encoding come out as payload_base64', () => {
    const view = messageView(record(new Uint8Array([0xff, 0xfe, 0x41])))
    assert.equal(view.payload_base64, Buffer.from([0xff, 0xfe, 0x41]).toString('base64'))
    assert.equal('payload' in view, false)
  })

  test('bytes marked json that are not JSON come out as base64 rather than failing', () => {
    const view = messageView(record(te.encode('{nope'), { 'gem-encoding': 'json' }))
    assert.equal(view.payload_base64, Buffer.from('{nope').toString('base64'))
  })

  test('a leading byte-order mark is kept on the round trip', () => {
    assert.equal(roundTrip({ payload: '\uFEFFbom' }).payload, '\uFEFFbom')
  })

  test('the message JSON has the documented keys in order, ISO ts, and attempt/tag only when given', () => {
    const r = record(te.encode('hi'), { h: 'v' }, { key: 'k' })
    assert.deepEqual(Object.keys(messageView(r)), ['id', 'topic', 'partition', 'offset', 'payload', 'key', 'headers', 'priority', 'ts'])
    assert.equal(messageView(r).ts, '2025-01-02T03:04:05.006Z')
    const d = messageView(r, { attempt: 2, tag: '0.7.2' })
    assert.equal(d.attempt, 2)
    assert.equal(d.tag, '0.7.2')
    assert.equal(messageView({ ...r, attempt: 3 }).attempt, 3, 'a dead letter shows its attempts')
  })

  test('unknown gem-encoding values are left visible: this mapping did not produce them', () => {
    const view = messageView(record(te.encode('x'), { 'gem-encoding': 'gzip' }))
    assert.deepEqual(view.headers, { 'gem-encoding': 'gzip' })
    assert.equal(view.payload, 'x')
  })
})

describe('publish request parsing', () => {
  const bad = (body: unknown, field: RegExp, path = ''): void => {
    assert.throws(() => parsePublishRequest(body, 1024, path), (e: unknown) => GemError.is(e, 'BAD_REQUEST') && field.test((e as Error).message), JSON.stringify(body))
  }

  test('names the field that is wrong', () => {
    bad(null, /body/)
    bad([1], /body/)
    bad({}, /payload is required/)
    bad({ payload: 'a', payload_base64: 'AA==' }, /exclude/)
    bad({ payload_base64: 5 }, /payload_base64/)
    bad({ payload: 'a', id: 5 }, /^id /)
    bad({ payload: 'a', id: '' }, /^id /)
    bad({ payload: 'a', key: {} }, /^key /)
    bad({ payload: 'a', headers: [] }, /^headers /)
    bad({ payload: 'a', headers: { x: 1 } }, /headers\.x/)
    bad({ payload: 'a', headers: { 'Gem-Encoding': 'json' } }, /reserved/)
    bad({ payload: 'a', priority: 'high' }, /^priority /)
    bad({ payload: 'a', priority: 1.5 }, /^priority /)
    bad({ id: 'x' }, /message\.payload/, 'message')
  })

  test('null optional fields count as absent', () => {
    const input = parsePublishRequest({ payload: 'a', id: null, key: null, headers: null, priority: null }, 1024, '')
    assert.deepEqual({ ...input, payload: plain(input.payload) }, { payload: te.encode('a') })
  })

  test('a payload over the limit is PAYLOAD_TOO_LARGE', () => {
    assert.throws(() => parsePublishRequest({ payload: 'x'.repeat(1025) }, 1024, ''), (e: unknown) => GemError.is(e, 'PAYLOAD_TOO_LARGE'))
    assert.doesNotThrow(() => parsePublishRequest({ payload: 'x'.repeat(1024) }, 1024, ''))
  })
})
