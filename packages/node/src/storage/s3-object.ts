// The S3 tier's object formats: a batch object (one StorageTier write: chunks, metadata and deletes) and a checkpoint.
// Encoding and checks only; no I/O. A batch object is `GEMB` u8 version u32 header-length, a JSON header, then the body.
import { GemError } from '@gem-mesh/core'

/** A chunk inside a batch object; `pos` counts from the start of the object. */
export interface ChunkRef {
  stream: string
  base: number
  last: number
  /** The batch object holding the bytes. */
  seq: number
  pos: number
  len: number
  crc: number
}

export type DeleteOp = { stream: string, all: true } | { stream: string, all: false, before: number }

/** The object's sequence number is in its key, not here: the object is encoded before its number is drawn. */
export interface BatchHeader {
  v: 1
  chunks: Array<{ s: string, b: number, l: number, o: number, n: number, c: number }>
  /** Metadata writes in order; the value base64, null deletes. */
  meta: Array<{ k: string, v: string | null }>
  deletes: DeleteOp[]
}

/** Everything the tier knows at one sequence number, so that older objects need not be read again. */
export interface CheckpointBody {
  v: 1
  seq: number
  meta: Array<[string, string]>
  /** Per stream, its chunks as [base, last, seq, pos, len, crc]. */
  streams: Array<[string, Array<[number, number, number, number, number, number]>]>
}

const MAGIC = [0x47, 0x45, 0x4d, 0x42] // GEMB
const VERSION = 1
export const PREAMBLE_BYTES = 9
const te = new TextEncoder()
const td = new TextDecoder()

export function encodeBatch (header: Omit<BatchHeader, 'chunks'>, chunks: Array<{ stream: string, base: number, last: number, data: Uint8Array, crc: number }>): { bytes: Uint8Array, refs: Array<Omit<ChunkRef, 'seq'>> } {
  // Body offsets depend on the header length, which depends on the offsets' digits: lay out the body relative to
  // its start, and store relative offsets; refs get the absolute position once the header length is known.
  let at = 0
  const entries = chunks.map(c => {
    const e = { s: c.stream, b: c.base, l: c.last, o: at, n: c.data.byteLength, c: c.crc }
    at += c.data.byteLength
    return e
  })
  const head = te.encode(JSON.stringify({ ...header, chunks: entries }))
  const bodyStart = PREAMBLE_BYTES + head.byteLength
  const bytes = new Uint8Array(bodyStart + at)
  bytes.set(MAGIC, 0)
  bytes[4] = VERSION
  new DataView(bytes.buffer).setUint32(5, head.byteLength)
  bytes.set(head, PREAMBLE_BYTES)
  for (let i = 0; i < chunks.length; i++) bytes.set(chunks[i].data, bodyStart + entries[i].o)
  const refs = entries.map(e => ({ stream: e.s, base: e.b, last: e.l, pos: bodyStart + e.o, len: e.n, crc: e.c }))
  return { bytes, refs }
}

/** The header length from the first PREAMBLE_BYTES of a batch object. */
export function headerLength (preamble: Uint8Array, key: string): number {
  if (preamble.byteLength < PREAMBLE_BYTES || MAGIC.some((b, i) => preamble[i] !== b)) throw new GemError('CORRUPT_RECORD', `S3 object ${key} is not a GEM batch object`)
  if (preamble[4] !== VERSION) throw new GemError('VERSION_MISMATCH', `S3 object ${key} has format version ${preamble[4]}; this node reads ${VERSION}`)
  return new DataView(preamble.buffer, preamble.byteOffset, PREAMBLE_BYTES).getUint32(5)
}

export function decodeHeader (bytes: Uint8Array, key: string, seq: number): { header: BatchHeader, refs: ChunkRef[] } {
  const len = headerLength(bytes, key)
  if (bytes.byteLength < PREAMBLE_BYTES + len) throw new GemError('CORRUPT_RECORD', `S3 object ${key}: header cut short`)
  let header: BatchHeader
  try {
    header = JSON.parse(td.decode(bytes.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + len))) as BatchHeader
  } catch (err) {
    throw new GemError('CORRUPT_RECORD', `S3 object ${key}: unreadable header (${(err as Error).message})`)
  }
  if (header?.v !== 1 || !Array.isArray(header.chunks) || !Array.isArray(header.meta) || !Array.isArray(header.deletes)) {
    throw new GemError('CORRUPT_RECORD', `S3 object ${key}: malformed header`)
  }
  const bodyStart = PREAMBLE_BYTES + len
  const refs = header.chunks.map(e => ({ stream: e.s, base: e.b, last: e.l, seq, pos: bodyStart + e.o, len: e.n, crc: e.c }))
  return { header, refs }
}

export function encodeCheckpoint (body: CheckpointBody): Uint8Array {
  return te.encode(JSON.stringify(body))
}

export function decodeCheckpoint (bytes: Uint8Array, key: string): CheckpointBody {
  try {
    const c = JSON.parse(td.decode(bytes)) as CheckpointBody
    if (c?.v === 1 && Array.isArray(c.meta) && Array.isArray(c.streams)) return c
  } catch { /* reported below */ }
  throw new GemError('CORRUPT_RECORD', `S3 checkpoint ${key} is unreadable`)
}

export function toBase64 (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

export function fromBase64 (s: string): Uint8Array {
  const b = Buffer.from(s, 'base64')
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}
