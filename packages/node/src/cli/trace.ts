// `gem trace record`: polls a gateway's GET /cluster once a second and writes a load trace (JSON lines: a header, then
// one sample per node and per partition a second) that `npm run train` reads from models/traces/. Bounded in time.
import { createWriteStream } from 'node:fs'
import { TRACE_FORMAT_VERSION } from '@gem-mesh/core/predict'
import type { TraceHeader, TraceSample } from '@gem-mesh/core/predict'
import { UsageError } from './errors.ts'
import { requestJson, resolveBaseUrl } from './http-client.ts'

interface ClusterBody {
  nodes?: Array<{ id?: string, load?: number | null, load_report?: { publish_rate?: number, delivery_rate?: number, backlog?: number, event_loop_lag_ms?: number, utilization?: number } | null }>
  partitions?: Array<{ topic?: string, partition?: number, leader?: string | null, offsets?: { high?: number } }>
}

export async function traceRecordCommand (flags: { url?: string, seconds?: string, out?: string }, signal: AbortSignal): Promise<number> {
  const base = resolveBaseUrl(flags.url)
  const seconds = Number(flags.seconds ?? 300)
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) throw new UsageError('--seconds takes an integer from 1 to 86400')
  const out = flags.out === undefined ? process.stdout : createWriteStream(flags.out)
  const header: TraceHeader = { gem_trace: TRACE_FORMAT_VERSION, started: new Date().toISOString(), source: base }
  out.write(JSON.stringify(header) + '\n')
  const lastHigh = new Map<string, number>()
  let written = 0
  for (let i = 0; i < seconds && !signal.aborted; i++) {
    const tickAt = Date.now()
    const body = await requestJson<ClusterBody>(base, '/cluster')
    const ts = new Date().toISOString()
    const nodeLoad = new Map<string, number>()
    for (const n of body.nodes ?? []) {
      const load = n.load ?? n.load_report?.utilization
      if (typeof n.id !== 'string' || typeof load !== 'number' || !Number.isFinite(load)) continue
      nodeLoad.set(n.id, load)
      const r = n.load_report ?? undefined
      const s: TraceSample = { ts, series: `node:${n.id}`, load, ...(r?.publish_rate !== undefined ? { publish_rate: r.publish_rate, delivery_rate: r.delivery_rate, backlog: r.backlog, event_loop_lag_ms: r.event_loop_lag_ms } : {}) }
      out.write(JSON.stringify(s) + '\n')
      written++
    }
    // A partition's load: its leader's load in proportion to the partition's share of that leader's publishes.
    const rates = (body.partitions ?? []).flatMap(p => {
      if (typeof p.topic !== 'string' || typeof p.partition !== 'number' || typeof p.offsets?.high !== 'number') return []
      const key = `${p.topic}/${p.partition}`
      const prev = lastHigh.get(key)
      lastHigh.set(key, p.offsets.high)
      return prev === undefined ? [] : [{ key, leader: p.leader ?? null, rate: Math.max(0, p.offsets.high - prev) }]
    })
    for (const p of rates) {
      const byLeader = rates.filter(q => q.leader === p.leader).reduce((a, q) => a + q.rate, 0)
      const load = byLeader > 0 && p.leader !== null ? (nodeLoad.get(p.leader) ?? 0) * p.rate / byLeader : 0
      out.write(JSON.stringify({ ts, series: `partition:${p.key}`, load, publish_rate: p.rate } satisfies TraceSample) + '\n')
      written++
    }
    const wait = 1000 - (Date.now() - tickAt)
    if (wait > 0 && i + 1 < seconds) await new Promise<void>(resolve => { const t = setTimeout(resolve, wait); signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true }) })
  }
  if (out !== process.stdout) await new Promise<void>(resolve => (out as ReturnType<typeof createWriteStream>).end(resolve))
  process.stderr.write(`recorded ${written} samples from ${base}\n`)
  return 0
}
