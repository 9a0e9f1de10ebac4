// S3Tier: the StorageTier on an S3 bucket (@aws-sdk/client-s3), log-structured: every write() is one immutable object.
// It owns the object layout under its prefix and an in-memory index rebuilt from the objects on open; one node per prefix.
//
// Layout under `<prefix>/`:
//   b/<seq, 16 digits>   a batch object (s3-object.ts): the chunks, metadata writes and deletes of one write()
//   c/<seq, 16 digits>   a checkpoint: the whole index at seq, so that older objects need not be replayed
// One PUT is atomic in S3, so a write is all-or-nothing. It is sent with its CRC32 (x-amz-checksum-crc32: S3 refuses
// a body that does not match) and then checked with a HEAD (length, and the checksum S3 stored) before write()
// resolves: an object the index points at is complete. Deletes write a small batch object with the delete, then objects no chunk points at any more are
// removed once a checkpoint no longer needs them. Chunks carry a CRC32C that every read checks.
import { createHash } from 'node:crypto'
import { crc32 as zlibCrc32 } from 'node:zlib'
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand,
  ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3'
import { GemError, checkBatch, crc32c } from '@gem-mesh/core'
import type { StorageTier, StoredChunk, TierWriteBatch } from '@gem-mesh/core'
import {
  PREAMBLE_BYTES, decodeCheckpoint, decodeHeader, encodeBatch, encodeCheckpoint, fromBase64, headerLength, toBase64,
} from './s3-object.ts'
import type { ChunkRef, DeleteOp } from './s3-object.ts'

export interface S3TierOptions {
  /** http(s) URL of an S3-compatible endpoint; omitted: AWS's own for the region. */
  endpoint?: string
  bucket: string
  region?: string
  /** Key prefix of this tier's objects, e.g. `gem/<node id>`; '' uses the bucket root. */
  prefix?: string
  /** Omitted: the standard AWS credential chain (env, shared files, SSO, instance roles). */
  credentials?: { accessKeyId: string, secretAccessKey: string, sessionToken?: string }
  /** Path-style URLs (bucket in the path); needed by most S3 stand-ins. Default: true when an endpoint is given. */
  forcePathStyle?: boolean
  /** Create the bucket when it does not exist. Default false. */
  createBucket?: boolean
  /** Per-request timeout (ms). Default 15 s. */
  requestTimeoutMs?: number
  /** A checkpoint is written after this many batch objects. Default 256. */
  checkpointEvery?: number
}

const OFFSET_LIMIT = 2 ** 53
const HEAD_PROBE = 64 * 1024
const GET_PARALLEL = 4
/** Bodies above this go up in parts (S3 stand-ins cap a single PUT; parts also retry alone). */
const MULTIPART_THRESHOLD = 8 * 1024 * 1024
const PART_BYTES = 8 * 1024 * 1024
const pad = (n: number): string => String(n).padStart(16, '0')

export async function openS3Tier (opts: S3TierOptions): Promise<S3Tier> {
  if (typeof opts.bucket !== 'string' || opts.bucket === '') throw new GemError('BAD_REQUEST', 's3 bucket must be a non-empty string')
  if (opts.endpoint !== undefined && !/^https?:\/\/[^/]+/.test(opts.endpoint)) throw new GemError('BAD_REQUEST', `s3 endpoint must be an http(s) URL, not ${JSON.stringify(opts.endpoint)}`)
  const client = new S3Client({
    region: opts.region ?? 'us-east-1',
    ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
    forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
    ...(opts.credentials !== undefined ? { credentials: opts.credentials } : {}),
    // Checksums by our own CRC32 (single PUTs), MD5 (parts) and CRC32C (chunks): the SDK's flexible checksums
    // (aws-chunked trailers) are not understood by every stand-in.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: opts.requestTimeoutMs ?? 15_000 },
  })
  // SigV4 would hash every upload body with SHA-256 on the event loop (the endpoint is http, so the SDK signs the
  // payload): our uploads carry a CRC32 or Content-MD5, which S3 checks and the signature covers, so the payload
  // goes unsigned.
  client.middlewareStack.add(next => async args => {
    const headers = (args.request as { headers?: Record<string, string> }).headers
    if (headers !== undefined && Object.keys(headers).some(h => { const l = h.toLowerCase(); return l === 'content-md5' || l === 'x-amz-checksum-crc32' })) {
      headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
    }
    return await next(args)
  }, { step: 'build', name: 'gemUnsignedPayload' })
  const tier = new S3Tier(client, opts)
  try {
    await tier.ensureBucket(opts.createBucket === true)
    await tier.load()
  } catch (err) {
    client.destroy()
    throw err
  }
  return tier
}

