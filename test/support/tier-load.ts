// Test harness for tiered storage: numbered 256-byte payloads published pipelined over /ws, read back and checked over
// REST, and a plain S3 client for looking into the bucket. Bounded in count and time; every socket is closed.
import WebSocket from 'ws'
import { ListObjectsV2Command, GetObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { api } from './gem-process.ts'

const FILLER = (() => {
  // Deterministic, not compressible to nothing: LevelDB and S3 must carry real bytes.
  let x = 2463534242
  let s = ''
  for (let i = 0; i < 8192; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    s += 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[x & 63]
  }
  return s
})()

/** The payload of message `i`: 256 characters that name `i` and differ between neighbours. */
export function payloadOf (i: number): string {
  const head = `m${String(i).padStart(10, '0')}:`
  const at = (i * 7919) % (FILLER.length - 256)
  return head + FILLER.slice(at, at + 256 - head.length)
}

export interface PublishOutcome {
  /** Messages 0..acked-1 of the range are acknowledged (acks come in order on one socket). */
  acked: number
  /** The first error frame's code, if one ended the run (e.g. STORAGE_FULL). */
  error?: string
  closed: boolean
}

/**
 * Publishes payloadOf(from) .. payloadOf(to - 1) on one WebSocket with up to `window` unacknowledged. Stops at the
 * first error frame, when the socket closes, at `deadlineMs`, or once `stopAt(acked)` says so.
 */
export async function publishRange (url: string, topic: string, from: number, to: number, opts: { window?: number, deadlineMs?: number, stopAt?: (acked: number) => boolean } = {}): Promise<PublishOutcome> {
  const window = opts.window ?? 2048
  const deadline = Date.now() + (opts.deadlineMs ?? 120_000)
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { perMessageDeflate: false })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  let sent = from
  let acked = 0
  try {
    return await new Promise<PublishOutcome>(resolve => {
      let done = false
      const finish = (o: PublishOutcome): void => { if (!done) { done = true; resolve(o) } }
      ws.on('message', raw => {
        const s = String(raw)
        if (s.includes('"type":"error"')) {
          finish({ acked, error: /"code":"([A-Z_]+)"/.exec(s)?.[1] ?? 'UNKNOWN', closed: false })
          return
        }
        if (!s.includes('"type":"ack"')) return
        acked++
        if (from + acked >= to || Date.now() > deadline || opts.stopAt?.(acked) === true) { finish({ acked, closed: false }); return }
        fill()
      })
      ws.once('close', () => finish({ acked, closed: true }))
      ws.once('error', () => finish({ acked, closed: true }))
      const fill = (): void => {
        while (sent < to && sent - from - acked < window) {
          ws.send(`{"type":"publish","topic":"${topic}","request_id":"r${sent}","message":{"payload":"${payloadOf(sent)}"}}`)
          sent++
        }
      }
      fill()
    })
  } finally {
    ws.terminate()
  }
}

/**
 * Reads partition 0 from offset 0 over REST and checks that offset i holds payloadOf(i); returns how many it read.
 * `ordered: false` checks only that each of the `expected` messages is there exactly once, in any order.
 * Two readers take one half each, so that the node encodes one response while the test parses the other.
 */
export async function verifyLog (url: string, topic: string, expected: number, deadlineMs = 150_000, ordered = true): Promise<number> {
  const deadline = Date.now() + deadlineMs
  const seen = new Uint8Array(expected)
  const half = Math.ceil(expected / 2)
  const readRange = async (start: number, end: number): Promise<number> => {
    let from = start
    while (from < end) {
      if (Date.now() > deadline) throw new Error(`read back only up to ${from} of ${start}..${end} in time`)
      const r = await api(url, 'GET', `/topics/${topic}/messages?partition=0&from=${from}&limit=${Math.min(1000, end - from)}`)
      if (r.status !== 200) throw new Error(`read at ${from} failed: ${r.status} ${JSON.stringify(r.json)}`)
      const messages = r.json.messages as Array<{ offset: number, payload: unknown }>
      if (messages.length === 0) break
      for (const m of messages) {
        if (from >= end) break
        if (m.offset !== from) throw new Error(`expected offset ${from}, read ${m.offset}`)
        if (!ordered) {
          const i = Number(/^m(\d{10}):/.exec(String(m.payload))?.[1] ?? -1)
          if (!(i >= 0 && i < expected) || m.payload !== payloadOf(i)) throw new Error(`offset ${from} holds a payload that is no message: ${String(m.payload).slice(0, 40)}`)
          if (seen[i] === 1) throw new Error(`message ${i} is stored twice (again at offset ${from})`)
          seen[i] = 1
        } else if (m.payload !== payloadOf(from)) {
          throw new Error(`offset ${from} holds ${JSON.stringify(m.payload).slice(0, 40)}…, not message ${from}`)
        }
        from++
      }
    }
    return from - start
  }
  const [a, b] = await Promise.all([readRange(0, half), readRange(half, expected)])
  // The log must not hold more than was published either.
  const beyond = await api(url, 'GET', `/topics/${topic}/messages?partition=0&from=${expected}&limit=1`)
  if (beyond.json?.messages?.length !== 0) throw new Error(`the log holds messages past ${expected}`)
  return a === half ? a + b : a
}

export async function health (url: string): Promise<{ status: string, storage: { local: { bytes: number, budgetBytes: number }, remote: { state: string, backlogSegments: number, offloadedSegments: number, lastError?: string } } }> {
  return (await api(url, 'GET', '/health')).json
}

export async function metric (url: string, name: string): Promise<number> {
  const text = await (await fetch(url + '/metrics')).text()
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)
  return m === null ? Number.NaN : Number(m[1])
}

export function s3Client (endpoint: string): S3Client {
  return new S3Client({
    endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

export async function listKeys (client: S3Client, bucket: string, prefix: string): Promise<Array<{ key: string, size: number }>> {
  const out: Array<{ key: string, size: number }> = []
  let token: string | undefined
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }))
    for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 })
    token = r.IsTruncated === true ? r.NextContinuationToken : undefined
  } while (token !== undefined)
  return out
}

/** The JSON header of a batch object (the segment manifest rides in its `meta`). */
export async function objectHeader (client: S3Client, bucket: string, key: string): Promise<{ chunks: unknown[], meta: Array<{ k: string, v: string | null }> }> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-65535' }))
  const bytes = await r.Body!.transformToByteArray()
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(5)
  return JSON.parse(new TextDecoder().decode(bytes.subarray(9, 9 + len)))
}
