// TieredStore: the tier chain under a broker: a local tier (LevelDB, IndexedDB) in front of an optional remote one (S3).
// Sealed segments are copied to the remote and verified, then evicted locally to stay in a byte budget; reads fall through.
//
// It is itself a StorageTier, so the broker does not know it is there. It learns the partition logs' segments from
// the segment manifests (log/segment.ts) that ride in every write, and keeps its own state in the local tier's
// metadata under `~tier/` (hidden from listMeta):
//   ~tier/o/<stream>/<base>  the segment is in the remote, complete and verified (its offload manifest)
//   ~tier/d/<stream>         a remote delete (retention, topic deletion) still to be done
// Offload of one segment: read it locally -> one remote write (the segment object with its manifest, which the remote
// verifies) -> the offload manifest, durably, in the local tier -> only then may the local copy go. A crash at any
// step leaves the local segment, or the verified object with the local manifest; redoing a step is harmless.
import type { Clock, TimerHandle } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { crc32c } from '../crc32c.ts'
import { GemError } from '../errors.ts'
import { ColdReadCache } from './cold-read-cache.ts'
import type { MetaWrite, StorageTier, StoredChunk, TierWriteBatch } from './tier.ts'

export interface TierChainObserver {
  offloaded?(stream: string, bytes: number, records: number, ms: number): void
  evicted?(stream: string, bytes: number): void
  /** A remote operation failed; the chain is degraded and retries in `retryInMs`. */
  remoteFailed?(op: string, err: unknown, retryInMs: number): void
  remoteRecovered?(downMs: number): void
  /** A write was refused with STORAGE_FULL. */
  refused?(bytes: number): void
  coldRead?(hit: boolean, bytes: number): void
  error?(where: string, err: unknown): void
}

export interface TieredStoreOptions {
  local: StorageTier
  /** Where sealed segments go (S3). Without it the chain is the local tier plus the byte budget. */
  remote?: StorageTier
  /** Byte budget of segment data in the local tier; 0 = none. Default 0. */
  localBytes?: number
  /** Bytes of recent cold reads kept in memory. Default 32 MiB. */
  coldCacheBytes?: number
  /** Least a remote read fetches, so that small sequential reads do not each become a request. Default 4 MiB. */
  readAheadBytes?: number
  /**
   * Bytes of chunks written lately that are kept in memory until they are offloaded, so that an offload need not read
   * them back from the local tier. Default 24 MiB; 0 reads every offload back.
   */
  offloadCacheBytes?: number
  clock?: Clock
  /** First and longest wait before a failed remote operation is tried again. Default 500 ms and 30 s. */
  retryMinMs?: number
  retryMaxMs?: number
  /** Tells whether the remote answers again, when there is no backlog to prove it (e.g. S3 HeadBucket). */
  probeRemote?: () => Promise<void>
  observer?: TierChainObserver
  /** Close the local and remote tiers with the chain. Default true. */
  ownsTiers?: boolean
}

export interface TierChainStatus {
  local: { tier: string, bytes: number, budgetBytes: number, pinnedBytes: number, evictableBytes: number }
  remote: {
    tier: string
    state: 'ok' | 'degraded' | 'none'
    degradedSince?: number
    lastError?: string
    /** Sealed segments not yet offloaded, and their bytes. */
    backlogSegments: number
    backlogBytes: number
    offloadedSegments: number
    pendingDeletes: number
  }
}

interface Seg {
  base: number
  last: number
  bytes: number
  lastTs: number
  /** A complete, verified copy is in the remote. */
  offloaded: boolean
  /** The local tier still holds its chunks. */
  local: boolean
  /** The local chunks did not add up to the manifest; never offloaded (reported once). */
  broken?: boolean
}

type PendingDelete = { all: true } | { all: false, before: number }

interface StreamState {
  stream: string
  /** By base, ascending; the last one is the open segment, every other one is sealed. */
  segs: Seg[]
  /** Bumped by deletes: an offload that started before one must not record its result. */
  gen: number
  /** One past the highest offset ever offloaded: 0 means the remote holds nothing of this stream. */
  remoteHigh: number
  pendingDelete?: PendingDelete
  /** Chunks written lately and not offloaded yet, contiguous, oldest first (see offloadCacheBytes). */
  recent: StoredChunk[]
  /**
   * Where the local chunks from `basesFrom` on start, ascending (every one written since the chain opened): an
   * eviction deletes them by key (StorageTier.deleteChunks) instead of a scan. Kept only with a remote and a budget.
   */
  bases: number[]
  basesFrom: number
}

