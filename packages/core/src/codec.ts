// Binary codec for GemRecord: self-delimiting frames, each checked by a CRC32C over its body.
// Pure and synchronous: it never does I/O and never returns a record it could not fully verify.

/*
 * Frame layout, version 1 (all integers little-endian; positions relative to the frame start):
 *
 *    0  u32  frameLength     bytes after this field (so the frame is 4 + frameLength bytes)
 *    4  u32  crc32c          CRC32C (crc32c.ts) of bytes 8 .. 4 + frameLength
 *    8  u8   version         1
 *    9  u8   flags           bit0 key present, bit1 producerId present, bit2 sequence present; others 0
 *   10  u8   priority        1..10
 *   11  u8   reserved        0
 *   12  f64  offset
 *   20  f64  timestamp       ms since the Unix epoch
 *   28  u32  partition
 *   32  u32  attempt
 *   36  f64  ttl             ms; 0 = forever
 *   44  f64  sequence        0 when absent
 *   52  str  id              every `str` is u16 byteLength + UTF-8 bytes
 *       str  topic
 *       str  key             only when flags bit0
 *       str  producerId      only when flags bit1
 *       u16  headerCount     then per header: u16 klen, key UTF-8, u32 vlen, value UTF-8
 *       u32  payloadLength   must end the frame exactly: payload runs to 4 + frameLength
 *       ...  payload
 *
 * A chunk is frames back to back, nothing between them. frameLength sits outside the CRC, but the
 * body is parsed strictly (every field in bounds, payload ending exactly at the frame end), so a
 * damaged length is caught by the parse even if the CRC over the wrong range happened to match:
 * any single flipped bit in a chunk is detected deterministically. What no frame format can catch on
 * its own is a chunk cut exactly between two frames; decodeChunkRecords checks the offsets for that.
 */
import { crc32cRange } from './crc32c.ts'
import { GemError } from './errors.ts'
import type { GemRecord } from './message.ts'

export const CODEC_VERSION = 1

const FLAG_KEY = 1
const FLAG_PRODUCER = 2
const FLAG_SEQUENCE = 4
const KNOWN_FLAGS = FLAG_KEY | FLAG_PRODUCER | FLAG_SEQUENCE

const FIXED_BYTES = 52
/** The smallest legal frame: fixed fields, empty id and topic, no headers, empty payload. */
const MIN_FRAME_BYTES = FIXED_BYTES + 2 + 2 + 2 + 4
const MAX_U16 = 0xFFFF
const MAX_U32 = 0xFFFFFFFF

const encoder = new TextEncoder()
// fatal: invalid UTF-8 inside a frame that passed its CRC was written that way; refuse, never patch it.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

// ---------------------------------------------------------------------------------------- encoding

function badRequest (what: string, detail: string): GemError {
  return new GemError('BAD_REQUEST', `cannot encode record: ${what} ${detail}`)
}

/**
 * UTF-8 length of `s`, refusing lone surrogates: TextEncoder would silently store U+FFFD, and a record
 * whose id or key changes between publish and read breaks idempotency and key routing.
 */
function utf8Length (s: string, what: string): number {
  const n = s.length
  let bytes = n
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) { bytes += 1; continue }
    if (c >= 0xD800 && c <= 0xDFFF) {
      const next = i + 1 < n ? s.charCodeAt(i + 1) : 0
      if (c > 0xDBFF || next < 0xDC00 || next > 0xDFFF) throw badRequest(what, `has a lone surrogate at index ${i}`)
      bytes += 2 // two UTF-16 units become four bytes
      i++
      continue
    }
    bytes += 2
  }
  return bytes
}

function shortStringBytes (s: string, what: string): number {
  const n = utf8Length(s, what)
  if (n > MAX_U16) throw badRequest(what, `is ${n} UTF-8 bytes; the limit is ${MAX_U16}`)
  return n
}

function checkU32 (v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw badRequest(what, `must be an integer in 0..${MAX_U32}, got ${v}`)
}

/**
 * Encoded size of `r` in bytes, frame header included. Also the validation pass: everything that
 * could make a frame unreadable is refused here with BAD_REQUEST, before any byte is written.
 */
