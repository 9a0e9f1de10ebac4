// The `/gem/1/*` wire: round trips under any chunking, and loud, typed failure on every kind of bad input.
// Pure computation: no I/O, nothing to clean up. Runs under node --test, deno test and bun test.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { GemError } from '../../src/errors.ts'
import {
  FRAME, FrameDecoder, MAX_FRAME_BYTES, WIRE_VERSION, decodeErrorPayload, encodeErrorPayload, encodeFrame,
  encodeFrames, encodedFrameSize,
} from '../../src/mesh/frames.ts'
import type { Frame, FrameType } from '../../src/mesh/frames.ts'

const RUNS = { numRuns: 300 }
const TYPES: FrameType[] = [FRAME.DATA, FRAME.REQUEST, FRAME.RESPONSE, FRAME.ERROR, FRAME.GOSSIP]
const WITH_ID = new Set<number>([FRAME.REQUEST, FRAME.RESPONSE, FRAME.ERROR])

const frameArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(...TYPES),
  id: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 0xFFFFFFFF })),
  payload: fc.oneof(
    { weight: 5, arbitrary: fc.uint8Array({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 40_000 }).map(n => new Uint8Array(n).fill(n & 0xFF)) },
  ),
}).map(f => ({ ...f, id: WITH_ID.has(f.type) ? f.id : 0 }))

/** Cuts a buffer at the given (sorted, deduplicated) points. */
function cut (buf: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map(p => p % (buf.length + 1)))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let prev = 0
  for (const p of at) { out.push(buf.subarray(prev, p)); prev = p }
  out.push(buf.subarray(prev))
  return out
}

function decodeAll (chunks: Uint8Array[], decoder = new FrameDecoder()): Frame[] {
  const out: Frame[] = []
  for (const c of chunks) decoder.push(c, f => { out.push(f) })
  decoder.end()
  return out
}

function same (a: readonly Frame[], b: readonly Frame[]): void {
  assert.equal(a.length, b.length)
  for (let i = 0; i < a.length; i++) {
    assert.equal(a[i].type, b[i].type)
    assert.equal(a[i].id, b[i].id)
    assert.deepEqual(a[i].payload, b[i].payload)
  }
}

function throwsCode (fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => GemError.is(err) && err.code === code)
}

