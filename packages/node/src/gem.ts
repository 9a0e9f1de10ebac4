// createGem on Node: the core SDK with a LevelDB tier by default (under `dataDir`), so an
// embedded broker is durable unless the caller asks otherwise. Everything else is core's.
import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createGem as createCoreGem } from '@gem-mesh/core'
import type { Gem, GemOptions } from '@gem-mesh/core'
import { openLevelTier } from './storage/leveldb-tier.ts'

export interface NodeGemOptions extends GemOptions {
  /** Where the LevelDB tier lives when no `tier` is given. Default `.gem-data/embedded`. */
  dataDir?: string
  /** 'fsync' (default): acknowledged means on disk; 'none': survives a process crash, not power loss. */
  durability?: 'fsync' | 'none'
}

export async function createGem (options: NodeGemOptions = {}): Promise<Gem> {
  const { dataDir, durability, ...rest } = options
  if (rest.tier !== undefined) return await createCoreGem(rest)
  const dir = resolve(dataDir ?? '.gem-data/embedded')
  mkdirSync(dir, { recursive: true })
  const tier = await openLevelTier({ path: join(dir, 'log'), durability: durability ?? 'fsync' })
  return await createCoreGem({ ...rest, tier })
}
