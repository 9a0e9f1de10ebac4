// `npm run bench -- tiers`: tiered storage. Ingest msg/s of one node with offload to S3 (fauxqs) on and off, node RSS
// and local disk bytes with 1M retained messages, and cold reads from S3 against reads of the same log from LevelDB.
import { execSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Broker, TieredStore } from '../packages/core/src/index.ts'
import { openLevelTier } from '../packages/node/src/storage/leveldb-tier.ts'
import { openS3Tier } from '../packages/node/src/storage/s3-tier.ts'
import { startEmbeddedS3Process } from '../packages/node/src/storage/embedded-s3-process.ts'
import { api, startGem, tempDataDir } from '../test/support/gem-process.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'
import { pipelinedPublish } from './lib/ws-client.ts'

type Report = (suite: string, name: string, value: number, unit: string, extra?: Record<string, unknown>) => void

const PAYLOAD = 256
const MiB = 1024 * 1024

function rssMiB (pid: number, field: 'VmRSS' | 'RssAnon' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? Number.NaN : Number(m[1]) / 1024
}

function duBytes (dir: string): number {
  return Number(execSync(`du -sb ${JSON.stringify(dir)}`).toString().split('\t')[0])
}

interface IngestRun { rate: number, acked: number, rssMiB: number, afterLoadMiB: number, anonMiB: number, memory: Record<string, number>, localDiskBytes: number, dataDir: string, remove(): void }

/** Where the node's memory is, from its /metrics (prom-client's defaults): V8 heap (and its young generation) and external (Buffers). */
async function memoryParts (url: string): Promise<Record<string, number>> {
  const text = await (await fetch(url + '/metrics')).text()
  const value = (re: RegExp): number => { const m = re.exec(text); return m === null ? Number.NaN : Math.round(Number(m[1]) / MiB * 10) / 10 }
  return {
    heap_total_mib: value(/^nodejs_heap_size_total_bytes (\S+)/m),
    heap_used_mib: value(/^nodejs_heap_size_used_bytes (\S+)/m),
    young_gen_mib: value(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)/m),
    external_mib: value(/^nodejs_external_memory_bytes (\S+)/m),
  }
}

/** One node, one topic, `count` pipelined 256-byte publishes; the data directory is kept for the read phase. */
async function ingest (count: number, args: string[], settle?: (url: string) => Promise<void>): Promise<IngestRun> {
  const data = tempDataDir('gem-bench-tiers-')
  const node = await startGem(data.dir, ['--mesh', 'false', ...args])
  try {
    await api(node.url, 'POST', '/topics', { name: 'tiers' })
    const r = await pipelinedPublish(node.url, 'tiers', count, PAYLOAD, 2048, 180_000)
    await settle?.(node.url)
    // RSS once the node idles: V8's memory reducer starts only after ~8 s of low allocation and then gives back heap
    // grown under load in steps, so idle is when RSS has not dropped for 12 s in a row (at most 60 s); a 3 s window
    // stopped before the reducer ran (344 MiB against 188 MiB at 28 s in the same setup). The figure right after
    // the load is kept too.
    const pid = node.child.pid!
    const afterLoad = rssMiB(pid)
    let idle = afterLoad
    for (let quiet = 0, until = Date.now() + 60_000; quiet < 12 && Date.now() < until;) {
      await new Promise(resolve => setTimeout(resolve, 1000))
      const now = rssMiB(pid)
      quiet = now >= idle - 1 ? quiet + 1 : 0
      idle = Math.min(idle, now)
    }
    return { rate: r.rate, acked: r.acked, rssMiB: idle, afterLoadMiB: afterLoad, anonMiB: rssMiB(pid, 'RssAnon'), memory: await memoryParts(node.url), localDiskBytes: duBytes(join(data.dir, 'log')), dataDir: data.dir, remove: data.remove }
  } catch (err) {
    data.remove()
    throw err
  } finally {
    await node.stop()
  }
}

/** Reads the whole partition through a broker on `tier`, decoding every record; msg/s. */
async function readAll (tier: TieredStore, expected: number): Promise<{ rate: number, read: number }> {
  const broker = await Broker.open({ tier, ownsTier: false, retentionCheckMs: 0, hotBytesPerPartition: 0, dedupWindowMs: 0 })
  try {
    const started = performance.now()
    let from = 0
    let read = 0
    while (read < expected) {
      const r = await broker.read('tiers', 0, from, 10_000)
      if (r.messages.length === 0) break
      read += r.messages.length
      from = r.next
    }
    return { rate: read / ((performance.now() - started) / 1000), read }
  } finally {
    await broker.close()
  }
}

