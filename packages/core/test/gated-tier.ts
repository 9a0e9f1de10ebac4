// A memory tier for tests that look at a broker mid-write: its writes can be held back, released, or made to fail.
// Pure in-memory: nothing to clean up.
import { MemoryTier } from '../src/store/memory-tier.ts'
import type { TierWriteBatch } from '../src/store/tier.ts'

/** A memory tier whose writes can be held back (to look at the broker mid-write) or made to fail. */
export class GatedTier extends MemoryTier {
  held: Array<() => void> = []
  hold = false
  failNext = false
  override async write (batch: TierWriteBatch): Promise<void> {
    if (this.hold) await new Promise<void>(resolve => this.held.push(resolve))
    if (this.failNext) { this.failNext = false; throw new Error('disk on fire') }
    return await super.write(batch)
  }

  release (): void { for (const r of this.held.splice(0)) r() }
}
