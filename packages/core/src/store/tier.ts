// The storage-tier contract: a durable chunk store plus small metadata, per stream (topic/partition).
// Every tier (memory, LevelDB, IndexedDB, S3) implements it and passes store/conformance.ts.

/**
 * A chunk is the unit of writing: the encoded records one group commit appended to one stream.
 * Offsets inside a chunk are dense: baseOffset .. lastOffset.
 */
export interface StoredChunk {
  /** `${topic}/${partition}`; see streamId(). */
  stream: string
  baseOffset: number
  lastOffset: number
  /** Concatenated record frames (codec.ts). The tier treats them as opaque bytes. */
  data: Uint8Array
  /**
   * CRC32C of `data`, when the writer has already computed it (the tier chain does, for the offload manifest): a tier
   * that stores a checksum per chunk takes this one instead of hashing the bytes again. Tiers never return it.
   */
  crc32c?: number
}

export interface MetaWrite {
  key: string
  /** null deletes the key. */
  value: Uint8Array | null
}

export interface TierWriteBatch {
  chunks: StoredChunk[]
  meta: MetaWrite[]
  /**
   * false: the caller does not need this batch to survive power loss (it is durable elsewhere, e.g. a replica
   * log it can be rebuilt from), so a tier may skip its fsync. It stays atomic and ordered before later writes.
   */
  sync?: boolean
}

export interface StorageTier {
  /** A short name for logs and metrics: 'memory', 'leveldb', 'indexeddb', 's3'. */
  readonly name: string
  /**
   * Applies the whole batch atomically: after a crash either all of it is visible or none.
   * Resolves only when the batch is as durable as the tier promises (LevelDB: fsync'd by default).
   */
  write(batch: TierWriteBatch): Promise<void>
  /**
   * Chunks of `stream` in offset order, starting with the chunk that contains `fromOffset`
   * (or the first chunk after it), continuing while the total data is below `maxBytes`.
   * At least one chunk is returned when any chunk has lastOffset >= fromOffset.
   */
  readChunks(stream: string, fromOffset: number, maxBytes: number): Promise<StoredChunk[]>
  /** The chunk with the highest offsets in `stream`, if any. */
  lastChunk(stream: string): Promise<StoredChunk | undefined>
  /** Deletes every chunk of `stream` whose lastOffset < beforeOffset (whole chunks only). */
  deleteChunksBefore(stream: string, beforeOffset: number): Promise<void>
  /**
   * Optional: deletes the chunks of `stream` that start at `baseOffsets`; other offsets are ignored. For a caller that
   * knows where its chunks start: a tier that must scan to serve deleteChunksBefore (LevelDB reads every block of the
   * range, and keeps those pages resident) deletes by key instead.
   */
  deleteChunks?(stream: string, baseOffsets: number[]): Promise<void>
  /** Deletes every chunk of `stream`. */
  deleteStream(stream: string): Promise<void>
  getMeta(key: string): Promise<Uint8Array | undefined>
  /** Every metadata entry whose key starts with `prefix`, in key order. */
  listMeta(prefix: string): Promise<Array<[string, Uint8Array]>>
  close(): Promise<void>
}

export function streamId (topic: string, partition: number): string {
  return `${topic}/${partition}`
}