export class S3Tier implements StorageTier {
  readonly name = 's3'
  readonly bucket: string
  readonly prefix: string
  private readonly client: S3Client
  private readonly checkpointEvery: number
  /** Per stream, chunk refs sorted by base (they never overlap). */
  private readonly streams = new Map<string, ChunkRef[]>()
  private readonly meta = new Map<string, Uint8Array>()
  /** Live chunk refs per batch object. */
  private readonly live = new Map<number, number>()
  /** Batch objects and checkpoints that exist, by seq. */
  private readonly objects = new Set<number>()
  private readonly checkpoints = new Set<number>()
  private nextSeq = 1
  private sinceCheckpoint = 0
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false

  /** Use openS3Tier(). */
  constructor (client: S3Client, opts: S3TierOptions) {
    this.client = client
    this.bucket = opts.bucket
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '')
    this.checkpointEvery = opts.checkpointEvery ?? 256
  }

  // ---- StorageTier -------------------------------------------------------------------------

  write (batch: TierWriteBatch): Promise<void> {
    this.ensureOpen()
    checkBatch(batch)
    if (batch.chunks.length === 0 && batch.meta.length === 0) return Promise.resolve()
    // Encoded now, one copy: the caller may reuse its buffers as soon as write() returns.
    const chunks = batch.chunks.map(c => ({ stream: c.stream, base: c.baseOffset, last: c.lastOffset, data: c.data, crc: c.crc32c ?? crc32c(c.data) }))
    const meta = batch.meta.map(m => ({ k: m.key, v: m.value === null ? null : toBase64(m.value) }))
    const { bytes, refs } = encodeBatch({ v: 1, meta, deletes: [] }, chunks)
    return this.serial(async () => {
      const seq = this.nextSeq++
      await this.put(batchKey(this.prefix, seq), bytes)
      this.applyBatch(seq, refs.map(r => ({ ...r, seq })), meta, [])
      await this.maybeCheckpoint()
    })
  }

  async readChunks (stream: string, fromOffset: number, maxBytes: number): Promise<StoredChunk[]> {
    this.ensureOpen()
    const from = offsetArg(fromOffset, 'fromOffset')
    const refs = this.streams.get(stream)
    if (refs === undefined) return []
    let i = lastAtOrBefore(refs, from)
    if (i < 0 || refs[i].last < from) i++
    const picked: ChunkRef[] = []
    let bytes = 0
    for (; i < refs.length; i++) {
      picked.push(refs[i])
      bytes += refs[i].len
      if (bytes >= maxBytes) break
    }
    return this.fetch(picked)
  }

  async lastChunk (stream: string): Promise<StoredChunk | undefined> {
    this.ensureOpen()
    const last = this.streams.get(stream)?.at(-1)
    return last === undefined ? undefined : (await this.fetch([last]))[0]
  }

  deleteChunksBefore (stream: string, beforeOffset: number): Promise<void> {
    this.ensureOpen()
    const before = offsetArg(beforeOffset, 'beforeOffset')
    return this.serial(async () => {
      const refs = this.streams.get(stream)
      if (refs === undefined || refs[0].last >= before) return
      await this.writeDeletes([{ stream, all: false, before }])
    })
  }

  deleteStream (stream: string): Promise<void> {
    this.ensureOpen()
    return this.serial(async () => {
      if (!this.streams.has(stream)) return
      await this.writeDeletes([{ stream, all: true }])
    })
  }

  async getMeta (key: string): Promise<Uint8Array | undefined> {
    this.ensureOpen()
    return this.meta.get(key)?.slice()
  }

  async listMeta (prefix: string): Promise<Array<[string, Uint8Array]>> {
    this.ensureOpen()
    const out: Array<[string, Uint8Array]> = []
    for (const [k, v] of this.meta) if (k.startsWith(prefix)) out.push([k, v.slice()])
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.queue.catch(() => {})
    this.client.destroy()
  }

  // ---- beyond the contract -----------------------------------------------------------------

  /** Resolves when the bucket answers (HeadBucket): how a degraded chain learns that S3 is back. */
  async probe (): Promise<void> {
    this.ensureOpen()
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }))
    } catch (err) {
      throw s3Error(err, 'probe')
    }
  }

  /** Keys and sizes of this tier's objects in the bucket (for tests and tools). */
  async listObjects (): Promise<Array<{ key: string, size: number }>> {
    const out: Array<{ key: string, size: number }> = []
    let token: string | undefined
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix === '' ? undefined : this.prefix + '/', ContinuationToken: token }))
      for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 })
      token = r.IsTruncated === true ? r.NextContinuationToken : undefined
    } while (token !== undefined)
    return out
  }

  async ensureBucket (create: boolean): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }))
      return
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
      if (status !== 404 || !create) throw s3Error(err, `bucket ${this.bucket}`)
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }))
    } catch (err) {
      const name = (err as { name?: string }).name
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw s3Error(err, `create bucket ${this.bucket}`)
    }
  }

  /** Rebuilds the index: the newest checkpoint, then every batch object after it, in order. */
  async load (): Promise<void> {
    const batches: number[] = []
    let checkpoint = 0
    for (const { key } of await this.listObjects().catch(err => { throw s3Error(err, 'list') })) {
      const rel = this.prefix === '' ? key : key.slice(this.prefix.length + 1)
      const m = /^([bc])\/(\d{16})$/.exec(rel)
      if (m === null) continue
      const seq = Number(m[2])
      if (m[1] === 'b') { batches.push(seq); this.objects.add(seq) } else { this.checkpoints.add(seq); checkpoint = Math.max(checkpoint, seq) }
      this.nextSeq = Math.max(this.nextSeq, seq + 1)
    }
    if (checkpoint > 0) {
      const key = checkpointKey(this.prefix, checkpoint)
      const c = decodeCheckpoint(await this.get(key), key)
      for (const [k, v] of c.meta) this.meta.set(k, fromBase64(v))
      for (const [stream, refs] of c.streams) {
        const list = refs.map(([base, last, seq, pos, len, crc]) => ({ stream, base, last, seq, pos, len, crc }))
        this.streams.set(stream, list)
        for (const r of list) this.live.set(r.seq, (this.live.get(r.seq) ?? 0) + 1)
      }
    }
    batches.sort((a, b) => a - b)
    for (const seq of batches) {
      if (seq <= checkpoint) continue
      const key = batchKey(this.prefix, seq)
      let head = await this.get(key, 0, HEAD_PROBE - 1)
      const len = headerLength(head, key)
      if (head.byteLength < PREAMBLE_BYTES + len) head = await this.get(key, 0, PREAMBLE_BYTES + len - 1)
      const { header, refs } = decodeHeader(head, key, seq)
      this.applyBatch(seq, refs, header.meta, header.deletes)
      this.sinceCheckpoint++
    }
    // Leftovers of a checkpoint whose clean-up was cut short.
    if (checkpoint > 0) await this.collect(checkpoint)
  }

  // ---- internals ---------------------------------------------------------------------------

  private serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => { this.ensureOpen(); return fn() })
    this.queue = run.catch(() => {})
    return run
  }

  private async writeDeletes (deletes: DeleteOp[]): Promise<void> {
    const seq = this.nextSeq++
    const { bytes } = encodeBatch({ v: 1, meta: [], deletes }, [])
    await this.put(batchKey(this.prefix, seq), bytes)
    this.applyBatch(seq, [], [], deletes)
    // Deleted data should leave the bucket soon, not at the next scheduled checkpoint.
    await this.checkpoint()
  }

  private applyBatch (seq: number, refs: ChunkRef[], meta: Array<{ k: string, v: string | null }>, deletes: DeleteOp[]): void {
    this.objects.add(seq)
    for (const r of refs) this.insert(r)
    for (const m of meta) {
      if (m.v === null) this.meta.delete(m.k)
      else this.meta.set(m.k, fromBase64(m.v))
    }
    for (const d of deletes) {
      const list = this.streams.get(d.stream)
      if (list === undefined) continue
      const keep = d.all ? [] : list.filter(r => r.last >= d.before)
      for (const r of list) if (d.all || r.last < d.before) this.unref(r)
      if (keep.length === 0) this.streams.delete(d.stream); else this.streams.set(d.stream, keep)
    }
  }

  private insert (r: ChunkRef): void {
    this.live.set(r.seq, (this.live.get(r.seq) ?? 0) + 1)
    let list = this.streams.get(r.stream)
    if (list === undefined) { list = []; this.streams.set(r.stream, list) }
    const last = list.at(-1)
    if (last === undefined || last.base < r.base) { list.push(r); return }
    const i = lastAtOrBefore(list, r.base)
    if (i >= 0 && list[i].base === r.base) { this.unref(list[i]); list[i] = r } else list.splice(i + 1, 0, r)
  }

  private unref (r: ChunkRef): void {
    const n = (this.live.get(r.seq) ?? 1) - 1
    if (n <= 0) this.live.delete(r.seq); else this.live.set(r.seq, n)
  }

  private async maybeCheckpoint (): Promise<void> {
    if (++this.sinceCheckpoint >= this.checkpointEvery) await this.checkpoint()
  }

  /** Writes the whole index as a checkpoint, then removes what it makes unnecessary. */
  private async checkpoint (): Promise<void> {
    const seq = this.nextSeq++
    const body = encodeCheckpoint({
      v: 1,
      seq,
      meta: [...this.meta].map(([k, v]) => [k, toBase64(v)]),
      streams: [...this.streams].map(([s, refs]) => [s, refs.map(r => [r.base, r.last, r.seq, r.pos, r.len, r.crc])]),
    })
    await this.put(checkpointKey(this.prefix, seq), body)
    this.checkpoints.add(seq)
    this.sinceCheckpoint = 0
    await this.collect(seq)
  }

  /** Deletes batch objects before checkpoint `seq` that no chunk points at, and older checkpoints. Best effort. */
  private async collect (seq: number): Promise<void> {
    const keys: string[] = []
    for (const s of this.objects) if (s < seq && !this.live.has(s)) keys.push(batchKey(this.prefix, s))
    for (const s of this.checkpoints) if (s < seq) keys.push(checkpointKey(this.prefix, s))
    for (let i = 0; i < keys.length; i += 1000) {
      const page = keys.slice(i, i + 1000)
      try {
        await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: page.map(Key => ({ Key })), Quiet: true } }))
      } catch {
        return // left for the next checkpoint: nothing depends on these objects any more
      }
      for (const k of page) {
        const n = Number(k.slice(-16))
        if (k.slice(-18, -17) === 'c') this.checkpoints.delete(n); else this.objects.delete(n)
      }
    }
  }

  /** PUT with the body's CRC32, then HEAD: resolves only for an object that is there whole. */
  private async put (key: string, body: Uint8Array): Promise<void> {
    // A multipart upload is checked part by part (each part's MD5). A single PUT carries the body's CRC32: zlib's is
    // native and some 20x faster than MD5, which cost the node 3-4% of its ingest CPU with offload on.
    const multipart = body.byteLength > MULTIPART_THRESHOLD
    const crc = multipart ? undefined : crc32Base64(body)
    try {
      if (multipart) await this.putParts(key, body)
      else await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.byteLength, ChecksumCRC32: crc }))
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: 'ENABLED' }))
      // S3 verified the CRC32 on the way in; the HEAD shows the object is there, whole, with the checksum we sent.
      if (head.ContentLength !== body.byteLength || (crc !== undefined && head.ChecksumCRC32 !== undefined && head.ChecksumCRC32 !== crc)) {
        throw new GemError('CORRUPT_RECORD', `S3 object ${key} did not verify after upload (length ${head.ContentLength} of ${body.byteLength}, crc32 ${head.ChecksumCRC32} of ${crc})`)
      }
    } catch (err) {
      throw s3Error(err, `put ${key}`)
    }
  }

  /** A multipart upload, each part with its MD5; an upload that fails is aborted (no half object ever appears). */
  private async putParts (key: string, body: Uint8Array): Promise<{ ETag?: string }> {
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }))
    try {
      const parts: Array<{ ETag: string, PartNumber: number }> = []
      for (let at = 0, n = 1; at < body.byteLength; at += PART_BYTES, n++) {
        const part = body.subarray(at, Math.min(at + PART_BYTES, body.byteLength))
        const r = await this.client.send(new UploadPartCommand({
          Bucket: this.bucket, Key: key, UploadId, PartNumber: n, Body: part, ContentLength: part.byteLength,
          ContentMD5: createHash('md5').update(part).digest('base64'),
        }))
        parts.push({ ETag: r.ETag!, PartNumber: n })
      }
      return await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }))
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId })).catch(() => {})
      throw err
    }
  }

  private async get (key: string, start?: number, end?: number): Promise<Uint8Array> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(start !== undefined ? { Range: `bytes=${start}-${end}` } : {}) }))
      return await r.Body!.transformToByteArray()
    } catch (err) {
      throw s3Error(err, `get ${key}`)
    }
  }

  /** The chunks of `refs`, one ranged GET per run of adjacent chunks of one object, CRC-checked. */
  private async fetch (refs: ChunkRef[]): Promise<StoredChunk[]> {
    const runs: ChunkRef[][] = []
    for (const r of refs) {
      const run = runs.at(-1)
      const prev = run?.at(-1)
      if (run !== undefined && prev !== undefined && prev.seq === r.seq && prev.pos + prev.len === r.pos) run.push(r); else runs.push([r])
    }
    const out = new Array<StoredChunk[]>(runs.length)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < runs.length) {
        const i = next++
        const run = runs[i]
        const start = run[0].pos
        const end = run[run.length - 1].pos + run[run.length - 1].len
        const key = batchKey(this.prefix, run[0].seq)
        const bytes = await this.get(key, start, end - 1)
        if (bytes.byteLength !== end - start) throw new GemError('CORRUPT_RECORD', `S3 object ${key}: range ${start}-${end - 1} came back with ${bytes.byteLength} bytes`)
        out[i] = run.map(r => {
          const data = bytes.slice(r.pos - start, r.pos - start + r.len)
          if (crc32c(data) !== r.crc) throw new GemError('CORRUPT_RECORD', `S3 object ${key}: chunk ${r.stream}@${r.base} fails its checksum`)
          return { stream: r.stream, baseOffset: r.base, lastOffset: r.last, data }
        })
      }
    }
    await Promise.all(Array.from({ length: Math.min(GET_PARALLEL, runs.length) }, worker))
    return out.flat()
  }

  private ensureOpen (): void {
    if (this.closed) throw new GemError('CLOSED', `S3 tier s3://${this.bucket}/${this.prefix} is closed`)
  }
}

