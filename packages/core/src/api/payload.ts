// How SDK payloads become bytes and back: bytes as they are, strings as UTF-8, other values as
// JSON text marked with the `gem-encoding: json` header (the gateways use the same convention).
import { GemError } from '../errors.ts'

export const ENCODING_HEADER = 'gem-encoding'

const te = new TextEncoder()
const td = new TextDecoder('utf-8', { ignoreBOM: true })

/**
 * Bytes are copied: the broker keeps recent records decoded in memory, so a caller reusing its
 * buffer after publish must not rewrite a stored message. Throws GemError BAD_REQUEST for values
 * JSON cannot carry (functions, symbols, undefined, bigints, cycles).
 */
export function encodePayload (payload: unknown): { bytes: Uint8Array, headers?: Record<string, string> } {
  if (typeof payload === 'string') return { bytes: te.encode(payload) }
  if (payload instanceof Uint8Array) return { bytes: payload.slice() }
  if (payload instanceof ArrayBuffer) return { bytes: new Uint8Array(payload.slice(0)) }
  // Any other typed array or DataView is bytes too; JSON would turn it into {"0":..,"1":..}.
  if (ArrayBuffer.isView(payload)) return { bytes: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength).slice() }
  let text: string | undefined
  try {
    text = JSON.stringify(payload)
  } catch (err) {
    throw new GemError('BAD_REQUEST', `payload is not JSON-serialisable: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (text === undefined) throw new GemError('BAD_REQUEST', `payload must be bytes, a string or a JSON value, not ${typeof payload}`)
  return { bytes: te.encode(text), headers: { [ENCODING_HEADER]: 'json' } }
}

export function payloadText (bytes: Uint8Array): string {
  return td.decode(bytes)
}

export function payloadJson (bytes: Uint8Array): unknown {
  return JSON.parse(td.decode(bytes))
}
