// `node bench/mesh-cpu.ts [--pipelined N | --rate R --seconds S] [--profile DIR]`: where a 3-node mesh spends CPU per
// message. Each node's CPU (user + system, all threads, from /proc: Linux only) over the measured phase, divided by
// the messages; optionally a CPU profile of each node's steady phase (.cpuprofile files for Chrome DevTools).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { api } from '../test/support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from '../test/support/mesh.ts'
import { steadyLatency } from './lib/latency.ts'
import { pipelinedPublish } from './lib/ws-client.ts'
import { startInspectorProfile } from './lib/inspector-profile.ts'

const arg = (name: string): string | undefined => { const i = process.argv.indexOf(name); return i < 0 ? undefined : process.argv[i + 1] }
const pipelined = arg('--pipelined') !== undefined ? Number(arg('--pipelined')) : undefined
const rate = Number(arg('--rate') ?? 5000)
const seconds = Number(arg('--seconds') ?? 10)
const profileDir = arg('--profile')
for (const [name, v] of [['--pipelined', pipelined ?? 1], ['--rate', rate], ['--seconds', seconds]] as const) {
  if (!Number.isFinite(v) || v <= 0 || v > 1_000_000) { console.error(`${name} must be a positive number up to 1,000,000`); process.exit(2) }
}
// Clock ticks per second of /proc/<pid>/stat's utime and stime: 100 on every Linux GEM runs on.
const TICKS = 100
const cpuTicks = (pid: number): number => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]) }

if (profileDir !== undefined) {
  mkdirSync(profileDir, { recursive: true })
  process.env.GEM_TEST_NODE_FLAGS = `${process.env.GEM_TEST_NODE_FLAGS ?? ''} --inspect=127.0.0.1:0`
}

await withMeshProcesses(3, async m => {
  const created = await api(m.nodes[0].url, 'POST', '/topics', { name: 'cpu', replication: 3 })
  if (created.status !== 201) throw new Error(`create: ${created.status} ${JSON.stringify(created.json)}`)
  const leader = m.ids.indexOf(await agreedLeader(m.nodes, 'cpu'))
  const role = (i: number): string => i === leader ? 'leader' : `follower ${i}`
  const profiles = profileDir !== undefined ? await Promise.all(m.nodes.map(n => startInspectorProfile(n.output()))) : []
  const before = m.nodes.map(n => cpuTicks(n.child.pid!))
  const started = performance.now()
  let messages: number
  if (pipelined !== undefined) {
    const r = await pipelinedPublish(m.nodes[leader].url, 'cpu', pipelined, 256, 1024, 120_000)
    messages = r.acked
    console.log(`pipelined to the leader: ${Math.round(r.rate)} acked msg/s`)
  } else {
    const r = await steadyLatency(m.nodes[leader].url, m.nodes[leader].url, 'cpu', rate, seconds, 256)
    messages = r.received
    console.log(`${rate} msg/s on the leader: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`)
  }
  const elapsed = (performance.now() - started) / 1000
  const after = m.nodes.map(n => cpuTicks(n.child.pid!))
  for (let i = 0; i < 3; i++) {
    const cpuS = (after[i] - before[i]) / TICKS
    console.log(`${role(i).padEnd(10)} ${(cpuS * 1e6 / messages).toFixed(1).padStart(7)} us CPU per message, ${(cpuS / elapsed).toFixed(2)} cores`)
  }
  for (let i = 0; i < profiles.length; i++) {
    const file = join(profileDir!, `${role(i).replace(' ', '-')}.cpuprofile`)
    writeFileSync(file, JSON.stringify(await profiles[i].stop()))
    console.log(`profile: ${file}`)
  }
})