export async function tiersSuite (report: Report, scale: number): Promise<void> {
  const count = Math.round(1_000_000 * scale)
  const s3dir = mkdtempSync(join(tmpdir(), 'gem-bench-s3-'))
  // S3 (fauxqs) runs in its own process, as a remote S3 would not share the load generator's event loop.
  const s3 = await startEmbeddedS3Process({ dir: s3dir })
  const budgets = ['--hot-bytes', String(16 * MiB), '--segment-bytes', String(4 * MiB)]
  const runs: IngestRun[] = []
  try {
    // Baseline: the same node and budgets with no cold tier (and so no local budget: nothing could be evicted).
    // Rounds alternate off/on so that drift in a shared machine's load hits both alike; the last round's logs are read.
    const rounds = scale < 1 ? 1 : 2
    let off!: IngestRun
    let on!: IngestRun
    const offRates: number[] = []
    const onRates: number[] = []
    for (let round = 0; round < rounds; round++) {
      off = await ingest(count, ['--s3', 'none', '--local-bytes', '0', ...budgets])
      runs.push(off)
      offRates.push(off.rate)
      on = await ingest(count, ['--s3-endpoint', s3.endpoint, '--s3-bucket', 'gem', '--s3-prefix', `bench-${round}`, '--s3-access-key-id', 'b', '--s3-secret-access-key', 'b', '--local-bytes', String(64 * MiB), ...budgets],
        async url => { await waitFor(async () => (await api(url, 'GET', '/health')).json.storage.remote.backlogSegments === 0, 'the offload backlog drains', 120_000) })
      runs.push(on)
      onRates.push(on.rate)
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    report('tiers', 'ingest, offload off (--s3 none, baseline)', mean(offRates), 'msg/s', { messages: off.acked, rounds: offRates.map(Math.round).join('/') })
    report('tiers', 'ingest, offload on (fauxqs in its own process, 64 MiB local budget)', mean(onRates), 'msg/s', {
      messages: on.acked, rounds: onRates.map(Math.round).join('/'), ratio_vs_baseline: mean(onRates) / mean(offRates), offload_cost_pct: (1 - mean(onRates) / mean(offRates)) * 100, target_cost_pct: 15,
    })
    const perMillion = 1_000_000 / on.acked
    report('tiers', `node RSS idle after ingest, ${on.acked} msgs retained (offload on)`, on.rssMiB, 'MiB', { baseline_offload_off_mib: off.rssMiB, right_after_load_mib: on.afterLoadMiB, baseline_right_after_load_mib: off.afterLoadMiB, anon_mib: on.anonMiB, baseline_anon_mib: off.anonMiB, ...on.memory, target_mib: 256 })
    report('tiers', 'local disk bytes per 1M retained msgs (offload on)', on.localDiskBytes * perMillion, 'B', { mib: on.localDiskBytes * perMillion / MiB, baseline_offload_off_mib: off.localDiskBytes * (1_000_000 / off.acked) / MiB })

    // Cold reads: the offloaded node's log, opened again in this process, read from offset 0 through the chain.
    const local = await openLevelTier({ path: join(on.dataDir, 'log') })
    const remote = await openS3Tier({ endpoint: s3.endpoint, bucket: 'gem', prefix: `bench-${rounds - 1}`, credentials: s3.credentials })
    const cold = await TieredStore.open({ local, remote, localBytes: 64 * MiB })
    const c = await readAll(cold, on.acked)
    await cold.close()
    const base = await TieredStore.open({ local: await openLevelTier({ path: join(off.dataDir, 'log') }) })
    const b = await readAll(base, off.acked)
    await base.close()
    report('tiers', 'sequential read from LevelDB (baseline)', b.rate, 'msg/s', { messages: b.read })
    report('tiers', 'cold read from offset 0, mostly from S3', c.rate, 'msg/s', { messages: c.read, ratio_vs_baseline: c.rate / b.rate, target_msg_s: 100_000 })
  } finally {
    for (const r of runs) r.remove()
    await s3.stop()
    rmSync(s3dir, { recursive: true, force: true })
  }
}
