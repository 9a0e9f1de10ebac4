// `npm run bench -- mesh`: three node processes on loopback, replication 3. Acknowledged publishes/s (to the leader
// and forwarded through a follower), publish->delivery latency at 5k msg/s, and leader-kill-to-first-ack failover time.
import { api } from '../test/support/gem-process.ts'
import { agreedLeader, withMeshProcesses } from '../test/support/mesh.ts'
import type { MeshProcesses } from '../test/support/mesh.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'
import { steadyLatency } from './lib/latency.ts'
import { connect, percentile, pipelinedPublish } from './lib/ws-client.ts'

type Report = (suite: string, name: string, value: number, unit: string, extra?: Record<string, unknown>) => void

const PAYLOAD = 256

/** Creates a replicated topic and returns the index of its partition-0 leader once every node agrees on it. */
async function replicatedTopic (m: MeshProcesses, topic: string): Promise<number> {
  const r = await api(m.nodes[0].url, 'POST', '/topics', { name: topic, replication: 3 })
  if (r.status !== 201) throw new Error(`create ${topic}: ${r.status} ${JSON.stringify(r.json)}`)
  return m.ids.indexOf(await agreedLeader(m.nodes, topic))
}

export async function meshSuite (report: Report, scale: number): Promise<void> {
  const count = Math.round(100_000 * scale)
  const seconds = scale < 1 ? 3 : 10
  await withMeshProcesses(3, async m => {
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
      await m.restart(leader)
      for (const n of m.nodes) await waitFor(async () => (await api(n.url, 'GET', '/cluster')).json.nodes.filter((x: { state: string }) => x.state === 'alive').length === 3, 'three alive nodes again', 30_000)
    }
    times.sort((a, b) => a - b)
    report('mesh', 'failover: leader SIGKILL -> first ack on the new leader (median of 3)', percentile(times, 50), 'ms', { max_ms: times[times.length - 1], runs: times.map(t => Math.round(t)).join('/') })
  })
}
