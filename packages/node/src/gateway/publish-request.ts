// Turns one JSON publish request (REST body, REST batch item, WebSocket `message`) into the broker's PublishInput.
// It checks shapes, types and the priority range and names the offending field; the broker's length limits stay in the broker.
import { GemError } from '@gem-mesh/core'
import type { PublishInput } from '@gem-mesh/core'
import { ENCODING_HEADER, payloadFromJson } from './payload.ts'

/**
 * `value` is the parsed JSON of one message: `{"payload"|"payload_base64", "id"?, "key"?, "headers"?, "priority"?}`.
 * `path` names it in error messages ('' for a request body, `message`, `messages[3]`). Null counts as absent for the optional fields.
 */
export function parsePublishRequest (value: unknown, maxPayloadBytes: number, path: string): PublishInput {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new GemError('BAD_REQUEST', `${path === '' ? 'the body' : path} must be a JSON object with a payload`)
  }
  const o = value as Record<string, unknown>
  const at = path === '' ? '' : path + '.'
  const { bytes, encoding } = payloadFromJson(o, path)
  if (bytes.byteLength > maxPayloadBytes) {
    throw new GemError('PAYLOAD_TOO_LARGE', `${at}payload is ${bytes.byteLength} bytes; the limit is ${maxPayloadBytes}`)
  }
  const input: PublishInput = { payload: bytes }
  const { id, key, headers, priority } = o
  if (id !== undefined && id !== null) {
    if (typeof id !== 'string' || id === '') throw new GemError('BAD_REQUEST', `${at}id must be a non-empty string`)
    input.id = id
  }
  if (key !== undefined && key !== null) {
    if (typeof key !== 'string') throw new GemError('BAD_REQUEST', `${at}key must be a string`)
    input.key = key
  }
  if (headers !== undefined && headers !== null) {
    if (typeof headers !== 'object' || Array.isArray(headers)) throw new GemError('BAD_REQUEST', `${at}headers must be an object of strings`)
    const h = headers as Record<string, unknown>
    for (const k in h) {
      if (typeof h[k] !== 'string') throw new GemError('BAD_REQUEST', `${at}headers.${k} must be a string`)
      if (k.toLowerCase() === ENCODING_HEADER) throw new GemError('BAD_REQUEST', `${at}headers.${k} is reserved: use payload or payload_base64`)
    }
    input.headers = encoding === undefined ? h as Record<string, string> : { ...h as Record<string, string>, [ENCODING_HEADER]: encoding }
  } else if (encoding !== undefined) {
    input.headers = { [ENCODING_HEADER]: encoding }
  }
  if (priority !== undefined && priority !== null) {
    // The broker checks the range too, but only as it stores: caught here, a bad item refuses its batch before any is stored.
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 1 || priority > 10) throw new GemError('BAD_REQUEST', `${at}priority must be an integer from 1 to 10`)
    input.priority = priority
  }
  return input
}