function batchKey (prefix: string, seq: number): string { return (prefix === '' ? '' : prefix + '/') + 'b/' + pad(seq) }
function checkpointKey (prefix: string, seq: number): string { return (prefix === '' ? '' : prefix + '/') + 'c/' + pad(seq) }

/** Index of the last ref whose base <= offset, or -1. */
function lastAtOrBefore (refs: ChunkRef[], offset: number): number {
  let lo = 0
  let hi = refs.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (refs[mid].base <= offset) lo = mid + 1; else hi = mid - 1
  }
  return hi
}

function offsetArg (n: number, what: string): number {
  if (typeof n !== 'number' || Number.isNaN(n)) throw new GemError('BAD_REQUEST', `${what} must be a number, not ${String(n)}`)
  return Math.min(Math.max(0, Math.ceil(n)), OFFSET_LIMIT)
}


/** S3 failures as GemErrors: ours pass through, the rest (network, 5xx, auth) are UNAVAILABLE naming the operation. */
function s3Error (err: unknown, op: string): GemError {
  if (err instanceof GemError) return err
  const e = err as { name?: string, message?: string, $metadata?: { httpStatusCode?: number } }
  const status = e?.$metadata?.httpStatusCode
  return new GemError('UNAVAILABLE', `S3 ${op} failed: ${e?.name ?? 'Error'}${status !== undefined ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(err)}`, { s3Error: e?.name, httpStatus: status })
}

/** CRC32 (IEEE) of `body` as S3's x-amz-checksum-crc32 wants it: the big-endian 4 bytes in base64. */
function crc32Base64 (body: Uint8Array): string {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(zlibCrc32(body) >>> 0)
  return b.toString('base64')
}
