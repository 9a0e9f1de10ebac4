// The message model: what a producer hands in, what the log stores and what a consumer receives.
// The binary form of a stored record lives in codec.ts.

/** A record as stored in a partition log. */
export interface GemRecord {
  /** Producer-chosen (for idempotent publish) or generated. */
  id: string
  topic: string
  key?: string
  partition: number
  /** Dense per-partition offset, starting at 0. */
  offset: number
  payload: Uint8Array
  headers: Record<string, string>
  /** 1 (lowest) to 10 (highest); 5 when not given. */
  priority: number
  /** Milliseconds since the Unix epoch, set by the node that accepted the publish. */
  timestamp: number
  producerId?: string
  sequence?: number
  /** Time to live in milliseconds after `timestamp`; 0 means forever. */
  ttl: number
  /** How many times this record had been delivered before it was written (non-zero for dead letters). */
  attempt: number
}

/** What a caller passes to publish. */
export interface PublishInput {
  payload: Uint8Array
  id?: string
  key?: string
  headers?: Record<string, string>
  priority?: number
  /** Force a partition instead of hashing the key. */
  partition?: number
  producerId?: string
  sequence?: number
  ttl?: number
}

/** The acknowledgement of a durable publish. */
export interface PublishResult {
  id: string
  partition: number
  offset: number
  /** True when the id was already in the dedup window and nothing new was stored. */
  duplicate: boolean
}

export const DEFAULT_PRIORITY = 5
/** Stored records larger than this are refused with PAYLOAD_TOO_LARGE. */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024

/** The record a publish becomes, before the log gives it an offset and a timestamp. */
export function toRecord (topic: string, input: PublishInput, id: string, partition: number): GemRecord {
  return {
    id,
    topic,
    key: input.key,
    partition,
    offset: -1,
    payload: input.payload,
    headers: input.headers ?? {},
    priority: input.priority ?? DEFAULT_PRIORITY,
    timestamp: 0,
    producerId: input.producerId,
    sequence: input.sequence,
    ttl: input.ttl ?? 0,
    attempt: 0,
  }
}

/** The partition of a keyed publish: FNV-1a over UTF-16 code units, stable on every runtime, the same on every node. */
export function partitionOfKey (key: string, partitions: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % partitions
}
