// Test harness for meshes of real node processes: start N joined nodes, read a partition's view from /cluster.
// Every node is a `gem start` child (see gem-process.ts); callers stop them in `finally`.
import { api, startGem, tempDataDir } from './gem-process.ts'
import type { GemProcess } from './gem-process.ts'
import { waitFor } from '../../packages/core/test/wait-for.ts'

export interface PartitionView {
  topic: string
  partition: number
  leader: string | null
  replicas: string[]
  epoch: number
  role?: string
  offsets?: { low: number, high: number, commit?: number, end?: number, replica_start?: number }
}

export async function partitionOn (url: string, topic: string, partition = 0): Promise<PartitionView | undefined> {
  const r = await api(url, 'GET', '/cluster')
  return (r.json.partitions as PartitionView[]).find(p => p.topic === topic && p.partition === partition)
}

/** Starts joined nodes on `dirs` (the first is the contact) and waits until each lists all of them as alive. */
export async function startMesh (dirs: string[], extra: string[] = []): Promise<GemProcess[]> {
  const nodes: GemProcess[] = []
  try {
    nodes.push(await startGem(dirs[0], ['--webrtc-direct', 'false', ...extra]))
    for (const d of dirs.slice(1)) nodes.push(await startGem(d, ['--webrtc-direct', 'false', '--join', nodes[0].url, ...extra]))
    for (const n of nodes) {
      await waitFor(async () => (await api(n.url, 'GET', '/cluster')).json.nodes.filter((x: { state: string }) => x.state === 'alive').length === dirs.length, `${dirs.length} alive nodes in ${n.url}/cluster`, 30_000)
    }
    return nodes
  } catch (err) {
    for (const n of nodes) await n.kill()
    throw err
  }
}

/** Waits until every node agrees on one leader of `topic/partition` and returns its node id. */
export async function agreedLeader (nodes: GemProcess[], topic: string, partition = 0, not?: string): Promise<string> {
  return await waitFor(async () => {
    const views = await Promise.all(nodes.map(n => partitionOn(n.url, topic, partition)))
    const leaders = new Set(views.map(v => v?.leader))
    const leader = views[0]?.leader
    return views.every(v => v !== undefined && v.replicas.length === nodes.length) && leaders.size === 1 && typeof leader === 'string' && leader !== not ? leader : undefined
  }, `one leader for ${topic}/${partition} seen by every node`, 30_000)
}

export interface MeshProcesses {
  /** Live handles; `restart` replaces an entry. */
  nodes: GemProcess[]
  /** Node ids, index for index with `nodes` (a restart gets a new one: the harness clears node.json). */
  ids: string[]
  dirs: string[]
  /** Starts node `i` again on its data directory, joined to another node, and refreshes `nodes[i]` and `ids[i]`. */
  restart(i: number): Promise<GemProcess>
}

/** Runs `fn` with `count` joined node processes; every process is killed and every directory removed, even on failure. */
export async function withMeshProcesses (count: number, fn: (m: MeshProcesses) => Promise<void>, extra: string[] = []): Promise<void> {
  const temp = Array.from({ length: count }, () => tempDataDir('gem-mesh-'))
  const dirs = temp.map(d => d.dir)
  const nodes: GemProcess[] = []
  try {
    nodes.push(...await startMesh(dirs, extra))
    const ids = await Promise.all(nodes.map(async n => (await api(n.url, 'GET', '/info')).json.node_id as string))
    const restart = async (i: number): Promise<GemProcess> => {
      nodes[i] = await startGem(dirs[i], ['--webrtc-direct', 'false', '--join', nodes[(i + 1) % count].url, ...extra])
      ids[i] = (await api(nodes[i].url, 'GET', '/info')).json.node_id
      return nodes[i]
    }
    await fn({ nodes, ids, dirs, restart })
  } finally {
    for (const n of nodes) await n.kill()
    for (const d of temp) d.remove()
  }
}