/** The segment object's manifest, stored with it in the remote and as the offload record locally. */
export interface OffloadManifest {
  topic: string
  partition: number
  base: number
  last: number
  count: number
  bytes: number
  chunks: Array<{ base: number, last: number, bytes: number, crc32c: number }>
  offloadedAt: number
}

const INTERNAL = '~tier/'
const OFFLOAD_PREFIX = INTERNAL + 'o/'
const DELETE_PREFIX = INTERNAL + 'd/'
/** Remote metadata: one manifest per segment object. */
export const REMOTE_SEGMENT_PREFIX = 'segment/'
const SEG_PREFIX = 'seg/'
/** How long a write waits for a healthy remote to make room before it is refused with STORAGE_FULL. */
const ROOM_WAIT_MS = 5_000
const MiB = 1024 * 1024
/** A segment goes to the remote in objects of about this size (S3 stand-ins cap a single PUT near 11 MiB). */
const OFFLOAD_PART_BYTES = 8 * MiB
const te = new TextEncoder()
const td = new TextDecoder()

export class TieredStore implements StorageTier {
  readonly name: string
  readonly local: StorageTier
  readonly remote: StorageTier | undefined
  private readonly budget: number
  private readonly readAhead: number
  private readonly clock: Clock
  private readonly observer: TierChainObserver
  private readonly opts: TieredStoreOptions
  private readonly cache: ColdReadCache
  private readonly recentLimit: number
  private readonly tracksBases: boolean
  /** Bytes in every stream's `recent`, bounded by recentLimit. */
  private recentBytes = 0
  private readonly streams = new Map<string, StreamState>()
  /** Segment bytes held locally, and the part of them that is offloaded (may be evicted). */
  private localBytes = 0
  private evictable = 0
  /** Counts evictions, so that a read that overlapped one can tell. */
  private evictions = 0
  /** Offload manifests whose segment is gone (retention): deleted from the local tier by the pump. */
  private stale: string[] = []
  private pumping: Promise<void> | undefined
  private again = false
  private retryTimer: TimerHandle | undefined
  private failures = 0
  private degradedSince: number | undefined
  private lastError: string | undefined
  private closed = false

  private constructor (opts: TieredStoreOptions) {
    this.opts = opts
    this.local = opts.local
    this.remote = opts.remote
    this.name = opts.remote === undefined ? opts.local.name : `${opts.local.name}+${opts.remote.name}`
    this.budget = opts.localBytes ?? 0
    this.readAhead = opts.readAheadBytes ?? 4 * MiB
    this.clock = opts.clock ?? systemClock
    this.observer = opts.observer ?? {}
    this.cache = new ColdReadCache(opts.coldCacheBytes ?? 32 * MiB)
    this.recentLimit = opts.remote === undefined ? 0 : opts.offloadCacheBytes ?? 24 * MiB
    this.tracksBases = opts.remote !== undefined && this.budget > 0 && opts.local.deleteChunks !== undefined
  }

  /** Opens the chain: rebuilds the segment index from the local tier's metadata and resumes offloading. */
  static async open (opts: TieredStoreOptions): Promise<TieredStore> {
    for (const [k, v] of [['localBytes', opts.localBytes], ['coldCacheBytes', opts.coldCacheBytes], ['readAheadBytes', opts.readAheadBytes], ['offloadCacheBytes', opts.offloadCacheBytes]] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new GemError('BAD_REQUEST', `${k} must be a non-negative integer`)
    }
    const s = new TieredStore(opts)
    await s.recover()
    s.kick()
    return s
  }

  // ---- StorageTier -------------------------------------------------------------------------

