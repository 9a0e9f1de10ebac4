// How SDK payloads become bytes and back: bytes as they are, strings as UTF-8, other values as
// JSON text marked with the `gem-encoding: json` header (the gateways use the same convention).

export const ENCODING_HEADER = 'gem-encoding'

const te = new TextEncoder()
const td = new TextDecoder()

export function encodePayload (payload: unknown): { bytes: Uint8Array, headers?: Record<string, string> } {
  if (payload instanceof Uint8Array) return { bytes: payload }
  if (typeof payload === 'string') return { bytes: te.encode(payload) }
  if (payload instanceof ArrayBuffer) return { bytes: new Uint8Array(payload) }
  const text = JSON.stringify(payload)
  if (text === undefined) throw new TypeError('payload must be bytes, a string or a JSON value')
  return { bytes: te.encode(text), headers: { [ENCODING_HEADER]: 'json' } }
}

export function payloadText (bytes: Uint8Array): string {
  return td.decode(bytes)
}

export function payloadJson (bytes: Uint8Array): unknown {
  return JSON.parse(td.decode(bytes))
}