export function frameSize (r: GemRecord): number {
  if (!Number.isInteger(r.priority) || r.priority < 1 || r.priority > 10) {
    throw badRequest('priority', `must be an integer in 1..10, got ${r.priority}`)
  }
  checkU32(r.partition, 'partition')
  checkU32(r.attempt, 'attempt')
  let size = FIXED_BYTES + 2 + shortStringBytes(r.id, 'id') + 2 + shortStringBytes(r.topic, 'topic')
  if (r.key !== undefined) size += 2 + shortStringBytes(r.key, 'key')
  if (r.producerId !== undefined) size += 2 + shortStringBytes(r.producerId, 'producerId')
  const names = Object.keys(r.headers)
  if (names.length > MAX_U16) throw badRequest('headers', `has ${names.length} entries; the limit is ${MAX_U16}`)
  size += 2
  for (let i = 0; i < names.length; i++) {
    const k = names[i]
    const v = r.headers[k]
    if (typeof v !== 'string') throw badRequest(`header "${k}"`, `must be a string, got ${typeof v}`)
    size += 2 + shortStringBytes(k, 'header name') + 4 + utf8Length(v, `header "${k}"`)
  }
  size += 4 + r.payload.byteLength
  if (size - 4 > MAX_U32) throw badRequest('record', `is ${size} bytes; a frame holds at most ${MAX_U32}`)
  return size
}

/**
 * Writes `s` at `pos` (UTF-8, no prefix) and returns the byte count. Short ASCII (the ids, topics and
 * header names of a typical record) is copied by hand, which saves an encodeInto call and the
 * subarray it needs; anything else goes through encodeInto.
 */
function writeUtf8 (out: Uint8Array, pos: number, s: string): number {
  const n = s.length
  if (n <= 64) {
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      out[pos + i] = c
    }
    if (i === n) return n
  }
  return encoder.encodeInto(s, out.subarray(pos)).written
}

function writeShortString (out: Uint8Array, view: DataView, pos: number, s: string): number {
  const n = writeUtf8(out, pos + 2, s)
  view.setUint16(pos, n, true)
  return pos + 2 + n
}

/** Writes the frame of `r` at `start`; frameSize(r) must already have accepted it. Returns its end. */
function writeFrame (out: Uint8Array, view: DataView, start: number, r: GemRecord): number {
  let flags = 0
  if (r.key !== undefined) flags |= FLAG_KEY
  if (r.producerId !== undefined) flags |= FLAG_PRODUCER
  if (r.sequence !== undefined) flags |= FLAG_SEQUENCE
  out[start + 8] = CODEC_VERSION
  out[start + 9] = flags
  out[start + 10] = r.priority
  // byte 11 (reserved) is already 0: the output buffer is freshly allocated
  view.setFloat64(start + 12, r.offset, true)
  view.setFloat64(start + 20, r.timestamp, true)
  view.setUint32(start + 28, r.partition, true)
  view.setUint32(start + 32, r.attempt, true)
  view.setFloat64(start + 36, r.ttl, true)
  view.setFloat64(start + 44, r.sequence ?? 0, true)
  let p = start + FIXED_BYTES
  p = writeShortString(out, view, p, r.id)
  p = writeShortString(out, view, p, r.topic)
  if (r.key !== undefined) p = writeShortString(out, view, p, r.key)
  if (r.producerId !== undefined) p = writeShortString(out, view, p, r.producerId)
  const headers = r.headers
  const names = Object.keys(headers)
  view.setUint16(p, names.length, true)
  p += 2
  for (let i = 0; i < names.length; i++) {
    const k = names[i]
    p = writeShortString(out, view, p, k)
    const n = writeUtf8(out, p + 4, headers[k])
    view.setUint32(p, n, true)
    p += 4 + n
  }
  const payload = r.payload
  view.setUint32(p, payload.byteLength, true)
  p += 4
  out.set(payload, p)
  p += payload.byteLength
  view.setUint32(start, p - start - 4, true)
  view.setUint32(start + 4, crc32cRange(out, start + 8, p), true)
  return p
}

/** Encodes many records into one contiguous buffer of frames (a chunk). */
export function encodeRecords (rs: readonly GemRecord[]): Uint8Array {
  // Sizes first, so that one exact allocation and one DataView serve the whole chunk, and so that a
  // bad record fails the call before anything was written.
  let total = 0
  const sizes = new Array<number>(rs.length)
  for (let i = 0; i < rs.length; i++) {
    const n = frameSize(rs[i])
    sizes[i] = n
    total += n
  }
  const out = new Uint8Array(total)
  const view = new DataView(out.buffer)
  let p = 0
  for (let i = 0; i < rs.length; i++) {
    const end = writeFrame(out, view, p, rs[i])
    // frameSize and writeFrame are two readings of one layout; if they ever disagree, say so loudly.
    if (end - p !== sizes[i]) throw new GemError('INTERNAL', `codec: record ${i} sized ${sizes[i]} bytes but wrote ${end - p}`)
    p = end
  }
  return out
}

