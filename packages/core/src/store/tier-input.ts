// What every StorageTier refuses before it changes anything: malformed chunks and metadata writes (BAD_REQUEST).
// One check for all tiers, so that they refuse the same batches with the same messages.
import { GemError } from '../errors.ts'
import type { StoredChunk, TierWriteBatch } from './tier.ts'

export function checkChunk (c: StoredChunk): void {
  if (typeof c.stream !== 'string' || c.stream === '') throw new GemError('BAD_REQUEST', 'chunk stream must be a non-empty string')
  if (!Number.isSafeInteger(c.baseOffset) || !Number.isSafeInteger(c.lastOffset) || c.baseOffset < 0 || c.lastOffset < c.baseOffset) {
    throw new GemError('BAD_REQUEST', `chunk ${c.stream}: offsets ${c.baseOffset}..${c.lastOffset} are not a range of offsets in [0, 2^53)`)
  }
  if (!(c.data instanceof Uint8Array)) throw new GemError('BAD_REQUEST', `chunk ${c.stream}@${c.baseOffset}: data must be a Uint8Array`)
}

/** Throws BAD_REQUEST for the first malformed chunk or metadata write of `batch`. */
export function checkBatch (batch: TierWriteBatch): void {
  for (const c of batch.chunks) checkChunk(c)
  for (const m of batch.meta) {
    if (typeof m.key !== 'string') throw new GemError('BAD_REQUEST', 'metadata key must be a string')
    if (m.value !== null && !(m.value instanceof Uint8Array)) throw new GemError('BAD_REQUEST', `metadata ${m.key}: value must be a Uint8Array or null`)
  }
}
