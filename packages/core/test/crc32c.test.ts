// CRC32C: published check vectors, agreement with a bit-at-a-time reference, and incremental seeding.
// Pure computation: no I/O, nothing to clean up.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { crc32c, crc32cRange } from '../src/crc32c.ts'

/** The textbook one-bit-at-a-time definition, independent of the table construction under test. */
function reference (bytes: Uint8Array): number {
  let c = 0xFFFFFFFF
  for (const b of bytes) {
    c ^= b
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0x82F63B78 : c >>> 1
  }
  return (c ^ 0xFFFFFFFF) >>> 0
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('crc32c', () => {
  test('check value and the RFC 3720 (iSCSI) vectors', () => {
    assert.equal(crc32c(ascii('123456789')), 0xE3069283)
    assert.equal(crc32c(new Uint8Array(32)), 0x8A9136AA)
    assert.equal(crc32c(new Uint8Array(32).fill(0xFF)), 0x62A8AB43)
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46DD794E)
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113FDB5C)
    assert.equal(crc32c(new Uint8Array(0)), 0)
  })

  test('matches the bit-at-a-time reference at every length and alignment', () => {
    // Lengths 0..100 cover every remainder of the 8-byte main loop; offsets cover unaligned views.
    const data = Uint8Array.from({ length: 128 }, (_, i) => (i * 167 + 13) & 255)
    for (let off = 0; off < 8; off++) {
      for (let len = 0; len <= 100; len++) {
        const v = data.subarray(off, off + len)
        assert.equal(crc32c(v), reference(v), `offset ${off}, length ${len}`)
      }
    }
    // Long inputs take the word loop: every alignment of the view and every remainder of its 16-byte step.
    const long = Uint8Array.from({ length: 400 }, (_, i) => (i * 131 + 7) & 255)
    for (let off = 0; off < 8; off++) {
      for (let len = 120; len <= 160; len++) {
        const v = long.subarray(off, off + len)
        assert.equal(crc32c(v), reference(v), `long: offset ${off}, length ${len}`)
        assert.equal(crc32cRange(long, off, off + len), reference(v), `long range: offset ${off}, length ${len}`)
      }
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), bytes => {
      assert.equal(crc32c(bytes), reference(bytes))
    }), { numRuns: 200 })
  })

  test('always returns an unsigned 32-bit integer', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 0xFFFFFFFF }), (bytes, seed) => {
      const c = crc32c(bytes, seed)
      assert.ok(Number.isInteger(c) && c >= 0 && c <= 0xFFFFFFFF, String(c))
    }), { numRuns: 200 })
  })

  test('seeding with the CRC of a prefix continues the computation', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), fc.nat(), fc.nat(), (bytes, a, b) => {
      const lo = Math.min(a % (bytes.length + 1), b % (bytes.length + 1))
      const hi = Math.max(a % (bytes.length + 1), b % (bytes.length + 1))
      const whole = crc32c(bytes)
      const parts = crc32c(bytes.subarray(hi), crc32c(bytes.subarray(lo, hi), crc32c(bytes.subarray(0, lo))))
      assert.equal(parts, whole)
      assert.equal(crc32cRange(bytes, hi, bytes.length, crc32cRange(bytes, 0, hi)), whole)
      assert.equal(crc32cRange(bytes, lo, hi), crc32c(bytes.subarray(lo, hi)))
    }), { numRuns: 200 })
    assert.equal(crc32c(ascii('56789'), crc32c(ascii('1234'))), 0xE3069283)
  })
})