/** Encodes one record as a self-delimiting frame. */
export function encodeRecord (r: GemRecord): Uint8Array {
  return encodeRecords([r])
}

/** Record frames encoded earlier, back to back: the chunk encodeRecords would have written for their records. */
export function concatFrames (frames: readonly Uint8Array[]): Uint8Array {
  let n = 0
  for (const f of frames) n += f.byteLength
  const out = new Uint8Array(n)
  let at = 0
  for (const f of frames) { out.set(f, at); at += f.byteLength }
  return out
}

/**
 * Encodes records as one frame each, all views into one buffer: a replicated batch needs its entries apart, and one
 * allocation for the batch costs far less than one per record (each is an off-heap buffer with its own bookkeeping).
 */
export function encodeRecordFrames (rs: readonly GemRecord[]): Uint8Array[] {
  const chunk = encodeRecords(rs)
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  const out = new Array<Uint8Array>(rs.length)
  let p = 0
  for (let i = 0; i < rs.length; i++) {
    const end = p + 4 + view.getUint32(p, true)
    out[i] = chunk.subarray(p, end)
    p = end
  }
  return out
}

// ---------------------------------------------------------------------------------------- decoding

function corrupt (at: number, detail: string): GemError {
  return new GemError('CORRUPT_RECORD', `corrupt record frame at byte ${at}: ${detail}`, { position: at })
}

// Memo slots for strings that usually repeat from one record of a chunk to the next.
const SLOT_TOPIC = 0
const SLOT_PRODUCER = 1
const SLOT_HEADERS = 2
const MEMO_HEADERS = 16
const MEMO_SLOTS = SLOT_HEADERS + 2 * MEMO_HEADERS

/**
 * Reads the frames of one chunk (or, through `reset`, of several buffers in turn). Strings that repeat across
 * records (topic, producerId, header names and values, compared by bytes) are decoded once and the records share
 * one string: less work, less memory, and header objects that keep one hidden class.
 */
class ChunkReader {
  bytes: Uint8Array
  view: DataView
  /** Start and end of the frame being read, and the read position inside it. */
  start = 0
  end = 0
  pos = 0
  /** Where each memoised string's bytes are: buffer, position, length. */
  readonly memoBuf: Uint8Array[]
  readonly memoPos: number[] = new Array<number>(MEMO_SLOTS).fill(0)
  readonly memoLen: number[] = new Array<number>(MEMO_SLOTS).fill(-1)
  readonly memoStr: string[] = new Array<string>(MEMO_SLOTS).fill('')

