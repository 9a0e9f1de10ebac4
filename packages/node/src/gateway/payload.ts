// The JSON <-> bytes mapping of payloads and the message JSON shown on every JSON surface (REST, SSE, WebSocket).
// A JSON string is stored as UTF-8; any other JSON value as its text with `gem-encoding: json`; `payload_base64` as raw bytes.
import { Buffer } from 'node:buffer'
import { ENCODING_HEADER, GemError } from '@gem-mesh/core'
import type { GemRecord } from '@gem-mesh/core'
import { isoOf } from './iso-time.ts'

export { ENCODING_HEADER }

export type PayloadEncoding = 'json' | 'base64' | undefined

export interface EncodedPayload {
  bytes: Uint8Array
  /** The `gem-encoding` header value to store with the bytes; undefined for UTF-8 text. */
  encoding: PayloadEncoding
}

// Fatal: bytes that are not UTF-8 must come out as base64, never as replacement characters.
// ignoreBOM: a leading U+FEFF is payload, not decoration; dropping it would change the bytes on a round trip.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Reads `payload` or `payload_base64` from a publish request object.
 * `path` names the object in error messages ('' for a request body, `message`, `messages[3]`).
 */
export function payloadFromJson (obj: Record<string, unknown>, path: string): EncodedPayload {
  const at = path === '' ? '' : path + '.'
  const value = obj.payload
  const b64 = obj.payload_base64
  if (b64 !== undefined && b64 !== null) {
    if (value !== undefined) throw new GemError('BAD_REQUEST', `${at}payload and ${at}payload_base64 exclude each other: give one`)
    if (typeof b64 !== 'string') throw new GemError('BAD_REQUEST', `${at}payload_base64 must be a base64 string`)
    return { bytes: decodeBase64(b64, `${at}payload_base64`), encoding: 'base64' }
  }
  if (value === undefined) throw new GemError('BAD_REQUEST', `${at}payload is required (or ${at}payload_base64)`)
  // Buffer.from, not TextEncoder: small strings are carved from Node's buffer pool instead of each getting an
  // ArrayBuffer of their own, which measurably costs on the one-publish-per-frame WebSocket path.
  if (typeof value === 'string') return { bytes: Buffer.from(value, 'utf8'), encoding: undefined }
  // The value came out of JSON.parse, so it always has a JSON text.
  return { bytes: Buffer.from(JSON.stringify(value), 'utf8'), encoding: 'json' }
}

function decodeBase64 (s: string, field: string): Uint8Array {
  const padded = s.includes('=')
  if (!BASE64.test(s) || (padded ? s.length % 4 !== 0 : s.length % 4 === 1)) {
    throw new GemError('BAD_REQUEST', `${field} is not valid base64`)
  }
  const buf = Buffer.from(s, 'base64')
  // A copy of exactly these bytes: pooled Buffers share one larger ArrayBuffer the log would otherwise keep alive.
  return new Uint8Array(buf)
}

/** A message as the JSON surfaces show it. `payload` and `payload_base64` are exclusive. */
export interface MessageView {
  id: string
  topic: string
  partition: number
  offset: number
  payload?: unknown
  payload_base64?: string
  key?: string
  headers: Record<string, string>
  priority: number
  ts: string
  attempt?: number
  tag?: string
}

/** The message JSON of a stored record, keys in the documented order; `delivery` adds the consumer side (attempt, tag). */
export function messageView (r: GemRecord, delivery?: { attempt: number, tag?: string }): MessageView {
  const enc = r.headers[ENCODING_HEADER]
  const decoded = decodePayload(r.payload, enc)
  const m = { id: r.id, topic: r.topic, partition: r.partition, offset: r.offset } as MessageView
  if (decoded.base64 === undefined) m.payload = decoded.value
  else m.payload_base64 = decoded.base64
  if (r.key !== undefined) m.key = r.key
  // Only encodings this mapping produced are hidden: they describe the payload, they are not user headers.
  m.headers = enc === 'json' || enc === 'base64' ? withoutEncoding(r.headers) : r.headers
  m.priority = r.priority
  m.ts = isoOf(r.timestamp)
  const attempt = delivery?.attempt ?? r.attempt
  if (attempt > 0) m.attempt = attempt
  if (delivery?.tag !== undefined) m.tag = delivery.tag
  return m
}

type Decoded = { value: unknown, base64?: undefined } | { value?: undefined, base64: string }

function decodePayload (bytes: Uint8Array, enc: string | undefined): Decoded {
  if (enc !== 'base64') {
    let text: string | undefined
    try { text = strictUtf8.decode(bytes) } catch { text = undefined }
    if (text !== undefined) {
      if (enc !== 'json') return { value: text }
      try { return { value: JSON.parse(text) } } catch { /* marked JSON but is not: show the bytes */ }
    }
  }
  return { base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') }
}

function withoutEncoding (headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k in headers) if (k !== ENCODING_HEADER) out[k] = headers[k]
  return out
}
