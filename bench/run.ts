// `npm run bench [-- suite...]`: GEM's single-node benchmarks, each beside a baseline measured in the
// same run. Writes JSON to bench/results/ and prints one line per figure. Bounded in count and time.
import { spawn, execSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { createGem } from '../packages/core/src/index.ts'
import { openLevelTier } from '../packages/node/src/storage/leveldb-tier.ts'
import { api, startGem, tempDataDir } from '../test/support/gem-process.ts'
import { pacedSend, waitForCount } from './lib/paced.ts'
import { steadyLatency } from './lib/latency.ts'
import type { LatencyResult } from './lib/latency.ts'
import { meshSuite } from './mesh.ts'
import { browserSuite } from './browser.ts'
import { tiersSuite } from './tiers.ts'
import { percentile, pipelinedPublish, subscribers } from './lib/ws-client.ts'

const ROOT = resolve(import.meta.dirname, '..')
const PAYLOAD = 256
const quick = process.argv.includes('--quick')
const scale = quick ? 0.1 : 1
const suites = process.argv.slice(2).filter(a => !a.startsWith('--'))
// `mesh` (three nodes), `tiers` (S3 offload) and `browser` (Chromium) run only when asked for: `npm run bench -- mesh`.
const all = ['sdk', 'sdk-latency', 'ws', 'latency', 'fanout', 'memory']
const selected = suites.length === 0 ? all : suites
for (const s of selected) if (![...all, 'mesh', 'tiers', 'browser'].includes(s)) { console.error(`unknown suite ${s}; choose from ${all.join(', ')}`); process.exit(2) }

const commit = (() => { try { return execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim() } catch { return 'unknown' } })()
const figures: Array<Record<string, unknown>> = []
function report (suite: string, name: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  figures.push({ suite, name, value: Math.round(value * 100) / 100, unit, ...extra })
  const ex = Object.entries(extra).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 100) / 100 : v}`).join(' ')
  console.log(`${suite.padEnd(8)} ${name.padEnd(44)} ${String(Math.round(value * 100) / 100).padStart(12)} ${unit.padEnd(8)} ${ex}  (cores=${cpus().length} commit=${commit})`)
}

async function withNode<T> (fn: (url: string, pid: number, dataDir: string) => Promise<T>, args: string[] = [], parentDir?: string): Promise<T> {
  const data = tempDataDir('gem-bench-', parentDir)
  const node = await startGem(data.dir, ['--auto-create-topics', ...args])
  try { return await fn(node.url, node.child.pid!, data.dir) } finally { await node.stop(); data.remove() }
}

async function withBaseline<T> (fn: (url: string) => Promise<T>): Promise<T> {
  const child = spawn(process.execPath, [join(ROOT, 'bench/baselines/naive-ws-server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const url = await new Promise<string>((res, rej) => {
      child.stdout!.once('data', d => res(JSON.parse(String(d)).url))
      child.once('exit', c => rej(new Error(`baseline exited ${c}`)))
    })
    return await fn(url)
  } finally { child.kill('SIGTERM') }
}

// ---- suites ----------------------------------------------------------------------------------

async function sdk (): Promise<void> {
  const count = Math.round(300_000 * scale)
  for (const durability of ['fsync', 'none'] as const) {
    const data = tempDataDir('gem-bench-sdk-')
    const gem = await createGem({ tier: await openLevelTier({ path: join(data.dir, 'log'), durability }) })
    try {
      await gem.topics.create('bench')
      const pool = Array.from({ length: 1024 }, () => crypto.getRandomValues(new Uint8Array(PAYLOAD)))
      const window = 4096
      let sent = 0
      let acked = 0
      const started = performance.now()
      const deadline = started + 60_000
      await new Promise<void>((resolve, reject) => {
        const one = (): void => {
          sent++
          gem.publish('bench', pool[sent & 1023]).then(() => {
            acked++
            if (acked === count || performance.now() > deadline) resolve()
            else if (sent < count) one()
          }, reject)
        }
        for (let i = 0; i < window && i < count; i++) one()
      })
      const s = (performance.now() - started) / 1000
      report('sdk', `acked publishes (durability=${durability})`, acked / s, 'msg/s', { messages: acked })
    } finally { await gem.close(); data.remove() }
  }
}

/** Publish-to-delivery inside one process (SDK, no sockets, no JSON): the engine plus storage alone. */
async function sdkLatency (): Promise<void> {
  const seconds = quick ? 3 : 10
  const rate = 5000
  for (const durability of ['fsync', 'none'] as const) {
    const data = tempDataDir('gem-bench-sdklat-')
    const gem = await createGem({ tier: await openLevelTier({ path: join(data.dir, 'log'), durability }) })
    try {
      await gem.topics.create('lat')
      const lat: number[] = []
      const sub = gem.subscribe('lat', m => {
        lat.push(performance.now() - new DataView(m.payload.buffer, m.payload.byteOffset).getFloat64(0))
      }, { maxInFlight: 4096 })
      await sub.ready
      const total = rate * seconds
      await pacedSend(rate, total, () => {
        const p = crypto.getRandomValues(new Uint8Array(PAYLOAD))
        new DataView(p.buffer).setFloat64(0, performance.now())
        void gem.publish('lat', p)
      })
      await waitForCount(() => lat.length, total, 10_000)
      lat.sort((a, b) => a - b)
      report('sdk-lat', `in-process p50 @5k msg/s (durability=${durability})`, percentile(lat, 50), 'ms', { received: lat.length })
      report('sdk-lat', `in-process p99 @5k msg/s (durability=${durability})`, percentile(lat, 99), 'ms')
    } finally { await gem.close(); data.remove() }
  }
}

async function ws (): Promise<void> {
  const count = Math.round(300_000 * scale)
  const base = await withBaseline(url => pipelinedPublish(url, 'bench', count, PAYLOAD, 1024, 60_000))
  report('ws', 'naive in-memory ws server (baseline)', base.rate, 'msg/s', { messages: base.acked })
  // Created up front, as the other suites do: the figure is steady publishing, not the race of the first
  // pipelined publishes with auto-creation.
  const gem = await withNode(async url => {
    await api(url, 'POST', '/topics', { name: 'bench' })
    return await pipelinedPublish(url, 'bench', count, PAYLOAD, 1024, 60_000)
  })
  report('ws', 'gem /ws acked durable publishes (fsync)', gem.rate, 'msg/s', { messages: gem.acked, ratio_vs_baseline: gem.rate / base.rate })
}

/** `--no-warmup` counts the stream from its first message (cold JIT and heap in both processes). */
const warmupSeconds = process.argv.includes('--no-warmup') ? 0 : 1

async function latency (): Promise<void> {
  const seconds = quick ? 3 : 10
  const base = await withBaseline(url => steadyLatency(url, url, 'lat', 5000, seconds, PAYLOAD, warmupSeconds))
  report('latency', 'naive ws server p50 @5k msg/s (baseline)', base.p50, 'ms', { received: base.received, warmup_msgs: base.warmup })
  report('latency', 'naive ws server p99 @5k msg/s (baseline)', base.p99, 'ms', { p999: base.p999, max: base.max })
  const measure = async (url: string): Promise<LatencyResult> => {
    await api(url, 'POST', '/topics', { name: 'lat' })
    return await steadyLatency(url, url, 'lat', 5000, seconds, PAYLOAD, warmupSeconds)
  }
  const gem = await withNode(measure)
  report('latency', 'gem publish->delivery p50 @5k msg/s', gem.p50, 'ms', { received: gem.received, warmup_msgs: gem.warmup })
  report('latency', 'gem publish->delivery p99 @5k msg/s', gem.p99, 'ms', { ratio_vs_baseline: gem.p99 / base.p99, p999: gem.p999, max: gem.max })
  // Two controls that say how much of the tail is this machine's disk rather than GEM's code.
  const disk = await syncedAppendLatency(seconds)
  report('latency', 'disk: synced 1.5 KiB append p99, alone (control)', disk.p99, 'ms', { p50: disk.p50, p999: disk.p999, max: disk.max, writes: disk.writes })
  if (existsSync('/dev/shm')) {
    // The same node, flags and fsyncs, with its data on tmpfs, where a sync is free: what remains is CPU and scheduling.
    const shm = await withNode(measure, [], '/dev/shm')
    report('latency', 'gem p99 @5k msg/s, data on tmpfs (control)', shm.p99, 'ms', { p50: shm.p50, p999: shm.p999, ratio_vs_disk: shm.p99 / gem.p99 })
  }
}

/** A bare append + fdatasync loop at the cadence of the latency run's group commits (one per ms), in this process. */
async function syncedAppendLatency (seconds: number): Promise<{ p50: number, p99: number, p999: number, max: number, writes: number }> {
  const data = tempDataDir('gem-bench-disk-')
  const file = await open(join(data.dir, 'append'), 'w')
  try {
    const block = new Uint8Array(1536).fill(7)
    const lat: number[] = []
    const until = performance.now() + seconds * 1000
    while (performance.now() < until && lat.length < seconds * 1000) {
      const t = performance.now()
      await file.write(block)
      await file.datasync()
      lat.push(performance.now() - t)
      await new Promise(resolve => setTimeout(resolve, 1))
    }
    lat.sort((a, b) => a - b)
    return { p50: percentile(lat, 50), p99: percentile(lat, 99), p999: percentile(lat, 99.9), max: lat.at(-1) ?? NaN, writes: lat.length }
  } finally { await file.close(); data.remove() }
}

async function fanoutRun (url: string, n: number, count: number): Promise<{ rate: number, delivered: number }> {
  let delivered = 0
  const expected = n * count
  let done: () => void = () => {}
  const finished = new Promise<void>(r => { done = r })
  const subs = await subscribers(url, 'fan', n, () => { if (++delivered === expected) done() })
  const started = performance.now()
  await pipelinedPublish(url, 'fan', count, PAYLOAD, 1024, 60_000)
  await Promise.race([finished, new Promise(r => setTimeout(r, 30_000))])
  const s = (performance.now() - started) / 1000
  for (const w of subs) w.close()
  return { rate: delivered / s, delivered }
}

async function fanout (): Promise<void> {
  const count = Math.round(50_000 * scale)
  const base = await withBaseline(url => fanoutRun(url, 10, count))
  report('fanout', 'naive ws server, 10 subscribers (baseline)', base.rate, 'deliv/s', { delivered: base.delivered })
  const gem = await withNode(async url => {
    await api(url, 'POST', '/topics', { name: 'fan' })
    return await fanoutRun(url, 10, count)
  })
  report('fanout', 'gem /ws, 10 subscribers', gem.rate, 'deliv/s', { delivered: gem.delivered, ratio_vs_baseline: gem.rate / base.rate })
}

function procStatusMiB (pid: number, field: 'VmRSS' | 'RssAnon' | 'RssFile'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

function rssMiB (pid: number): number { return procStatusMiB(pid, 'VmRSS') }

/** Live JS heap of the node, from its own Prometheus metrics. */
async function heapUsedMiB (url: string): Promise<number> {
  const text = await (await fetch(url + '/metrics')).text()
  const m = /^nodejs_heap_size_used_bytes (\d+)/m.exec(text)
  return m === null ? NaN : Number(m[1]) / 1048576
}

function duBytes (dir: string): number {
  return Number(execSync(`du -sb ${JSON.stringify(dir)}`).toString().split('\t')[0])
}

async function memory (): Promise<void> {
  const count = Math.round(1_000_000 * scale)
  await withNode(async (url, pid, dataDir) => {
    await api(url, 'POST', '/topics', { name: 'mem' })
    const before = rssMiB(pid)
    const r = await pipelinedPublish(url, 'mem', count, PAYLOAD, 1024, 120_000)
    const peak = rssMiB(pid)
    // Then let the node go idle: V8 returns heap it grew under load only after a while.
    let idle = peak
    const until = Date.now() + 15_000
    while (Date.now() < until) {
      await new Promise(r => setTimeout(r, 1000))
      const now = rssMiB(pid)
      if (now >= idle - 1) { idle = Math.min(idle, now); break }
      idle = now
    }
    const perMillion = 1_000_000 / r.acked
    report('memory', `node RSS idle, ${r.acked} retained msgs`, idle, 'MiB', {
      rss_at_start_mib: before,
      rss_peak_under_load_mib: peak,
      idle_growth_per_1m_mib: (idle - before) * perMillion,
      rss_anon_mib: procStatusMiB(pid, 'RssAnon'),
      // File-backed: mostly LevelDB's table files, which it maps for reading (compaction and offload read them all).
      // Page cache the kernel can take back, unlike the anonymous part.
      rss_file_mib: procStatusMiB(pid, 'RssFile'),
      js_heap_used_mib: await heapUsedMiB(url),
    })
    // The embedded S3 stand-in keeps its objects under the data dir too: offloaded segments would count twice.
    const s3Dir = join(dataDir, 's3')
    const s3 = existsSync(s3Dir) ? duBytes(s3Dir) : 0
    report('memory', 'local disk bytes per retained message', (duBytes(dataDir) - s3) / r.acked, 'B/msg', { payload_bytes: PAYLOAD, s3_stand_in_bytes_per_msg: s3 / r.acked })
  })
}

const run: Record<string, () => Promise<void>> = { sdk, 'sdk-latency': sdkLatency, ws, latency, fanout, memory, mesh: () => meshSuite(report, scale), tiers: () => tiersSuite(report, scale), browser: () => browserSuite(report, scale) }
console.log(`GEM bench: suites ${selected.join(', ')}; payload ${PAYLOAD} B; ${cpus().length} cores; commit ${commit}${quick ? '; --quick' : ''}`)
for (const s of selected) {
  try { await run[s]() } catch (err) { console.error(`suite ${s} failed:`, err); process.exitCode = 1 }
}
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
const result = { commit, cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, payload_bytes: PAYLOAD, quick, at: new Date().toISOString(), figures }
const file = join(ROOT, 'bench/results', `${selected.length === 1 && (selected[0] === 'mesh' || selected[0] === 'tiers' || selected[0] === 'browser') ? selected[0] : 'single-node'}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
writeFileSync(file, JSON.stringify(result, null, 2))
writeFileSync(join(ROOT, 'bench/results/latest.json'), JSON.stringify(result, null, 2))
console.log(`results: ${file}`)