  constructor (bytes: Uint8Array) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.memoBuf = new Array<Uint8Array>(MEMO_SLOTS).fill(bytes)
  }

  /** Reads `bytes` next; the memo carries over (it keeps the buffers its strings came from). */
  reset (bytes: Uint8Array): void {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** Where the frame at `pos` ends, after checking that its declared length is plausible and inside the data. */
  frameEnd (pos: number): number {
    const left = this.bytes.length - pos
    if (left < 4) throw corrupt(pos, `truncated: ${left} bytes left, the length field needs 4`)
    const len = this.view.getUint32(pos, true)
    if (len + 4 < MIN_FRAME_BYTES) throw corrupt(pos, `declared length ${len} is below the minimum frame body of ${MIN_FRAME_BYTES - 4} bytes`)
    if (len > left - 4) throw corrupt(pos, `declared length ${len} runs past the end of the data (${left - 4} bytes follow the length field): truncated or damaged length`)
    return pos + 4 + len
  }

  /** Decodes the frame occupying [start, end), which frameEnd has placed inside the data. */
  frame (start: number, end: number): GemRecord {
    const bytes = this.bytes
    const view = this.view
    this.start = start
    this.end = end
    const stored = view.getUint32(start + 4, true)
    const actual = crc32cRange(bytes, start + 8, end)
    if (stored !== actual) {
      throw corrupt(start, `CRC32C mismatch over bytes ${start + 8}..${end} (stored 0x${hex(stored)}, computed 0x${hex(actual)})`)
    }
    // Past the CRC, a failed check below means the frame was written wrong (or crafted), not damaged.
    const version = bytes[start + 8]
    if (version !== CODEC_VERSION) throw corrupt(start, `unknown codec version ${version} at byte ${start + 8} (this build reads ${CODEC_VERSION})`)
    const flags = bytes[start + 9]
    if ((flags & ~KNOWN_FLAGS) !== 0) throw corrupt(start, `unknown flag bits 0x${flags.toString(16)} at byte ${start + 9}`)
    const priority = bytes[start + 10]
    if (priority < 1 || priority > 10) throw corrupt(start, `priority ${priority} at byte ${start + 10} is outside 1..10`)
    if (bytes[start + 11] !== 0) throw corrupt(start, `reserved byte ${start + 11} is ${bytes[start + 11]}, not 0`)
    const sequence = view.getFloat64(start + 44, true)
    if ((flags & FLAG_SEQUENCE) === 0 && !Object.is(sequence, 0)) {
      throw corrupt(start, `sequence at byte ${start + 44} is ${sequence} but flagged absent`)
    }

    this.pos = start + FIXED_BYTES
    const id = this.utf8(this.u16('id length'), 'id', -1)
    const topic = this.utf8(this.u16('topic length'), 'topic', SLOT_TOPIC)
    const key = (flags & FLAG_KEY) !== 0 ? this.utf8(this.u16('key length'), 'key', -1) : undefined
    const producerId = (flags & FLAG_PRODUCER) !== 0 ? this.utf8(this.u16('producerId length'), 'producerId', SLOT_PRODUCER) : undefined
    const headerCount = this.u16('header count')
    const headers: Record<string, string> = {}
    for (let i = 0; i < headerCount; i++) {
      const slot = i < MEMO_HEADERS ? SLOT_HEADERS + 2 * i : -1
      const k = this.utf8(this.u16('header name length'), 'header name', slot)
      const v = this.utf8(this.u32('header value length'), 'header value', slot < 0 ? -1 : slot + 1)
      // A plain assignment to "__proto__" would replace the prototype instead of storing the header.
      if (k === '__proto__') Object.defineProperty(headers, k, { value: v, enumerable: true, writable: true, configurable: true })
      else headers[k] = v
    }
    const payloadLength = this.u32('payload length')
    if (this.pos + payloadLength !== end) {
      throw corrupt(start, `payload of ${payloadLength} bytes at byte ${this.pos} does not end at the frame end (byte ${end})`)
    }
    // A view into decodeRecords' private copy of the chunk; see there for why.
    const payload = bytes.subarray(this.pos, end)

    const r: GemRecord = {
      id,
      topic,
      partition: view.getUint32(start + 28, true),
      offset: view.getFloat64(start + 12, true),
      payload,
      headers,
      priority,
      timestamp: view.getFloat64(start + 20, true),
      ttl: view.getFloat64(start + 36, true),
      attempt: view.getUint32(start + 32, true),
    }
    if (key !== undefined) r.key = key
    if (producerId !== undefined) r.producerId = producerId
    if ((flags & FLAG_SEQUENCE) !== 0) r.sequence = sequence
    return r
  }

  need (n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw corrupt(this.start, `${what} at byte ${this.pos} needs ${n} bytes but the frame ends at byte ${this.end}`)
    }
  }

  u16 (what: string): number {
    this.need(2, what)
    const v = this.view.getUint16(this.pos, true)
    this.pos += 2
    return v
  }

  u32 (what: string): number {
    this.need(4, what)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  /** `n` UTF-8 bytes at pos as a string; `slot` >= 0 reuses the string of the previous frame when the bytes match. */
  utf8 (n: number, what: string, slot: number): string {
    this.need(n, what)
    const bytes = this.bytes
    const start = this.pos
    this.pos += n
    if (n === 0) return ''
    if (slot >= 0) {
      if (this.memoLen[slot] === n) {
        const prev = this.memoPos[slot]
        const was = this.memoBuf[slot]
        let i = 0
        while (i < n && was[prev + i] === bytes[start + i]) i++
        if (i === n) return this.memoStr[slot]
      }
      const s = this.decodeUtf8(start, n, what)
      this.memoBuf[slot] = bytes
      this.memoPos[slot] = start
      this.memoLen[slot] = n
      this.memoStr[slot] = s
      return s
    }
    return this.decodeUtf8(start, n, what)
  }

  decodeUtf8 (start: number, n: number, what: string): string {
    const bytes = this.bytes
    // Below 13 characters V8 builds flat strings by concatenation, which beats a TextDecoder call;
    // above that, concatenation builds rope strings and TextDecoder wins (measured on Node 24).
    if (n <= 12) {
      let s = ''
      let i = start
      const end = start + n
      for (; i < end; i++) {
        const c = bytes[i]
        if (c >= 0x80) break
        s += String.fromCharCode(c)
      }
      if (i === end) return s
    }
    try {
      return decoder.decode(bytes.subarray(start, start + n))
    } catch {
      throw corrupt(this.start, `${what} at byte ${start} is not valid UTF-8`)
    }
  }
}

