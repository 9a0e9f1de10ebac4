// The one framing GEM's mesh protocols share inside a frame: a u32 length, a JSON head, then raw bytes.
// Decoding bounds every length before trusting it and says what was wrong with a BAD_REQUEST.
import { GemError } from './errors.ts'

const te = new TextEncoder()
const td = new TextDecoder()

/** `body` may come in parts (e.g. one per record): they are copied once, straight into the frame. */
export function encodeHeadBody (head: unknown, body: Uint8Array | readonly Uint8Array[] = []): Uint8Array {
  const json = te.encode(JSON.stringify(head))
  const parts = body instanceof Uint8Array ? [body] : body
  let total = 4 + json.byteLength
  for (const p of parts) total += p.byteLength
  const out = new Uint8Array(total)
  new DataView(out.buffer).setUint32(0, json.byteLength)
  out.set(json, 4)
  let at = 4 + json.byteLength
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

/** The parsed head (unchecked beyond being JSON) and a view of the body. `what` names the frame in errors. */
export function decodeHeadBody (frame: Uint8Array, what: string): { head: unknown, body: Uint8Array } {
  if (frame.byteLength < 4) throw new GemError('BAD_REQUEST', `${what}: shorter than its header`)
  const length = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0)
  if (length > frame.byteLength - 4) throw new GemError('BAD_REQUEST', `${what}: header length past the end of the frame`)
  let head: unknown
  try { head = JSON.parse(td.decode(frame.subarray(4, 4 + length))) } catch { throw new GemError('BAD_REQUEST', `${what}: header is not JSON`) }
  return { head, body: frame.subarray(4 + length) }
}
