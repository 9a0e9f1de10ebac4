// Runs the storage-tier conformance suite against a fresh MemoryTier per case, inside the page.
// Durable-only cases (needs: 'reopen') are reported as skipped: a MemoryTier keeps nothing across close.
import { MemoryTier } from '@gem-mesh/core'
import { tierConformanceCases } from '@gem-mesh/core/conformance'
import type { TierHarness } from '@gem-mesh/core/conformance'
import { runCheck } from './check.ts'
import type { CheckResult } from './report.ts'

export async function runTierConformance (): Promise<CheckResult[]> {
  const results: CheckResult[] = []
  for (const c of tierConformanceCases()) {
    if (c.needs === 'reopen') {
      results.push({ name: c.name, ok: true, skipped: 'needs a durable tier (reopen)', ms: 0 })
      continue
    }
    const harness: TierHarness = { open: async () => new MemoryTier() }
    results.push(await runCheck(c.name, () => c.run(harness)))
  }
  return results
}