  async write (batch: TierWriteBatch): Promise<void> {
    this.ensureOpen()
    if (this.budget > 0 && batch.chunks.length > 0) {
      let incoming = 0
      for (const c of batch.chunks) incoming += c.data?.byteLength ?? 0
      // A healthy remote that is merely behind is waited for (flow control), a little while; some room is always
      // granted to an empty budget, so one batch larger than the budget still goes in.
      const full = (): boolean => this.localBytes - this.evictable > 0 && this.localBytes - this.evictable + incoming > this.budget
      const until = this.clock.now() + ROOM_WAIT_MS
      while (full() && this.remote !== undefined && this.degradedSince === undefined && this.clock.now() < until && !this.closed) {
        this.kick()
        const pump = this.pumping
        if (pump === undefined) break
        await pump
        if (this.nextOffload() === undefined && full()) break
      }
      const pinned = this.localBytes - this.evictable
      // Truly full: what cannot be evicted fills the budget. Short of that one batch may overshoot it (a group commit
      // is at most a few MiB), rather than refuse a replica's apply batch that happens to be large.
      if (full() && pinned >= this.budget) {
        this.call(o => o.refused?.(incoming))
        this.kick()
        throw new GemError('STORAGE_FULL', `the local tier holds ${pinned} bytes not yet offloaded${this.degradedSince !== undefined ? ' (the remote tier is unreachable)' : ''}; its budget is ${this.budget} bytes: retry later`)
      }
    }
    await this.local.write(batch)
    if (this.recentLimit > 0) for (const c of batch.chunks) this.remember(c)
    if (this.tracksBases) {
      for (const c of batch.chunks) {
        const st = this.state(c.stream)
        if (st.bases.length === 0 && st.basesFrom === Number.POSITIVE_INFINITY) st.basesFrom = c.baseOffset
        if (c.baseOffset >= st.basesFrom && (st.bases.length === 0 || c.baseOffset > st.bases[st.bases.length - 1])) st.bases.push(c.baseOffset)
      }
    }
    let sealed = false
    for (const m of batch.meta) if (this.noteMeta(m)) sealed = true
    if (sealed || (this.budget > 0 && this.localBytes > this.budget)) this.kick()
  }

  async readChunks (stream: string, fromOffset: number, maxBytes: number): Promise<StoredChunk[]> {
    this.ensureOpen()
    for (let attempt = 1; ; attempt++) {
      const evictions = this.evictions
      const out = await this.readOnce(stream, fromOffset, maxBytes)
      // An eviction during the read may have deleted local chunks it was about to read (it would see a gap): again.
      if (this.evictions === evictions || attempt >= 3) return out
    }
  }

  private async readOnce (stream: string, fromOffset: number, maxBytes: number): Promise<StoredChunk[]> {
    const st = this.streams.get(stream)
    const localFirst = st === undefined ? 0 : firstLocal(st)
    if (this.remote === undefined || st === undefined || !(fromOffset < localFirst)) return this.local.readChunks(stream, fromOffset, maxBytes)
    const out: StoredChunk[] = []
    let bytes = 0
    let cursor = Math.max(0, Math.ceil(fromOffset))
    while (cursor < localFirst) {
      let chunks = this.cache.get(stream, cursor, maxBytes - bytes)
      const hit = chunks !== undefined
      if (chunks === undefined) {
        chunks = await this.remote.readChunks(stream, cursor, Math.max(maxBytes - bytes, this.readAhead))
        this.cache.put(stream, chunks.filter(c => c.baseOffset < localFirst))
      }
      let took = 0
      for (const c of chunks) {
        if (c.lastOffset < cursor) continue
        // After the first, only chunks that continue from the cursor: an older copy left by an interrupted offload may overlap.
        if (c.baseOffset < cursor && out.length > 0) continue
        if (c.baseOffset >= localFirst) break
        out.push(c)
        took++
        bytes += c.data.byteLength
        cursor = c.lastOffset + 1
        if (bytes >= maxBytes) break
      }
      this.call(o => o.coldRead?.(hit, bytes))
      if (bytes >= maxBytes && out.length > 0) return out
      if (took === 0) break
    }
    const rest = await this.local.readChunks(stream, Math.max(cursor, localFirst), out.length === 0 ? maxBytes : maxBytes - bytes)
    for (const c of rest) out.push(c)
    return out
  }

  async lastChunk (stream: string): Promise<StoredChunk | undefined> {
    this.ensureOpen()
    const c = await this.local.lastChunk(stream)
    if (c !== undefined || this.remote === undefined || (this.streams.get(stream)?.remoteHigh ?? 0) === 0) return c
    return this.remote.lastChunk(stream)
  }

  async deleteChunksBefore (stream: string, beforeOffset: number): Promise<void> {
    this.ensureOpen()
    await this.local.deleteChunksBefore(stream, beforeOffset)
    this.cache.dropStream(stream, beforeOffset)
    const st = this.streams.get(stream)
    if (st !== undefined) {
      this.trimRecent(st, beforeOffset)
      // A chunk is gone once the next one starts at or below the boundary (one that straddles it stays).
      let n = 0
      while (n + 1 < st.bases.length && st.bases[n + 1] <= beforeOffset) n++
      st.bases.splice(0, n)
    }
    if (this.remote === undefined || st === undefined || (st.remoteHigh === 0 && st.pendingDelete === undefined)) return
    await this.remoteDelete(st, { all: false, before: beforeOffset })
  }

