// The record codec: round trips of arbitrary records, and rejection of every kind of damaged input.
// Pure computation: no I/O, nothing to clean up. Property runs are kept moderate so the file stays fast.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import { decodeChunkRecords, decodeRecord, decodeRecords, decodeRecordsInPlace, encodeRecord, encodeRecordFrames, encodeRecords, frameSize } from '../src/codec.ts'
import { crc32c } from '../src/crc32c.ts'
import { GemError } from '../src/errors.ts'
import type { GemRecord } from '../src/message.ts'

const RUNS = { numRuns: 200 }

// ------------------------------------------------------------------------------------ arbitraries

/** Short strings of every flavour: ASCII, any code point (astral included), grapheme clusters. */
const text = fc.oneof(
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
)

/** Mostly small payloads, sometimes up to 64 KiB (filled from a seed: generating 64 Ki bytes one by one is slow). */
const payload = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 64 * 1024 }), fc.integer()).map(([n, seed]) => {
      const b = new Uint8Array(n)
      let x = seed | 1
      for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x }
      return b
    }),
  },
)

const headers = fc.oneof(
  { weight: 3, arbitrary: fc.dictionary(text, text, { maxKeys: 6, noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 12 }), text, { minKeys: 20, maxKeys: 200, noNullPrototype: true }) },
)

/** Any f64 the fields may carry, including NaN, -0 and the infinities, plus realistic integers. */
const f64 = fc.oneof(fc.maxSafeNat(), fc.double())

const record: fc.Arbitrary<GemRecord> = fc.record({
  id: text,
  topic: text,
  key: text,
  partition: fc.integer({ min: 0, max: 0xFFFFFFFF }),
  offset: f64,
  payload,
  headers,
  priority: fc.integer({ min: 1, max: 10 }),
  timestamp: f64,
  producerId: text,
  sequence: f64,
  ttl: f64,
  attempt: fc.integer({ min: 0, max: 0xFFFFFFFF }),
}, {
  requiredKeys: ['id', 'topic', 'partition', 'offset', 'payload', 'headers', 'priority', 'timestamp', 'ttl', 'attempt'],
  noNullPrototype: true,
})

const records = fc.array(record, { minLength: 1, maxLength: 8 })

// ---------------------------------------------------------------------------------------- helpers

function sample (i: number, extra: Partial<GemRecord> = {}): GemRecord {
  return {
    id: `id-${i}`, topic: 'orders', partition: 2, offset: i, payload: new TextEncoder().encode(`payload ${i}`),
    headers: { 'content-type': 'text/plain' }, priority: 5, timestamp: 1_700_000_000_000 + i, ttl: 0, attempt: 0, ...extra,
  }
}

/** Runs `f` and returns the GemError it threw, failing on success or on anything that is not a GemError. */
function gemErrorOf (f: () => unknown): GemError {
  try {
    f()
  } catch (err) {
    if (err instanceof GemError) return err
    throw new Error(`expected a GemError, got ${String(err)}`, { cause: err })
  }
  assert.fail('expected a GemError, nothing was thrown')
}

function assertCorrupt (f: () => unknown): GemError {
  const err = gemErrorOf(f)
  assert.equal(err.code, 'CORRUPT_RECORD', err.message)
  return err
}

/** Byte offsets where each frame of a chunk starts, plus the chunk length. */
function frameBounds (chunk: Uint8Array): number[] {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  const out = [0]
  for (let p = 0; p < chunk.length;) { p += 4 + view.getUint32(p, true); out.push(p) }
  return out
}

// ------------------------------------------------------------------------------------------ tests