function hex (v: number): string {
  return v.toString(16).padStart(8, '0')
}

/**
 * Decodes every frame in a chunk; throws GemError('CORRUPT_RECORD') on any damage.
 *
 * The chunk is copied once, then checked and decoded from that copy, and each payload is a subarray
 * view into it. So a record never changes after its CRC passed, whatever later happens to `chunk` (a
 * memory tier's stored bytes, a reused transport receive buffer). One copy per chunk rather than one
 * per payload: in V8 a separate 256-byte allocation per record costs ~1.5-2 us, more than decoding the
 * rest of the record. The price: the records of one chunk share one buffer, so holding any payload
 * keeps that chunk's copy alive; a consumer that stores payloads long-term should slice() them.
 */
export function decodeRecords (chunk: Uint8Array): GemRecord[] {
  // new Uint8Array(typedArray) always copies, and yields a plain Uint8Array even from a Node Buffer.
  const rd = new ChunkReader(new Uint8Array(chunk))
  const n = chunk.length
  const out: GemRecord[] = []
  let pos = 0
  while (pos < n) {
    const end = rd.frameEnd(pos)
    out.push(rd.frame(pos, end))
    pos = end
  }
  return out
}

/** Decodes a buffer holding exactly one frame (a private copy of it, as in decodeRecords). */
export function decodeRecord (frame: Uint8Array): GemRecord {
  const rd = new ChunkReader(new Uint8Array(frame))
  const end = rd.frameEnd(0)
  if (end !== frame.length) throw corrupt(end, `${frame.length - end} bytes follow a single record frame`)
  return rd.frame(0, end)
}

/**
 * decodeRecord over many buffers, each holding exactly one frame, without copying them: each payload is a view into
 * its frame, so only for buffers that the caller owns and that nothing writes to again (entries already copied out of
 * the network buffer they arrived in). One reader serves them all: its setup costs about as much as decoding a small
 * record, and strings repeating from frame to frame (the topic, header names) are decoded once.
 */
export function decodeRecordsInPlace (frames: readonly Uint8Array[]): GemRecord[] {
  const out = new Array<GemRecord>(frames.length)
  if (frames.length === 0) return out
  const rd = new ChunkReader(frames[0])
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]
    if (i > 0) rd.reset(frame)
    const end = rd.frameEnd(0)
    if (end !== frame.length) throw corrupt(end, `${frame.length - end} bytes follow a single record frame`)
    out[i] = rd.frame(0, end)
  }
  return out
}

/**
 * Decodes a stored chunk and checks that it holds exactly the dense offsets baseOffset..lastOffset.
 * Frames are self-delimiting, so a chunk cut exactly between two frames decodes cleanly into fewer
 * records; only the chunk's own offsets can reveal that, and this is where they are compared.
 */
export function decodeChunkRecords (data: Uint8Array, baseOffset: number, lastOffset: number): GemRecord[] {
  const records = decodeRecords(data)
  const expected = lastOffset - baseOffset + 1
  if (records.length !== expected) {
    throw new GemError('CORRUPT_RECORD', `chunk for offsets ${baseOffset}..${lastOffset} holds ${records.length} records, expected ${expected}: truncated or mislabelled`, { position: data.byteLength })
  }
  for (let i = 0; i < records.length; i++) {
    if (records[i].offset !== baseOffset + i) {
      throw new GemError('CORRUPT_RECORD', `chunk for offsets ${baseOffset}..${lastOffset}: record ${i} has offset ${records[i].offset}, expected ${baseOffset + i}`)
    }
  }
  return records
}