  async deleteStream (stream: string): Promise<void> {
    this.ensureOpen()
    const st = this.streams.get(stream)
    if (st !== undefined) {
      st.gen++
      for (const s of st.segs) this.forget(s)
      st.segs = []
      this.dropRecent(st, st.recent.length)
      // Nothing of the stream is left locally, so from here on every chunk written is known.
      st.bases = []
      st.basesFrom = 0
    }
    await this.local.deleteStream(stream)
    this.cache.dropStream(stream)
    const offloads = await this.local.listMeta(offloadPrefix(stream))
    if (offloads.length > 0) await this.local.write({ chunks: [], meta: offloads.map(([key]) => ({ key, value: null })) })
    if (this.remote === undefined || st === undefined || (st.remoteHigh === 0 && st.pendingDelete === undefined)) return
    await this.remoteDelete(st, { all: true })
  }

  getMeta (key: string): Promise<Uint8Array | undefined> {
    this.ensureOpen()
    return this.local.getMeta(key)
  }

  async listMeta (prefix: string): Promise<Array<[string, Uint8Array]>> {
    this.ensureOpen()
    const entries = await this.local.listMeta(prefix)
    return INTERNAL.startsWith(prefix) || prefix.startsWith(INTERNAL) ? entries.filter(([k]) => !k.startsWith(INTERNAL)) : entries
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.retryTimer !== undefined) this.clock.clearTimer(this.retryTimer)
    this.retryTimer = undefined
    await this.pumping?.catch(() => {})
    this.cache.clear()
    if (this.opts.ownsTiers !== false) {
      await this.local.close()
      await this.remote?.close()
    }
  }

  // ---- status ------------------------------------------------------------------------------

  status (): TierChainStatus {
    let backlogSegments = 0
    let backlogBytes = 0
    let offloadedSegments = 0
    let pendingDeletes = 0
    for (const st of this.streams.values()) {
      if (st.pendingDelete !== undefined) pendingDeletes++
      for (let i = 0; i < st.segs.length; i++) {
        const s = st.segs[i]
        if (s.offloaded) offloadedSegments++
        else if (i < st.segs.length - 1 && s.broken !== true) { backlogSegments++; backlogBytes += s.bytes }
      }
    }
    return {
      local: { tier: this.local.name, bytes: this.localBytes, budgetBytes: this.budget, pinnedBytes: this.localBytes - this.evictable, evictableBytes: this.evictable },
      remote: {
        tier: this.remote?.name ?? 'none',
        state: this.remote === undefined ? 'none' : this.degradedSince !== undefined ? 'degraded' : 'ok',
        ...(this.degradedSince !== undefined ? { degradedSince: this.degradedSince } : {}),
        ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
        backlogSegments,
        backlogBytes,
        offloadedSegments,
        pendingDeletes,
      },
    }
  }

  /** Resolves once every sealed segment is offloaded and the local budget is kept (or the remote fails). For tests and tools. */
  async settle (): Promise<void> {
    for (let i = 0; i < 1000 && !this.closed; i++) {
      this.kick()
      await this.pumping
      const s = this.status()
      if (s.remote.state !== 'ok' || (s.remote.backlogSegments === 0 && s.remote.pendingDeletes === 0 && (this.budget === 0 || this.localBytes <= this.budget || this.evictable === 0))) return
    }
  }

  // ---- the segment index -------------------------------------------------------------------

  private state (stream: string): StreamState {
    let st = this.streams.get(stream)
    if (st === undefined) {
      st = { stream, segs: [], gen: 0, remoteHigh: 0, recent: [], bases: [], basesFrom: Number.POSITIVE_INFINITY }
      this.streams.set(stream, st)
    }
    return st
  }

  // ---- chunks kept for the offload ---------------------------------------------------------

  /**
   * Keeps a chunk just written for the offload of its segment. Reading sealed segments back from LevelDB cost the
   * node its CPU and, in memory-mapped table pages and freed read buffers, some 80 MiB of resident memory per 1M
   * retained messages; the chunk is in memory anyway while it is in the log's hot tail.
   */
  private remember (c: StoredChunk): void {
    const st = this.state(c.stream)
    const last = st.recent.at(-1)
    if (last !== undefined && c.baseOffset !== last.lastOffset + 1) this.dropRecent(st, st.recent.length)
    st.recent.push({ stream: c.stream, baseOffset: c.baseOffset, lastOffset: c.lastOffset, data: c.data })
    this.recentBytes += c.data.byteLength
    while (this.recentBytes > this.recentLimit) {
      // Over the bound (a remote far behind): the oldest go first, this stream's if it has others.
      const victim = st.recent.length > 1 ? st : [...this.streams.values()].find(x => x !== st && x.recent.length > 0) ?? st
      this.dropRecent(victim, 1)
      if (victim.recent.length === 0 && victim === st) break
    }
  }

  private dropRecent (st: StreamState, count: number): void {
    for (const c of st.recent.splice(0, count)) this.recentBytes -= c.data.byteLength
  }

  /** Forgets kept chunks below `before` (offloaded, or deleted by retention). */
  private trimRecent (st: StreamState, before: number): void {
    let n = 0
    while (n < st.recent.length && st.recent[n].lastOffset < before) n++
    if (n > 0) this.dropRecent(st, n)
  }

  /** Kept chunks from `from` on, contiguous, up to about `maxBytes`; empty when `from` is not among them. */
  private keptFrom (st: StreamState, from: number, maxBytes: number): StoredChunk[] {
    const i = st.recent.findIndex(c => c.baseOffset === from)
    if (i < 0) return []
    const out: StoredChunk[] = []
    let bytes = 0
    for (let j = i; j < st.recent.length && (out.length === 0 || bytes + st.recent[j].data.byteLength <= maxBytes); j++) {
      out.push({ ...st.recent[j] })
      bytes += st.recent[j].data.byteLength
    }
    return out
  }

  /** Applies a metadata write the local tier took; true when it sealed a segment (a new one began after it). */
  private noteMeta (m: MetaWrite): boolean {
    const parsed = parseSegmentKey(m.key)
    if (parsed === undefined) return false
    const st = this.state(parsed.stream)
    const i = indexOfBase(st.segs, parsed.base)
    if (m.value === null) {
      if (i >= 0) {
        const [s] = st.segs.splice(i, 1)
        this.forget(s)
        if (s.offloaded) this.stale.push(offloadKey(st.stream, s.base))
      }
      return false
    }
    const man = decodeSegment(m.value)
    if (man === undefined || man.base !== parsed.base) return false
    if (i >= 0) {
      const s = st.segs[i]
      if (s.local) this.localBytes += man.bytes - s.bytes
      if (s.offloaded && s.last !== man.last) {
        // Written to after its offload (not something the log does): the remote copy is no longer the segment.
        s.offloaded = false
        if (s.local) this.evictable -= s.bytes
      }
      s.last = man.last
      s.bytes = man.bytes
      s.lastTs = man.lastTs
      return false
    }
    const seg: Seg = { base: man.base, last: man.last, bytes: man.bytes, lastTs: man.lastTs, offloaded: false, local: true }
    const at = -i - 1
    st.segs.splice(at, 0, seg)
    this.localBytes += seg.bytes
    return at === st.segs.length - 1 && st.segs.length > 1
  }

  /** Takes a segment out of the byte accounting. */
  private forget (s: Seg): void {
    if (!s.local) return
    this.localBytes -= s.bytes
    if (s.offloaded) this.evictable -= s.bytes
  }

  private async recover (): Promise<void> {
    for (const [key, value] of await this.local.listMeta(SEG_PREFIX)) this.noteMeta({ key, value })
    for (const [key, value] of await this.local.listMeta(OFFLOAD_PREFIX)) {
      const p = parseSegmentKey(SEG_PREFIX + key.slice(OFFLOAD_PREFIX.length))
      const man = decodeOffload(value)
      const st = p === undefined ? undefined : this.streams.get(p.stream)
      const seg = st === undefined || p === undefined ? undefined : st.segs[indexOfBase(st.segs, p.base)]
      if (st === undefined || seg === undefined || man === undefined || man.last !== seg.last) { this.stale.push(key); continue }
      seg.offloaded = true
      this.evictable += seg.bytes
      st.remoteHigh = Math.max(st.remoteHigh, seg.last + 1)
    }
    for (const [key, value] of await this.local.listMeta(DELETE_PREFIX)) {
      const pd = decodePending(value)
      if (pd === undefined) continue
      const st = this.state(key.slice(DELETE_PREFIX.length))
      st.pendingDelete = pd
      st.remoteHigh = Math.max(st.remoteHigh, 1)
    }
    // Which segments were evicted: those below the first chunk the local tier still holds (eviction goes oldest first).
    for (const st of this.streams.values()) {
      if (st.segs.length === 0) continue
      const [first] = await this.local.readChunks(st.stream, 0, 0)
      for (const s of st.segs) {
        if (s.offloaded && (first === undefined || s.last < first.baseOffset)) {
          s.local = false
          this.localBytes -= s.bytes
          this.evictable -= s.bytes
        }
      }
    }
  }

  // ---- offload, eviction and remote deletes ------------------------------------------------

  /** Starts the pump unless it runs (then it goes round once more). */
  private kick (): void {
    if (this.closed) return
    if (this.pumping !== undefined) { this.again = true; return }
    this.pumping = this.pump().finally(() => { this.pumping = undefined })
  }

  /** The one worker of the chain: remote deletes, offloads and evictions all run here, one at a time. */
  private async pump (): Promise<void> {
    do {
      this.again = false
      try {
        await this.dropStale()
        await this.evict()
        if (this.remote !== undefined && this.retryTimer === undefined) await this.remoteWork()
      } catch (err) {
        if (!this.closed) this.call(o => o.error?.('tier-pump', err))
      }
    } while (this.again && !this.closed)
  }

  private async remoteWork (): Promise<void> {
    let did = false
    try {
      for (const st of [...this.streams.values()]) {
        if (this.closed) return
        if (st.pendingDelete !== undefined) { await this.runPendingDelete(st); did = true }
      }
      for (;;) {
        if (this.closed) return
        const next = this.nextOffload()
        if (next === undefined) break
        await this.offload(next.st, next.seg)
        did = true
        await this.evict()
      }
      if (!did && this.degradedSince !== undefined) await (this.opts.probeRemote?.() ?? Promise.resolve())
      this.succeeded()
    } catch (err) {
      this.failed('offload', err)
    }
  }

  /** The oldest sealed segment not yet offloaded, of a stream with no remote delete pending. */
  private nextOffload (): { st: StreamState, seg: Seg } | undefined {
    let best: { st: StreamState, seg: Seg } | undefined
    for (const st of this.streams.values()) {
      if (st.pendingDelete !== undefined) continue
      for (let i = 0; i < st.segs.length - 1; i++) {
        const s = st.segs[i]
        if (s.offloaded || s.broken === true || !s.local) continue
        if (best === undefined || s.lastTs < best.seg.lastTs) best = { st, seg: s }
        break
      }
    }
    return best
  }

  /**
   * Copies one sealed segment to the remote in parts of about OFFLOAD_PART_BYTES (one remote write, so one object,
   * each; the last one carries the manifest), so that a large segment never sits in memory whole. The offload counts
   * only once the local manifest is written after the last part: parts of a cut offload are written again.
   */
  private async offload (st: StreamState, seg: Seg): Promise<void> {
    const started = performance.now()
    const gen = st.gen
    const { topic, partition } = splitStream(st.stream)
    const entries: OffloadManifest['chunks'] = []
    let value: Uint8Array | undefined
    let cursor = seg.base
    while (cursor <= seg.last) {
      const kept = this.keptFrom(st, cursor, OFFLOAD_PART_BYTES)
      const read = kept.length > 0 ? kept : await this.local.readChunks(st.stream, cursor, OFFLOAD_PART_BYTES)
      if (st.gen !== gen || !st.segs.includes(seg) || this.closed) return
      const part: StoredChunk[] = []
      for (const c of read) {
        if (c.baseOffset !== cursor || c.lastOffset > seg.last) break
        part.push(c)
        cursor = c.lastOffset + 1
      }
      if (part.length === 0) {
        seg.broken = true
        this.call(o => o.error?.('offload', new GemError('CORRUPT_RECORD', `${st.stream}: the local chunks of segment ${seg.base}..${seg.last} stop at ${cursor - 1}; it stays local`)))
        return
      }
      // Checksummed chunk by chunk, with a turn for the event loop every few MiB.
      let hashed = 0
      for (const c of part) {
        // The remote takes the same checksum for its chunk index rather than hashing the bytes a second time.
        c.crc32c = crc32c(c.data)
        entries.push({ base: c.baseOffset, last: c.lastOffset, bytes: c.data.byteLength, crc32c: c.crc32c })
        hashed += c.data.byteLength
        if (hashed >= 2 * MiB) { hashed = 0; await new Promise(resolve => setTimeout(resolve, 0)) }
      }
      const meta: MetaWrite[] = []
      if (cursor > seg.last) {
        const manifest: OffloadManifest = {
          topic, partition, base: seg.base, last: seg.last, count: seg.last - seg.base + 1, bytes: seg.bytes, chunks: entries, offloadedAt: this.clock.now(),
        }
        value = te.encode(JSON.stringify(manifest))
        meta.push({ key: remoteSegmentKey(st.stream, seg.base), value })
      }
      // One remote write per part: its object appears whole or not at all, and is verified.
      await this.remote!.write({ chunks: part, meta })
      st.remoteHigh = Math.max(st.remoteHigh, cursor)
      if (st.gen !== gen || !st.segs.includes(seg) || this.closed) return
    }
    if (value === undefined) return
    await this.local.write({ chunks: [], meta: [{ key: offloadKey(st.stream, seg.base), value }] })
    this.trimRecent(st, seg.last + 1)
    if (!st.segs.includes(seg) || seg.offloaded) return
    seg.offloaded = true
    if (seg.local) this.evictable += seg.bytes
    this.call(o => o.offloaded?.(st.stream, seg.bytes, seg.last - seg.base + 1, performance.now() - started))
  }

  /** Drops local copies of offloaded segments, oldest first, while the local tier is over its budget. */
  private async evict (): Promise<void> {
    while (this.budget > 0 && this.localBytes > this.budget && !this.closed) {
      let best: { st: StreamState, seg: Seg } | undefined
      for (const st of this.streams.values()) {
        const i = st.segs.findIndex(s => s.local)
        const s = st.segs[i]
        if (s === undefined || !s.offloaded || i === st.segs.length - 1) continue
        if (best === undefined || s.lastTs < best.seg.lastTs) best = { st, seg: s }
      }
      if (best === undefined) return
      const { st, seg } = best
      // Readers turn to the remote before the chunks go, so none of them finds a gap.
      seg.local = false
      this.evictions++
      this.localBytes -= seg.bytes
      this.evictable -= seg.bytes
      await this.deleteLocalThrough(st, seg)
      this.call(o => o.evicted?.(st.stream, seg.bytes))
    }
  }

  /** Deletes the local chunks of `seg` and any before it: by key when their starts are all known, by a scan otherwise. */
  private async deleteLocalThrough (st: StreamState, seg: Seg): Promise<void> {
    let n = 0
    while (n < st.bases.length && st.bases[n] <= seg.last) n++
    const bases = st.bases.splice(0, n)
    if (seg.base >= st.basesFrom && this.local.deleteChunks !== undefined) {
      await this.local.deleteChunks(st.stream, bases)
      return
    }
    await this.local.deleteChunksBefore(st.stream, seg.last + 1)
  }

  private async dropStale (): Promise<void> {
    if (this.stale.length === 0) return
    const keys = this.stale
    this.stale = []
    await this.local.write({ chunks: [], meta: keys.map(key => ({ key, value: null })) })
  }

  /**
   * Records a remote delete durably and leaves it to the pump, which runs it before any new offload of the stream
   * (and retries it while the remote fails): retention, topic deletion and start-up never wait for S3.
   */
  private async remoteDelete (st: StreamState, pd: PendingDelete): Promise<void> {
    st.gen++
    st.pendingDelete = mergePending(st.pendingDelete, pd)
    await this.local.write({ chunks: [], meta: [{ key: DELETE_PREFIX + st.stream, value: te.encode(JSON.stringify(st.pendingDelete)) }] })
    this.kick()
  }

  private async runPendingDelete (st: StreamState): Promise<void> {
    const pd = st.pendingDelete
    if (pd === undefined || this.closed) return
    const remote = this.remote!
    const manifests = await remote.listMeta(remoteSegmentPrefix(st.stream))
    if (pd.all) {
      await remote.deleteStream(st.stream)
    } else {
      await remote.deleteChunksBefore(st.stream, pd.before)
    }
    const gone = manifests.filter(([, v]) => pd.all || (decodeOffload(v)?.last ?? Infinity) < pd.before)
    if (gone.length > 0) await remote.write({ chunks: [], meta: gone.map(([key]) => ({ key, value: null })) })
    if (st.pendingDelete !== pd) return // another delete arrived meanwhile: it runs next round
    st.pendingDelete = undefined
    if (pd.all) st.remoteHigh = 0
    await this.local.write({ chunks: [], meta: [{ key: DELETE_PREFIX + st.stream, value: null }] })
    if (pd.all && st.segs.length === 0) this.streams.delete(st.stream)
  }

  private succeeded (): void {
    this.failures = 0
    if (this.degradedSince === undefined) return
    const down = this.clock.now() - this.degradedSince
    this.degradedSince = undefined
    this.lastError = undefined
    this.call(o => o.remoteRecovered?.(down))
    // The backlog may have waited for this.
    this.again = true
  }

  private failed (op: string, err: unknown): void {
    if (this.closed) return
    this.failures++
    this.degradedSince ??= this.clock.now()
    this.lastError = err instanceof Error ? err.message : String(err)
    const min = this.opts.retryMinMs ?? 500
    const max = this.opts.retryMaxMs ?? 30_000
    const delay = Math.min(max, min * 2 ** Math.min(this.failures - 1, 20))
    const jittered = Math.round(delay * (0.75 + Math.random() * 0.5))
    this.call(o => o.remoteFailed?.(op, err, jittered))
    if (this.retryTimer !== undefined) return
    this.retryTimer = this.clock.setTimer(jittered, () => {
      this.retryTimer = undefined
      this.kick()
    })
  }

  private ensureOpen (): void {
    if (this.closed) throw new GemError('CLOSED', 'the tier chain is closed')
  }

  private call (fn: (o: TierChainObserver) => void): void {
    try { fn(this.observer) } catch { /* observers must not break storage */ }
  }
}