describe('codec round trip', () => {
  test('one record survives encode and decode unchanged', () => {
    fc.assert(fc.property(record, r => {
      const frame = encodeRecord(r)
      assert.equal(frame.byteLength, frameSize(r))
      assert.deepStrictEqual(decodeRecord(frame), r)
      assert.deepStrictEqual(decodeRecords(frame), [r])
    }), RUNS)
  })

  test('many records in one chunk decode in order', () => {
    fc.assert(fc.property(records, rs => {
      const chunk = encodeRecords(rs)
      assert.equal(chunk.byteLength, rs.reduce((n, r) => n + frameSize(r), 0))
      assert.deepStrictEqual(decodeRecords(chunk), rs)
    }), RUNS)
  })

  test('frames encoded apart (views into one buffer) decode in place, one reader over separate buffers', () => {
    // Separate copies: the reader's string memo must compare each frame's bytes with the buffer it remembered from.
    fc.assert(fc.property(records, rs => {
      const frames = encodeRecordFrames(rs)
      assert.equal(frames.length, rs.length)
      frames.forEach((f, i) => assert.equal(f.byteLength, frameSize(rs[i])))
      assert.deepStrictEqual(decodeRecordsInPlace(frames.map(f => f.slice())), rs)
      assert.deepStrictEqual(decodeRecordsInPlace(frames), rs)
    }), RUNS)
  })

  test('decoding in place rejects a damaged frame among good ones', () => {
    const rs = [0, 1, 2].map(i => sample(i))
    const frames = encodeRecordFrames(rs).map(f => f.slice())
    frames[1][frames[1].byteLength - 1] ^= 1
    assert.throws(() => decodeRecordsInPlace(frames), (e: unknown) => GemError.is(e) && e.code === 'CORRUPT_RECORD')
  })

  test('a leading U+FEFF (byte order mark) in any string survives: decoders must not strip it (found by the property test)', () => {
    const r = sample(3, { id: '\uFEFFid', key: '\uFEFF', headers: { '': '\uFEFF', '\uFEFFk': '\uFEFF\uFEFFv' } })
    assert.deepStrictEqual(decodeRecord(encodeRecord(r)), r)
    assert.deepStrictEqual(decodeRecords(encodeRecords([r, r])), [r, r])
  })

  test('optional fields are absent, not undefined, when they were not given', () => {
    const [r] = decodeRecords(encodeRecords([sample(1)]))
    assert.ok(!('key' in r) && !('producerId' in r) && !('sequence' in r))
    const full = sample(2, { key: '', producerId: 'p', sequence: 0 })
    assert.deepStrictEqual(decodeRecord(encodeRecord(full)), full)
  })

  test('edge values: empty strings and payload, 65535-byte strings, "__proto__" header, -0 and NaN', () => {
    const long = 'é'.repeat(32767) + 'x' // 65535 UTF-8 bytes: the largest a u16 length allows
    const h: Record<string, string> = { '': '', 0: 'zero' }
    Object.defineProperty(h, '__proto__', { value: 'not a prototype', enumerable: true, writable: true, configurable: true })
    const r = sample(0, { id: '', topic: long, key: long, headers: h, payload: new Uint8Array(0), offset: -0, ttl: NaN, sequence: -0 })
    const back = decodeRecord(encodeRecord(r))
    assert.deepStrictEqual(back, r)
    assert.equal(Object.getPrototypeOf(back.headers), Object.prototype)
    assert.equal(back.headers.__proto__, 'not a prototype')
  })

  test('a chunk inside a larger buffer, or a Node Buffer, decodes the same', () => {
    const rs = [sample(1), sample(2)]
    const chunk = encodeRecords(rs)
    const big = new Uint8Array(chunk.length + 13)
    big.set(chunk, 7)
    assert.deepStrictEqual(decodeRecords(big.subarray(7, 7 + chunk.length)), rs)
    const fromBuffer = decodeRecords(Buffer.from(chunk))
    assert.deepStrictEqual(fromBuffer, rs)
    assert.equal(fromBuffer[0].payload.constructor, Uint8Array)
  })

  test('decoded payloads do not change when the source chunk does', () => {
    const chunk = encodeRecords([sample(1), sample(2)])
    const [a, b] = decodeRecords(chunk)
    chunk.fill(0)
    assert.equal(new TextDecoder().decode(a.payload), 'payload 1')
    assert.equal(new TextDecoder().decode(b.payload), 'payload 2')
  })

  test('an empty chunk holds no records', () => {
    assert.deepStrictEqual(encodeRecords([]), new Uint8Array(0))
    assert.deepStrictEqual(decodeRecords(new Uint8Array(0)), [])
  })

  test('the frame starts with its length and the CRC32C of everything after the CRC field', () => {
    const frame = encodeRecord(sample(1))
    const view = new DataView(frame.buffer)
    assert.equal(view.getUint32(0, true), frame.length - 4)
    assert.equal(view.getUint32(4, true), crc32c(frame.subarray(8)))
    assert.equal(frame[8], 1) // version
  })
})

