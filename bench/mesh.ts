// `npm run bench -- mesh`: three node processes on loopback, replication 3. Acknowledged publishes/s (to the leader
// and forwarded through a follower), publish->delivery latency at 5k msg/s, and leader-kill-to-first-ack failover time.
import { api, startGem, tempDataDir } from '../test/support/gem-process.ts'
import type { GemProcess } from '../test/support/gem-process.ts'
import { steadyLatency } from './lib/latency.ts'
import { connect, percentile, pipelinedPublish } from './lib/ws-client.ts'

type Report = (suite: string, name: string, value: number, unit: string, extra?: Record<string, unknown>) => void

const PAYLOAD = 256
const NODE_ARGS = ['--webrtc-direct', 'false', '--auto-create-topics']

interface Mesh { nodes: GemProcess[], ids: string[], dirs: Array<{ dir: string, remove(): void }> }

async function until<T> (what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 50))
  }
}

async function startMesh (): Promise<Mesh> {
  const dirs = [tempDataDir('gem-bench-mesh-'), tempDataDir('gem-bench-mesh-'), tempDataDir('gem-bench-mesh-')]
  const nodes: GemProcess[] = []
  try {
    nodes.push(await startGem(dirs[0].dir, NODE_ARGS))
    for (const d of dirs.slice(1)) nodes.push(await startGem(d.dir, [...NODE_ARGS, '--join', nodes[0].url]))
    for (const n of nodes) await until('three nodes', async () => (await api(n.url, 'GET', '/cluster')).json.nodes.length === 3 ? true : undefined)
    const ids = await Promise.all(nodes.map(async n => (await api(n.url, 'GET', '/info')).json.node_id as string))
    return { nodes, ids, dirs }
  } catch (err) {
    for (const n of nodes) await n.kill()
    for (const d of dirs) d.remove()
    throw err
  }
}

async function stopMesh (m: Mesh): Promise<void> {
  for (const n of m.nodes) await n.kill()
  for (const d of m.dirs) d.remove()
}

/** Creates a replicated topic and returns the index of its partition-0 leader once every node agrees on it. */
async function replicatedTopic (m: Mesh, topic: string): Promise<number> {
  const r = await api(m.nodes[0].url, 'POST', '/topics', { name: topic, replication: 3 })
  if (r.status !== 201) throw new Error(`create ${topic}: ${r.status} ${JSON.stringify(r.json)}`)
  return await leaderIndex(m, topic)
}

async function leaderIndex (m: Mesh, topic: string, not?: string): Promise<number> {
  const leader = await until(`a leader for ${topic}/0`, async () => {
    const views = await Promise.all(m.nodes.map(async n => (await api(n.url, 'GET', '/cluster')).json.partitions.find((p: { topic: string }) => p.topic === topic)?.leader as string | null | undefined))
    const first = views[0]
    return typeof first === 'string' && first !== not && views.every(v => v === first) && m.ids.includes(first) ? first : undefined
  })
  return m.ids.indexOf(leader)
}

export async function meshSuite (report: Report, scale: number): Promise<void> {
  const count = Math.round(100_000 * scale)
  const seconds = scale < 1 ? 3 : 10
  const m = await startMesh()
  try {
    // Throughput: a pipelined WebSocket publisher, first on the leader, then on a follower (each publish forwarded).
    const L = await replicatedTopic(m, 'mthru')
    const direct = await pipelinedPublish(m.nodes[L].url, 'mthru', count, PAYLOAD, 1024, 60_000)
    report('mesh', 'acked publishes, rf 3, to the leader', direct.rate, 'msg/s', { messages: direct.acked })
    const forwarded = await pipelinedPublish(m.nodes[(L + 1) % 3].url, 'mthru', count, PAYLOAD, 1024, 60_000)
    report('mesh', 'acked publishes, rf 3, via a follower', forwarded.rate, 'msg/s', { messages: forwarded.acked, ratio_vs_leader: forwarded.rate / direct.rate })

    // Latency at 5k msg/s: publisher and subscriber on the leader; then publisher and subscriber on the two followers.
    const LL = await replicatedTopic(m, 'mlat')
    const onLeader = await steadyLatency(m.nodes[LL].url, m.nodes[LL].url, 'mlat', 5000, seconds, PAYLOAD)
    report('mesh', 'publish->delivery p50 @5k msg/s, all on the leader', onLeader.p50, 'ms', { received: onLeader.received })
    report('mesh', 'publish->delivery p99 @5k msg/s, all on the leader', onLeader.p99, 'ms')
    const LF = await replicatedTopic(m, 'mlat2')
    const viaFollowers = await steadyLatency(m.nodes[(LF + 1) % 3].url, m.nodes[(LF + 2) % 3].url, 'mlat2', 5000, seconds, PAYLOAD)
    report('mesh', 'publish->delivery p50 @5k msg/s, publish and subscribe on followers', viaFollowers.p50, 'ms', { received: viaFollowers.received })
    report('mesh', 'publish->delivery p99 @5k msg/s, publish and subscribe on followers', viaFollowers.p99, 'ms')

    // Failover: publish one at a time through a follower, SIGKILL the leader, time the first ack of a publish sent after it.
    const times: number[] = []
    for (let rep = 0; rep < 3; rep++) {
      const topic = `mfail${rep}`
      const leader = await replicatedTopic(m, topic)
      const entry = (leader + 1) % 3
      const ws = await connect(m.nodes[entry].url)
      let seq = 0
      let killedAt = 0
      const firstAck = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no ack within 30 s of the kill')), 30_000 + 5_000)
        const send = (): void => { ws.send(`{"type":"publish","topic":"${topic}","request_id":"${seq}|${performance.now()}","message":{"payload":"x"}}`); seq++ }
        ws.on('message', raw => {
          const s = String(raw)
          const id = /"request_id":"(\d+)\|([\d.]+)"/.exec(s)
          if (id === null) return
          if (killedAt > 0 && Number(id[2]) >= killedAt && s.includes('"type":"ack"')) { clearTimeout(timer); resolve(performance.now() - killedAt); return }
          if (seq === 200 && killedAt === 0) { killedAt = performance.now(); void m.nodes[leader].kill() }
          send()
        })
        send()
      })
      ws.close()
      times.push(firstAck)
      // The killed node comes back, so the next repetition has three nodes again.
      m.nodes[leader] = await startGem(m.dirs[leader].dir, [...NODE_ARGS, '--join', m.nodes[entry].url])
      m.ids[leader] = (await api(m.nodes[leader].url, 'GET', '/info')).json.node_id
      for (const n of m.nodes) await until('three nodes again', async () => (await api(n.url, 'GET', '/cluster')).json.nodes.length === 3 ? true : undefined)
    }
    times.sort((a, b) => a - b)
    report('mesh', 'failover: leader SIGKILL -> first ack on the new leader (median of 3)', percentile(times, 50), 'ms', { max_ms: times[times.length - 1], runs: times.map(t => Math.round(t)).join('/') })
  } finally {
    await stopMesh(m)
  }
}
