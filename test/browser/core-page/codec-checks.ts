// The record codec and CRC32C in the page: round trip, every single flipped bit rejected, the CRC check value.
// Pure computations on in-memory bytes; nothing here reaches storage or the network.
import { crc32c, decodeRecords, encodeRecords, GemError } from '@gem-mesh/core'
import type { GemRecord } from '@gem-mesh/core'
import { assert, assertEqual, assertSameJson, runCheck } from './check.ts'
import type { CheckResult } from './report.ts'

const te = new TextEncoder()

function sampleRecords (): GemRecord[] {
  // Bytes that break text encodings (0x00, 0xff), non-ASCII strings and every optional field.
  const binary = new Uint8Array(300)
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 151 + 7) & 0xff
  binary[0] = 0x00
  binary[binary.length - 1] = 0xff
  return [
    {
      id: 'rec-1', topic: 'orders', key: 'clé-🔑', partition: 3, offset: 41, payload: binary,
      headers: { 'gem-encoding': 'json', 'x-trace': 'ab/cd' }, priority: 9, timestamp: 1_700_000_000_123,
      producerId: 'producer-α', sequence: 17, ttl: 60_000, attempt: 2,
    },
    {
      id: 'rec-2', topic: 'orders', partition: 3, offset: 42, payload: te.encode('héllo, 世界'),
      headers: {}, priority: 5, timestamp: 1_700_000_000_124, ttl: 0, attempt: 0,
    },
    {
      id: 'rec-3', topic: 'orders', partition: 3, offset: 43, payload: new Uint8Array(0),
      headers: { empty: '' }, priority: 1, timestamp: 1_700_000_000_125, ttl: 0, attempt: 0,
    },
  ]
}

/** Field by field, bytes by content, and the payload must come back as a Uint8Array. */
function sameRecord (actual: GemRecord, expected: GemRecord, label: string): void {
  assert(actual.payload instanceof Uint8Array, `${label}: payload is not a Uint8Array`)
  const plain = (r: GemRecord): unknown => ({ ...r, payload: Array.from(r.payload) })
  assertSameJson(plain(actual), plain(expected), label)
}

function expectCorrupt (fn: () => unknown, what: string): void {
  try {
    fn()
  } catch (err) {
    assert(GemError.is(err, 'CORRUPT_RECORD'), `${what}: expected GemError CORRUPT_RECORD, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
    return
  }
  throw new Error(`${what}: decoded without an error`)
}

export async function runCodecChecks (): Promise<CheckResult[]> {
  return [
    await runCheck('crc32c("123456789") is the CRC-32C check value 0xE3069283', () => {
      assertEqual(crc32c(te.encode('123456789')) >>> 0, 0xE3069283, 'crc32c check value')
      assertEqual(crc32c(new Uint8Array(0)) >>> 0, 0, 'crc32c of no bytes')
    }),
    await runCheck('encodeRecords then decodeRecords round-trips every field', () => {
      const records = sampleRecords()
      const chunk = encodeRecords(records)
      assert(chunk instanceof Uint8Array, 'encodeRecords returns a Uint8Array')
      const back = decodeRecords(chunk)
      assertEqual(back.length, records.length, 'decoded record count')
      records.forEach((r, i) => sameRecord(back[i], r, `record ${i}`))
      // A chunk that is a view into a larger buffer decodes the same (byteOffset handling).
      const padded = new Uint8Array(chunk.length + 16)
      padded.set(chunk, 8)
      const viewBack = decodeRecords(padded.subarray(8, 8 + chunk.length))
      records.forEach((r, i) => sameRecord(viewBack[i], r, `record ${i} from a subarray`))
    }),
    await runCheck('every single flipped bit is rejected with GemError CORRUPT_RECORD', () => {
      const chunk = encodeRecords(sampleRecords())
      for (let bit = 0; bit < chunk.length * 8; bit++) {
        const damaged = chunk.slice()
        damaged[bit >> 3] ^= 1 << (bit & 7)
        expectCorrupt(() => decodeRecords(damaged), `bit ${bit} flipped`)
      }
    }),
  ]
}