describe('codec refuses records it cannot store faithfully', () => {
  const bad: Array<[string, Partial<GemRecord>]> = [
    ['a 65536-byte id', { id: 'x'.repeat(65536) }],
    ['a 65536-byte topic', { topic: 'é'.repeat(32768) }],
    ['a 65536-byte header name', { headers: { ['k'.repeat(65536)]: 'v' } }],
    ['a lone surrogate in the key', { key: 'a\uD800b' }],
    ['a lone low surrogate in a header value', { headers: { h: '\uDC00' } }],
    ['priority 0', { priority: 0 }],
    ['priority 11', { priority: 11 }],
    ['priority 2.5', { priority: 2.5 }],
    ['a negative partition', { partition: -1 }],
    ['a partition beyond u32', { partition: 2 ** 32 }],
    ['a fractional attempt', { attempt: 1.5 }],
  ]
  for (const [what, extra] of bad) {
    test(`BAD_REQUEST for ${what}`, () => {
      const err = gemErrorOf(() => encodeRecords([sample(1), sample(2, extra)]))
      assert.equal(err.code, 'BAD_REQUEST', err.message)
    })
  }

  test('more than 65535 headers', () => {
    const h: Record<string, string> = {}
    for (let i = 0; i < 65536; i++) h[`h${i}`] = ''
    assert.equal(gemErrorOf(() => encodeRecord(sample(1, { headers: h }))).code, 'BAD_REQUEST')
  })
})