function firstLocal (st: StreamState): number {
  for (const s of st.segs) if (s.local) return s.base
  return st.segs.length === 0 ? 0 : st.segs[st.segs.length - 1].last + 1
}

/** Index of the segment with `base`, or -(insertion point) - 1. */
function indexOfBase (segs: Seg[], base: number): number {
  let lo = 0
  let hi = segs.length - 1
  if (hi >= 0 && segs[hi].base < base) return -segs.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const b = segs[mid].base
    if (b === base) return mid
    if (b < base) lo = mid + 1; else hi = mid - 1
  }
  return -lo - 1
}

const pad = (n: number): string => String(n).padStart(16, '0')
function offloadPrefix (stream: string): string { return `${OFFLOAD_PREFIX}${stream}/` }
function offloadKey (stream: string, base: number): string { return offloadPrefix(stream) + pad(base) }
function remoteSegmentPrefix (stream: string): string { return `${REMOTE_SEGMENT_PREFIX}${stream}/` }
function remoteSegmentKey (stream: string, base: number): string { return remoteSegmentPrefix(stream) + pad(base) }

/** `seg/<stream>/<16 digits>` (log/segment.ts) -> its stream and base; anything else is not a segment manifest. */
function parseSegmentKey (key: string): { stream: string, base: number } | undefined {
  if (!key.startsWith(SEG_PREFIX) || key.length < SEG_PREFIX.length + 18 || key[key.length - 17] !== '/') return undefined
  const digits = key.slice(-16)
  if (!/^\d{16}$/.test(digits)) return undefined
  return { stream: key.slice(SEG_PREFIX.length, -17), base: Number(digits) }
}

