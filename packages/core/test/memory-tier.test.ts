// The storage-tier conformance suite run against MemoryTier; the durable-only cases are skipped.
// The same cases run against LevelDB in packages/node/test/leveldb-tier.test.ts.
import { test } from 'node:test'
import { MemoryTier } from '../src/store/memory-tier.ts'
import { tierConformanceCases } from '../src/store/conformance.ts'
import type { TierHarness } from '../src/store/conformance.ts'

const harness: TierHarness = { open: async () => new MemoryTier() }

for (const c of tierConformanceCases()) {
  if (c.needs === 'reopen') test.skip(`${c.name} (memory keeps nothing across close)`, () => {})
  else test(c.name, () => c.run(harness))
}
