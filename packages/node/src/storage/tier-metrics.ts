// Prometheus metrics of the tier chain: local bytes against the budget, the offload backlog, a degraded remote, traffic.
// Counts through the chain's observer and reads its status at scrape time; it never changes what the chain does.
import { Counter, Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { TierChainObserver, TierChainStatus } from '@gem-mesh/core'

export function tierMetrics (registry: Registry, status: () => TierChainStatus | undefined): TierChainObserver {
  const registers = [registry]
  const gauge = (name: string, help: string, value: (s: TierChainStatus) => number, labels?: (s: TierChainStatus) => Record<string, string>): void => {
    new Gauge({
      name,
      help,
      labelNames: labels === undefined ? [] : ['tier'],
      registers,
      collect () {
        const s = status()
        if (s === undefined) return
        if (labels === undefined) this.set(value(s)); else this.set(labels(s), value(s))
      },
    })
  }
  gauge('gem_tier_local_bytes', 'Log segment bytes held on local disk.', s => s.local.bytes)
  gauge('gem_tier_local_budget_bytes', 'The local byte budget (0 = none).', s => s.local.budgetBytes)
  gauge('gem_tier_local_pinned_bytes', 'Local segment bytes not yet in the remote tier (they cannot be evicted).', s => s.local.pinnedBytes)
  gauge('gem_tier_remote_degraded', '1 while the remote (S3) tier is failing and offload is retrying, else 0.', s => s.remote.state === 'degraded' ? 1 : 0, s => ({ tier: s.remote.tier }))
  gauge('gem_tier_offload_backlog_segments', 'Sealed segments waiting to be offloaded.', s => s.remote.backlogSegments)
  gauge('gem_tier_offload_backlog_bytes', 'Bytes of sealed segments waiting to be offloaded.', s => s.remote.backlogBytes)
  const offloaded = new Counter({ name: 'gem_tier_offloaded_segments_total', help: 'Segments copied to the remote tier and verified.', registers })
  const offloadedBytes = new Counter({ name: 'gem_tier_offloaded_bytes_total', help: 'Segment bytes copied to the remote tier.', registers })
  const evicted = new Counter({ name: 'gem_tier_evicted_bytes_total', help: 'Local bytes dropped after their offload.', registers })
  const remoteErrors = new Counter({ name: 'gem_tier_remote_errors_total', help: 'Failed remote-tier operations, by operation.', labelNames: ['op'], registers })
  const refused = new Counter({ name: 'gem_tier_refused_writes_total', help: 'Writes refused with STORAGE_FULL (local budget full of data not yet offloaded).', registers })
  const coldReads = new Counter({ name: 'gem_tier_cold_reads_total', help: 'Reads below the local tier, by whether the cold-read cache served them.', labelNames: ['cache'], registers })
  return {
    offloaded (_stream, bytes) { offloaded.inc(); offloadedBytes.inc(bytes) },
    evicted (_stream, bytes) { evicted.inc(bytes) },
    remoteFailed (op) { remoteErrors.labels(op).inc() },
    refused () { refused.inc() },
    coldRead (hit) { coldReads.labels(hit ? 'hit' : 'miss').inc() },
  }
}
