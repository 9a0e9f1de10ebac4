// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of every stored record frame.
// Pure table-driven arithmetic on Uint8Array; it never allocates after the tables are built.

// Why our own: core must run unchanged in browsers, Deno, Bun and Node, and this runs on every record
// written and read. Native packages (@node-rs/crc32, fast-crc32c, sse4_crc32) are Node-only. SheetJS's
// `crc-32` ships a pure-JS `crc32c.js`, but its npm release (1.2.2, 2022) is a CommonJS/UMD script
// that writes module.exports, returns signed integers, and newer releases are only on SheetJS's own
// CDN. Slicing-by-8 below is ~30 lines, ESM, and measured at 1.2-1.5 GB/s on Node 24.

const POLY = 0x82F63B78

// Eight 256-entry tables: T0 is the classic byte table; Tk advances a byte through k more zero bytes,
// which lets the main loop fold 8 input bytes per iteration. Built on first use, never rebuilt.
let T0: Int32Array, T1: Int32Array, T2: Int32Array, T3: Int32Array
let T4: Int32Array, T5: Int32Array, T6: Int32Array, T7: Int32Array
let built = false

function buildTables (): void {
  const t = new Int32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ POLY : c >>> 1
    t[n] = c
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]
    for (let k = 1; k < 8; k++) {
      c = t[c & 255] ^ (c >>> 8)
      t[k * 256 + n] = c
    }
  }
  T0 = t.subarray(0, 256); T1 = t.subarray(256, 512); T2 = t.subarray(512, 768); T3 = t.subarray(768, 1024)
  T4 = t.subarray(1024, 1280); T5 = t.subarray(1280, 1536); T6 = t.subarray(1536, 1792); T7 = t.subarray(1792, 2048)
  built = true
}

/**
 * CRC32C of bytes[start, end). `seed` is the CRC of the bytes that came before, so
 * crc32cRange(ab, 0, n) === crc32cRange(ab, k, n, crc32cRange(ab, 0, k)). Returns an unsigned 32-bit integer.
 */
export function crc32cRange (bytes: Uint8Array, start: number, end: number, seed = 0): number {
  if (!built) buildTables()
  const t0 = T0, t1 = T1, t2 = T2, t3 = T3, t4 = T4, t5 = T5, t6 = T6, t7 = T7
  let c = ~seed
  let i = start
  const end8 = end - ((end - start) & 7)
  while (i < end8) {
    c ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)
    c = t7[c & 255] ^ t6[(c >>> 8) & 255] ^ t5[(c >>> 16) & 255] ^ t4[c >>> 24] ^
      t3[bytes[i + 4]] ^ t2[bytes[i + 5]] ^ t1[bytes[i + 6]] ^ t0[bytes[i + 7]]
    i += 8
  }
  while (i < end) c = t0[(c ^ bytes[i++]) & 255] ^ (c >>> 8)
  return ~c >>> 0
}

/** CRC32C of all of `bytes`, continuing from `seed` (the CRC of preceding bytes; 0 to start). Unsigned. */
export function crc32c (bytes: Uint8Array, seed = 0): number {
  return crc32cRange(bytes, 0, bytes.length, seed)
}
