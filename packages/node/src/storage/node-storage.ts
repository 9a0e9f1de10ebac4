// A node's storage: the tier chain over its LevelDB log and the configured S3 (or the embedded stand-in, or none).
// It decides which cold tier to use from the configuration and opens it lazily, so an unreachable S3 degrades, never blocks start.
import { join } from 'node:path'
import { GemError, TieredStore } from '@gem-mesh/core'
import type { StorageTier, StoredChunk, TierChainObserver, TierWriteBatch } from '@gem-mesh/core'
import type { Registry } from 'prom-client'
import type { GemConfig } from '../config.ts'
import type { Logger } from '../logger.ts'
import { tierMetrics } from './tier-metrics.ts'
import { startEmbeddedS3Process } from './embedded-s3-process.ts'
import type { EmbeddedS3 } from './embedded-s3.ts'
import { openS3Tier } from './s3-tier.ts'
import type { S3Tier, S3TierOptions } from './s3-tier.ts'

export interface NodeStorage {
  tier: TieredStore
  /** Where offloaded segments go, for /health and /info: `s3://bucket/prefix` at `endpoint`, or undefined. */
  cold?: { mode: 'embedded' | 'external', endpoint: string, bucket: string, prefix: string }
  close(): Promise<void>
}

export interface OpenNodeStorageOptions {
  config: GemConfig
  nodeId: string
  local: StorageTier
  logger: Logger
  /** Where the tier metrics go. */
  registry?: Registry
}

export async function openNodeStorage (opts: OpenNodeStorageOptions): Promise<NodeStorage> {
  const { config, logger } = opts
  let chain: TieredStore | undefined
  const observer = storageObserver(logger, opts.registry === undefined ? {} : tierMetrics(opts.registry, () => chain?.status()))
  let embedded: EmbeddedS3 | undefined
  let remote: LazyS3Tier | undefined
  let cold: NodeStorage['cold']
  const external = config.s3Endpoint !== '' || config.s3Bucket !== ''
  if (config.s3 === 'embedded' || (config.s3 === 'auto' && !external)) {
    // In a child process: in this one its objects and buffers would count in the node's memory (and share its event loop).
    const child = await startEmbeddedS3Process({ dir: join(config.dataDir, 's3') })
    embedded = child
    logger.info({ endpoint: child.endpoint, dir: join(config.dataDir, 's3'), pid: child.pid }, 'embedded S3 stand-in (fauxqs) listening in its own process')
  }
  if (config.s3 !== 'none') {
    const endpoint = embedded?.endpoint ?? (config.s3Endpoint === '' ? undefined : config.s3Endpoint)
    const bucket = config.s3Bucket === '' ? 'gem' : config.s3Bucket
    const prefix = config.s3Prefix === '' ? `gem/${opts.nodeId}` : config.s3Prefix
    const credentials = embedded?.credentials ?? (config.s3AccessKeyId !== ''
      ? { accessKeyId: config.s3AccessKeyId, secretAccessKey: config.s3SecretAccessKey }
      : undefined)
    remote = new LazyS3Tier({
      bucket,
      prefix,
      region: config.s3Region,
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(credentials !== undefined ? { credentials } : {}),
      // Creating buckets is for stand-ins and dev endpoints; on AWS itself the bucket is provisioned.
      createBucket: endpoint !== undefined,
    })
    cold = { mode: embedded !== undefined ? 'embedded' : 'external', endpoint: endpoint ?? `s3.${config.s3Region}.amazonaws.com`, bucket, prefix }
  }
  try {
    const tier = await TieredStore.open({
      local: opts.local,
      ...(remote !== undefined ? { remote, probeRemote: () => remote.probe() } : {}),
      localBytes: config.localBytes,
      coldCacheBytes: config.coldCacheBytes,
      ownsTiers: false,
      observer,
    })
    chain = tier
    return {
      tier,
      ...(cold !== undefined ? { cold } : {}),
      close: async () => {
        try {
          await tier.close()
          await remote?.close()
        } finally {
          await embedded?.stop()
        }
      },
    }
  } catch (err) {
    await remote?.close().catch(() => {})
    await embedded?.stop().catch(() => {})
    throw err
  }
}

/** Metrics plus the log lines an operator needs: when the remote tier goes degraded and when it is back. */
function storageObserver (logger: Logger, metrics: TierChainObserver): TierChainObserver {
  let failing = false
  return {
    ...metrics,
    remoteFailed (op, err, retryInMs) {
      metrics.remoteFailed?.(op, err, retryInMs)
      if (!failing) logger.warn({ err, op, retryInMs }, 'remote tier failing: segments stay local, offload retries with backoff')
      else logger.debug({ err, op, retryInMs }, 'remote tier still failing')
      failing = true
    },
    remoteRecovered (downMs) {
      failing = false
      logger.info({ downMs }, 'remote tier reachable again: the offload backlog drains')
    },
    refused (bytes) {
      metrics.refused?.(bytes)
      logger.debug({ bytes }, 'write refused: local budget full (STORAGE_FULL)')
    },
    error (where, err) { logger.error({ err, where }, 'tier chain error') },
  }
}

/**
 * The S3 tier, opened on first use and again after a failed open: until S3 answers, every call fails with
 * UNAVAILABLE, which the chain treats like any S3 outage (segments stay local, retries with backoff).
 */
export class LazyS3Tier implements StorageTier {
  readonly name = 's3'
  private readonly options: S3TierOptions
  private tier: S3Tier | undefined
  private opening: Promise<S3Tier> | undefined
  private closed = false

  constructor (options: S3TierOptions) {
    this.options = options
  }

  private async open (): Promise<S3Tier> {
    if (this.closed) throw new GemError('CLOSED', 'the S3 tier is closed')
    if (this.tier !== undefined) return this.tier
    this.opening ??= openS3Tier(this.options).then(t => {
      if (this.closed) { void t.close(); throw new GemError('CLOSED', 'the S3 tier is closed') }
      this.tier = t
      return t
    }).finally(() => { this.opening = undefined })
    return this.opening
  }

  async probe (): Promise<void> { await (await this.open()).probe() }
  async write (b: TierWriteBatch): Promise<void> { return (await this.open()).write(b) }
  async readChunks (s: string, from: number, max: number): Promise<StoredChunk[]> { return (await this.open()).readChunks(s, from, max) }
  async lastChunk (s: string): Promise<StoredChunk | undefined> { return (await this.open()).lastChunk(s) }
  async deleteChunksBefore (s: string, before: number): Promise<void> { return (await this.open()).deleteChunksBefore(s, before) }
  async deleteStream (s: string): Promise<void> { return (await this.open()).deleteStream(s) }
  async getMeta (k: string): Promise<Uint8Array | undefined> { return (await this.open()).getMeta(k) }
  async listMeta (p: string): Promise<Array<[string, Uint8Array]>> { return (await this.open()).listMeta(p) }
  async listObjects (): Promise<Array<{ key: string, size: number }>> { return (await this.open()).listObjects() }

  async close (): Promise<void> {
    this.closed = true
    await this.opening?.catch(() => {})
    await this.tier?.close()
  }
}
