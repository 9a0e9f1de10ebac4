// Reads a REST request body with a byte limit enforced while reading, and parses it as JSON.
// It never buffers more than the limit: an oversize body is refused on its Content-Length or at the first byte past the limit.
import { GemError } from '@gem-mesh/core'

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export async function readBody (req: Request, limit: number): Promise<Uint8Array> {
  const declared = req.headers.get('content-length')
  if (declared !== null && Number(declared) > limit) throw tooLarge(Number(declared), limit)
  const body = req.body
  if (body === null) return new Uint8Array(0)
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>
      try {
        next = await reader.read()
      } catch (err) {
        throw new GemError('BAD_REQUEST', `the request body ended early: ${(err as Error)?.message ?? String(err)}`)
      }
      if (next.done) break
      size += next.value.byteLength
      // Stop reading, but leave the stream to the server adapter: it drains or drops the rest without a reset.
      if (size > limit) throw tooLarge(undefined, limit)
      chunks.push(next.value)
    }
  } finally {
    reader.releaseLock()
  }
  if (chunks.length === 1) return chunks[0]
  const out = new Uint8Array(size)
  let at = 0
  for (const c of chunks) { out.set(c, at); at += c.byteLength }
  return out
}

/** The parsed JSON body. `required`: an empty body is a BAD_REQUEST; otherwise it reads as undefined. */
export async function readJson (req: Request, limit: number, required = true): Promise<unknown> {
  const bytes = await readBody(req, limit)
  if (bytes.byteLength === 0) {
    if (required) throw new GemError('BAD_REQUEST', 'a JSON body is required')
    return undefined
  }
  let text: string
  try {
    text = strictUtf8.decode(bytes)
  } catch {
    throw new GemError('BAD_REQUEST', 'the body is not valid UTF-8')
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new GemError('BAD_REQUEST', `the body is not valid JSON: ${(err as Error).message}`)
  }
}

function tooLarge (declared: number | undefined, limit: number): GemError {
  const size = declared === undefined ? '' : ` (${declared} bytes)`
  return new GemError('PAYLOAD_TOO_LARGE', `the request body${size} is larger than the limit of ${limit} bytes`)
}
