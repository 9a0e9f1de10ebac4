// Real node processes forming a mesh over libp2p on loopback: `gem start --join <http url | multiaddr>`,
// /info and node.json advertising the peer id and addresses, /cluster listing the connected nodes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { api, startGem, tempDataDir } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'
import { waitFor } from '../packages/core/test/wait-for.ts'

async function clusterIds (url: string): Promise<string[]> {
  const r = await api(url, 'GET', '/cluster')
  return (r.json.nodes as Array<{ id: string }>).map(n => n.id).sort()
}

test('three nodes joined by http url and by multiaddr see each other in /cluster, and keep their peer ids across a restart', async () => {
  const dirs = [tempDataDir('gem-mesh-'), tempDataDir('gem-mesh-'), tempDataDir('gem-mesh-')]
  const nodes: GemProcess[] = []
  try {
    nodes.push(await startGem(dirs[0].dir))
    const first = (await api(nodes[0].url, 'GET', '/info')).json
    assert.match(first.peer_id, /^12D3Koo/)
    assert.ok(first.multiaddrs.some((a: string) => a.includes('/tcp/') && a.startsWith('/ip4/127.0.0.1/')))
    const file = JSON.parse(readFileSync(join(dirs[0].dir, 'node.json'), 'utf8'))
    assert.equal(file.peerId, first.peer_id)
    assert.deepEqual(file.multiaddrs, first.multiaddrs)

    nodes.push(await startGem(dirs[1].dir, ['--join', nodes[0].url]))
    const tcpAddr = first.multiaddrs.find((a: string) => a.includes('/tcp/') && !a.includes('/ws'))
    nodes.push(await startGem(dirs[2].dir, ['--join', tcpAddr]))
    const ids = await Promise.all(nodes.map(async n => (await api(n.url, 'GET', '/info')).json.node_id as string))
    for (const n of nodes) {
      await waitFor(async () => JSON.stringify(await clusterIds(n.url)) === JSON.stringify([...ids].sort()), `every node in ${n.url}/cluster`, 20_000)
    }
    const view = (await api(nodes[0].url, 'GET', '/cluster')).json.nodes as Array<{ id: string, http_url: string, state: string }>
    for (const [i, n] of nodes.entries()) assert.equal(view.find(v => v.id === ids[i])?.http_url, n.url)

    const peerBefore = (await api(nodes[1].url, 'GET', '/info')).json.peer_id
    assert.equal(await nodes[1].stop(), 0)
    await waitFor(async () => (await clusterIds(nodes[0].url)).length === 2, 'the stopped node leaves /cluster', 20_000)
    nodes[1] = await startGem(dirs[1].dir, ['--join', nodes[0].url])
    assert.equal((await api(nodes[1].url, 'GET', '/info')).json.peer_id, peerBefore)
    await waitFor(async () => (await clusterIds(nodes[0].url)).length === 3, 'the restarted node is back', 20_000)
  } finally {
    for (const n of nodes) await n.kill()
    for (const d of dirs) d.remove()
  }
})

test('--join with a target that is not a node fails the start with a clear error', async () => {
  const dir = tempDataDir('gem-mesh-')
  try {
    await assert.rejects(startGem(dir.dir, ['--join', 'http://127.0.0.1:9/']), /PEER_UNREACHABLE|cannot read/)
    await assert.rejects(startGem(dir.dir, ['--join', 'not-an-address']), /BAD_REQUEST|expected a multiaddr/)
  } finally {
    dir.remove()
  }
})