function splitStream (stream: string): { topic: string, partition: number } {
  const i = stream.lastIndexOf('/')
  return { topic: stream.slice(0, i), partition: Number(stream.slice(i + 1)) }
}

function parseJson (bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(td.decode(bytes)) as unknown
    return typeof v === 'object' && v !== null ? v as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

const isOffset = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= -1

function decodeSegment (bytes: Uint8Array): { base: number, last: number, bytes: number, lastTs: number } | undefined {
  const m = parseJson(bytes)
  if (m === undefined || !isOffset(m.base) || !isOffset(m.last) || !isOffset(m.bytes)) return undefined
  return { base: m.base, last: m.last, bytes: m.bytes, lastTs: typeof m.lastTs === 'number' ? m.lastTs : 0 }
}

function decodeOffload (bytes: Uint8Array): OffloadManifest | undefined {
  const m = parseJson(bytes)
  if (m === undefined || !isOffset(m.base) || !isOffset(m.last)) return undefined
  return m as unknown as OffloadManifest
}

function decodePending (bytes: Uint8Array): PendingDelete | undefined {
  const m = parseJson(bytes)
  if (m?.all === true) return { all: true }
  if (m?.all === false && typeof m.before === 'number') return { all: false, before: m.before }
  return undefined
}

function mergePending (a: PendingDelete | undefined, b: PendingDelete): PendingDelete {
  if (a === undefined) return b
  if (a.all || b.all) return { all: true }
  return { all: false, before: Math.max(a.before, b.before) }
}
