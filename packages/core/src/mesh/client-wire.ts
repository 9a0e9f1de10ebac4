// The wire of `/gem/1/client` (edge peers, e.g. browsers, talking to a server node) and of `/gem/1/feed`
// (a browser relaying its live deliveries to another): protocol ids and the batched delivery frames. Pure, no I/O.
import { decodeRecord, encodeRecord } from '../codec.ts'
import { GemError } from '../errors.ts'
import type { GemErrorCode } from '../errors.ts'
import { decodeHeadBody, encodeHeadBody } from '../head-body.ts'
import type { GemRecord } from '../message.ts'

/** Requests from an edge peer to the server node it is attached to (publish, subscribe, settle, topics, read). */
export const CLIENT_PROTOCOL = '/gem/1/client'
/** One-way frames from the server node to the edge peer: batches of deliveries for one subscription. */
export const CLIENT_DELIVER_PROTOCOL = '/gem/1/client-deliver'
/**
 * A browser asks another browser for its live deliveries of a topic (`feed`), then long-polls for them (`next`: each
 * answer is a delivery batch) on the same stream, and ends with `stop`.
 */
export const FEED_PROTOCOL = '/gem/1/feed'

/** One delivery without its record: the settle tag ('' for tail subscriptions, which take no acks) and the attempt. */
export interface WireDelivery {
  tag: string
  attempt: number
  record: GemRecord
}

export interface DeliveryBatch {
  /** The subscription id the edge peer chose (client-deliver) or the topic (a feed's answers). */
  sid: string
  deliveries: WireDelivery[]
  /** Set when the server ended the subscription (topic deleted, ...): no more batches follow. */
  end?: { code: GemErrorCode, message: string }
}

interface BatchHead { sid: string, d: Array<[tag: string, attempt: number, size: number]>, end?: { code: GemErrorCode, message: string } }

/** One frame for many deliveries: the tags and sizes in a JSON head, the encoded records back to back. */
export function encodeDeliveryBatch (batch: DeliveryBatch): Uint8Array {
  const records = batch.deliveries.map(d => encodeRecord(d.record))
  const head: BatchHead = { sid: batch.sid, d: batch.deliveries.map((d, i) => [d.tag, d.attempt, records[i].byteLength]) }
  if (batch.end !== undefined) head.end = batch.end
  return encodeHeadBody(head, records)
}

/** Parses a delivery frame; every record's checksum is verified (CORRUPT_RECORD), every length bounded (BAD_REQUEST). */
export function decodeDeliveryBatch (frame: Uint8Array): DeliveryBatch {
  const { head: h, body } = decodeHeadBody(frame, 'delivery batch')
  const head = h as Partial<BatchHead> | null
  if (typeof head !== 'object' || head === null || typeof head.sid !== 'string' || !Array.isArray(head.d)) {
    throw new GemError('BAD_REQUEST', 'delivery batch: expected {sid, d: [...]}')
  }
  let at = 0
  const deliveries: WireDelivery[] = []
  for (const entry of head.d) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !Number.isInteger(entry[1]) || !Number.isInteger(entry[2]) || entry[2] < 0) {
      throw new GemError('BAD_REQUEST', 'delivery batch: each entry is [tag, attempt, size]')
    }
    const size = entry[2]
    if (at + size > body.byteLength) throw new GemError('BAD_REQUEST', 'delivery batch: record sizes run past the frame')
    deliveries.push({ tag: entry[0], attempt: entry[1], record: decodeRecord(body.subarray(at, at + size)) })
    at += size
  }
  const out: DeliveryBatch = { sid: head.sid, deliveries }
  if (head.end !== undefined) {
    const e = head.end as { code?: unknown, message?: unknown }
    out.end = { code: (typeof e.code === 'string' ? e.code : 'INTERNAL') as GemErrorCode, message: typeof e.message === 'string' ? e.message : '' }
  }
  return out
}

/** Records as one frame (read answers): a JSON head with `next` and the sizes, then the records. */
export function encodeRecordsFrame (next: number, records: readonly GemRecord[]): Uint8Array {
  const encoded = records.map(r => encodeRecord(r))
  return encodeHeadBody({ next, sizes: encoded.map(e => e.byteLength) }, encoded)
}

export function decodeRecordsFrame (frame: Uint8Array): { next: number, records: GemRecord[] } {
  const { head: h, body } = decodeHeadBody(frame, 'records')
  const head = h as { next?: unknown, sizes?: unknown } | null
  if (typeof head !== 'object' || head === null || !Number.isInteger(head.next) || !Array.isArray(head.sizes)) {
    throw new GemError('BAD_REQUEST', 'records: expected {next, sizes}')
  }
  let at = 0
  const records: GemRecord[] = []
  for (const size of head.sizes as unknown[]) {
    if (!Number.isInteger(size) || (size as number) < 0 || at + (size as number) > body.byteLength) throw new GemError('BAD_REQUEST', 'records: bad size')
    records.push(decodeRecord(body.subarray(at, at + (size as number))))
    at += size as number
  }
  return { next: head.next as number, records }
}

export { encodeHeadBody, decodeHeadBody } from '../head-body.ts'