describe('mesh frames', () => {
  test('a batch round-trips however the stream cuts it', () => {
    fc.assert(fc.property(fc.array(frameArb, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, points) => {
      const buf = encodeFrames(frames)
      assert.equal(buf.length, frames.reduce((n, f) => n + encodedFrameSize(f.type, f.id, f.payload.length), 0))
      same(decodeAll(cut(buf, points)), frames)
    }), RUNS)
  })

  test('byte-at-a-time delivery and Uint8ArrayList-like chunks decode the same frames', () => {
    fc.assert(fc.property(fc.array(frameArb.filter(f => f.payload.length < 300), { maxLength: 8 }), frames => {
      const buf = encodeFrames(frames)
      same(decodeAll(Array.from(buf, b => Uint8Array.of(b))), frames)
      const list = { byteLength: buf.length, * [Symbol.iterator] () { yield buf.subarray(0, 3); yield buf.subarray(3) } }
      const out: Frame[] = []
      new FrameDecoder().push(list, f => { out.push(f) })
      same(out, frames)
    }), { numRuns: 100 })
  })

  test('every frame starts with the version byte and the type', () => {
    const buf = encodeFrame(FRAME.REQUEST, 300, Uint8Array.of(9))
    assert.equal(buf[0], WIRE_VERSION)
    assert.equal(buf[1], FRAME.REQUEST)
  })

  test('another wire version fails loudly with VERSION_MISMATCH, on the first byte', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }).filter(v => v !== WIRE_VERSION), frameArb, (version, frame) => {
      const buf = encodeFrame(frame.type, frame.id, frame.payload)
      buf[0] = version
      throwsCode(() => new FrameDecoder().push(buf.subarray(0, 1), () => {}), 'VERSION_MISMATCH')
      const err = (() => { try { new FrameDecoder().push(buf, () => {}) } catch (e) { return e } })()
      assert.ok(GemError.is(err, 'VERSION_MISMATCH'))
      assert.equal(err.details?.remoteVersion, version)
    }), { numRuns: 100 })
  })

  test('a frame over the limit fails with PAYLOAD_TOO_LARGE as soon as its length is read', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 })
    const big = encodeFrame(FRAME.DATA, 0, new Uint8Array(1025))
    throwsCode(() => decoder.push(big.subarray(0, 5), () => {}), 'PAYLOAD_TOO_LARGE')
    // a length claiming more than the default 8 MiB, with no body behind it
    const claim = Uint8Array.of(WIRE_VERSION, FRAME.DATA, 0x80, 0x80, 0x80, 0x05)
    throwsCode(() => new FrameDecoder().push(claim, () => {}), 'PAYLOAD_TOO_LARGE')
    assert.ok(MAX_FRAME_BYTES === 8 * 1024 * 1024)
  })

  test('malformed headers fail with BAD_REQUEST', () => {
    throwsCode(() => new FrameDecoder().push(Uint8Array.of(WIRE_VERSION, 0, 0), () => {}), 'BAD_REQUEST') // type 0
    throwsCode(() => new FrameDecoder().push(Uint8Array.of(WIRE_VERSION, 99, 0), () => {}), 'BAD_REQUEST')
    throwsCode(() => new FrameDecoder().push(Uint8Array.of(WIRE_VERSION, FRAME.DATA, 0x80, 0x80, 0x80, 0x80, 0x01), () => {}), 'BAD_REQUEST')
    throwsCode(() => new FrameDecoder().push(Uint8Array.of(WIRE_VERSION, FRAME.DATA, 0x80, 0x00), () => {}), 'BAD_REQUEST')
    // a REQUEST whose body is too short to hold its id
    throwsCode(() => new FrameDecoder().push(Uint8Array.of(WIRE_VERSION, FRAME.REQUEST, 0), () => {}), 'BAD_REQUEST')
  })

  test('a stream cut inside a frame is reported at end(), never emitted as a short frame', () => {
    fc.assert(fc.property(frameArb, fc.nat(), (frame, n) => {
      const buf = encodeFrame(frame.type, frame.id, frame.payload)
      const keep = n % buf.length // strictly shorter than the frame
      const decoder = new FrameDecoder()
      const out: Frame[] = []
      decoder.push(buf.subarray(0, keep), f => { out.push(f) })
      assert.equal(out.length, 0)
      if (keep > 0) throwsCode(() => decoder.end(), 'BAD_REQUEST')
      else decoder.end()
    }), RUNS)
  })

  test('garbage never crashes the decoder: it yields well-formed frames or a typed GemError, then stays dead', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 400 }), fc.array(fc.nat(), { maxLength: 6 }), (garbage, points) => {
      const decoder = new FrameDecoder({ maxFrameBytes: 256 })
      let failure: unknown
      try {
        for (const c of cut(garbage, points)) {
          decoder.push(c, f => {
            assert.ok(TYPES.includes(f.type))
            assert.ok(f.payload.length <= 256)
          })
        }
      } catch (err) { failure = err }
      if (failure === undefined) return
      assert.ok(GemError.is(failure), `not a GemError: ${String(failure)}`)
      assert.ok(['VERSION_MISMATCH', 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE'].includes(failure.code))
      throwsCode(() => decoder.push(Uint8Array.of(WIRE_VERSION), () => {}), failure.code)
    }), RUNS)
  })

  test('valid frames followed by garbage: the valid ones arrive, then the error', () => {
    fc.assert(fc.property(fc.array(frameArb, { minLength: 1, maxLength: 5 }), fc.integer({ min: 2, max: 255 }), (frames, bad) => {
      const good = encodeFrames(frames)
      const buf = new Uint8Array(good.length + 3)
      buf.set(good)
      buf.set([bad, FRAME.DATA, 0], good.length)
      const out: Frame[] = []
      throwsCode(() => new FrameDecoder().push(buf, f => { out.push(f) }), 'VERSION_MISMATCH')
      same(out, frames)
    }), { numRuns: 100 })
  })

  test('ERROR payloads carry a code and a message', () => {
    fc.assert(fc.property(fc.constantFrom('TIMEOUT', 'NOT_LEADER', 'VERSION_MISMATCH', 'SOMETHING_NEWER'), fc.string(), (code, message) => {
      const err = decodeErrorPayload(encodeErrorPayload(code as 'TIMEOUT', message))
      assert.equal(err.code, code)
      assert.equal(err.message, message)
    }), { numRuns: 100 })
    assert.equal(decodeErrorPayload(Uint8Array.of(10, 65)).code, 'BAD_REQUEST')
  })

  test('ids outside u32 are refused at encode time', () => {
    throwsCode(() => encodeFrame(FRAME.REQUEST, 2 ** 32, new Uint8Array(0)), 'BAD_REQUEST')
    throwsCode(() => encodeFrame(FRAME.RESPONSE, -1, new Uint8Array(0)), 'BAD_REQUEST')
  })
})
