// Ring hashing: SHA-256 of a string mapped to a 32-bit ring position, and a node's virtual-node positions.
// Pure and synchronous (noble's SHA-256 runs the same in every runtime); it never caches or does I/O.
import { sha256 } from '@noble/hashes/sha2.js'

// Why 32-bit positions rather than 52: a position and a node index (< 2^20) pack into one safe integer,
// so the whole ring sorts with the native Float64Array sort and ties break by node id for free. At
// 2^32 slots the ring's resolution is ~7000 times finer than the arc of one vnode in a 1000-node,
// 600k-vnode ring, so the coarser position costs no balance. Keys that collide share a placement.

const encoder = new TextEncoder()
// Scratch for UTF-8 bytes: encodeInto a reused buffer is ~2x cheaper than encode() per call, and hashing is
// synchronous, so one module-wide buffer is never shared by two callers at once.
let scratch = new Uint8Array(256)

function digest (s: string): Uint8Array {
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(s.length * 3)
  const { written } = encoder.encodeInto(s, scratch)
  return sha256(scratch.subarray(0, written))
}

/** The ring position of a string: the first 32 bits (big-endian) of SHA-256(UTF-8(s)), unsigned. */
export function hashKey (s: string): number {
  const d = digest(s)
  return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0
}

/**
 * The first `count` virtual-node positions of node `id`. Each SHA-256 digest of `id \0 block` yields
 * eight positions, so a weight-1 node at 256 vnodes costs 32 hashes. The list for a larger count
 * extends the list for a smaller one, so raising a node's weight only adds vnodes (minimal movement).
 * Unsorted; the caller sorts the merged ring.
 */
export function vnodePositions (id: string, count: number): Uint32Array {
  const out = new Uint32Array(count)
  for (let block = 0, i = 0; i < count; block++) {
    // The last NUL splits id from the decimal block number, so (id, block) -> string is injective.
    const d = digest(`${id}\u0000${block}`)
    for (let w = 0; w < 32 && i < count; w += 4, i++) {
      out[i] = ((d[w] << 24) | (d[w + 1] << 16) | (d[w + 2] << 8) | d[w + 3]) >>> 0
    }
  }
  return out
}