describe('codec rejects damaged input', () => {
  test('any single flipped bit is detected (property)', () => {
    fc.assert(fc.property(records, fc.nat(), (rs, pick) => {
      const chunk = encodeRecords(rs)
      const bit = pick % (chunk.length * 8)
      chunk[bit >> 3] ^= 1 << (bit & 7)
      assertCorrupt(() => decodeRecords(chunk))
    }), RUNS)
  })

  test('every single flipped bit of a small chunk is detected (exhaustive)', () => {
    const chunk = encodeRecords([sample(1, { key: 'k', producerId: 'p', sequence: 9 }), sample(2)])
    for (let bit = 0; bit < chunk.length * 8; bit++) {
      const damaged = chunk.slice()
      damaged[bit >> 3] ^= 1 << (bit & 7)
      assertCorrupt(() => decodeRecords(damaged))
    }
  })

  test('the error names the byte position of the damaged frame', () => {
    const chunk = encodeRecords([sample(1), sample(2), sample(3)])
    const bounds = frameBounds(chunk)
    chunk[bounds[2] + 30] ^= 0x10 // inside the third frame's body
    const err = assertCorrupt(() => decodeRecords(chunk))
    assert.match(err.message, new RegExp(`at byte ${bounds[2]}\\b`))
    assert.equal(err.details?.position, bounds[2])
    assert.match(err.message, /CRC32C mismatch/)
  })

  test('any truncation of a single frame is rejected', () => {
    fc.assert(fc.property(record, fc.nat(), (r, pick) => {
      const frame = encodeRecord(r)
      const cut = 1 + (pick % (frame.length - 1))
      assertCorrupt(() => decodeRecords(frame.subarray(0, cut)))
      assertCorrupt(() => decodeRecord(frame.subarray(0, cut)))
    }), RUNS)
  })

  test('a truncated chunk is rejected unless cut exactly between frames, where it yields a prefix', () => {
    fc.assert(fc.property(records, fc.nat(), (rs, pick) => {
      const chunk = encodeRecords(rs)
      const bounds = frameBounds(chunk)
      const cut = pick % chunk.length
      const at = bounds.indexOf(cut)
      if (at >= 0) {
        assert.deepStrictEqual(decodeRecords(chunk.subarray(0, cut)), rs.slice(0, at))
      } else {
        assertCorrupt(() => decodeRecords(chunk.subarray(0, cut)))
      }
    }), RUNS)
  })

  test('decodeChunkRecords catches a chunk cut between frames, and mislabelled offsets', () => {
    const rs = [sample(10), sample(11), sample(12)]
    const chunk = encodeRecords(rs)
    assert.deepStrictEqual(decodeChunkRecords(chunk, 10, 12), rs)
    const bounds = frameBounds(chunk)
    assertCorrupt(() => decodeChunkRecords(chunk.subarray(0, bounds[2]), 10, 12))
    assertCorrupt(() => decodeChunkRecords(chunk, 11, 13))
    assertCorrupt(() => decodeChunkRecords(encodeRecords([sample(10), sample(12), sample(11)]), 10, 12))
  })

  test('trailing bytes after a single frame are rejected', () => {
    const frame = encodeRecord(sample(1))
    const longer = new Uint8Array(frame.length + 1)
    longer.set(frame)
    assertCorrupt(() => decodeRecord(longer))
    assertCorrupt(() => decodeRecords(longer))
  })

  test('random garbage only ever fails with CORRUPT_RECORD', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), bytes => {
      try {
        decodeRecords(bytes)
      } catch (err) {
        assert.ok(GemError.is(err, 'CORRUPT_RECORD'), `not a CORRUPT_RECORD GemError: ${String(err)}`)
      }
    }), RUNS)
  })

  test('garbage behind a valid length and CRC fails cleanly in the parser', () => {
    // The CRC is correct here, so these bytes reach every bounds check of the field parser.
    const framed = (body: Uint8Array): Uint8Array => {
      const f = new Uint8Array(8 + body.length)
      const v = new DataView(f.buffer)
      v.setUint32(0, 4 + body.length, true)
      v.setUint32(4, crc32c(body), true)
      f.set(body, 8)
      return f
    }
    // Random bodies, plus valid frames whose bodies had bytes overwritten (and their CRC redone).
    const damagedBody = fc.tuple(record, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([r, edits]) => {
        const body = encodeRecord(r).slice(8)
        for (const [at, value] of edits) body[at % body.length] = value
        return body
      })
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ minLength: 54, maxLength: 400 }), damagedBody), body => {
      try {
        for (const r of decodeRecords(framed(body))) {
          assert.ok(r.priority >= 1 && r.priority <= 10)
          assert.ok(r.payload instanceof Uint8Array)
        }
      } catch (err) {
        assert.ok(GemError.is(err, 'CORRUPT_RECORD'), `not a CORRUPT_RECORD GemError: ${String(err)}`)
      }
    }), { numRuns: 400 })
  })

  test('each header check is enforced even under a valid CRC', () => {
    const reframe = (frame: Uint8Array, at: number, value: number): Uint8Array => {
      const f = frame.slice()
      f[at] = value
      new DataView(f.buffer).setUint32(4, crc32c(f.subarray(8)), true)
      return f
    }
    const frame = encodeRecord(sample(1))
    const cases: Array<[number, number, RegExp]> = [
      [8, 2, /unknown codec version 2/],
      [9, 0x80, /unknown flag bits/],
      [10, 0, /priority 0/],
      [10, 11, /priority 11/],
      [11, 1, /reserved byte/],
      [44, 1, /flagged absent/],
    ]
    for (const [at, value, message] of cases) {
      assert.match(assertCorrupt(() => decodeRecords(reframe(frame, at, value))).message, message)
    }
    // A length that grew by one byte, CRC redone: only the strict parse can tell (the payload ends early).
    const grown = new Uint8Array(frame.length + 1)
    grown.set(frame)
    const gv = new DataView(grown.buffer)
    gv.setUint32(0, frame.length - 3, true)
    gv.setUint32(4, crc32c(grown.subarray(8)), true)
    assert.match(assertCorrupt(() => decodeRecords(grown)).message, /does not end at the frame end/)
    // An id whose bytes are not UTF-8.
    const withId = encodeRecord(sample(1, { id: 'ab' }))
    assert.match(assertCorrupt(() => decodeRecords(reframe(withId, 54, 0xFF))).message, /id at byte 54 is not valid UTF-8/)
  })
})
