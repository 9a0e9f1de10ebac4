// A mesh host in its own process, for the multi-process mesh tests: prints one JSON line when ready, serves
// /gem/1/bulk (counts frames) and /gem/1/echo, and stops when its stdin closes. Modes: receiver, webrtc-pair.
import { startNodeMeshHost } from '../../src/mesh/node-host.ts'
import type { MeshNode } from '@gem-mesh/core/mesh'

const mode = process.argv[2] ?? 'receiver'
const out = (o: unknown): void => { process.stdout.write(JSON.stringify(o) + '\n') }

async function serve (host: MeshNode): Promise<{ count: () => number }> {
  let frames = 0
  await host.handle('/gem/1/bulk', () => { frames++ })
  await host.handle('/gem/1/echo', (_from, f) => f)
  await host.handle('/gem/1/count', () => new TextEncoder().encode(String(frames)))
  return { count: () => frames }
}

if (mode === 'receiver') {
  const host = await startNodeMeshHost({ webrtcDirectPort: false })
  await serve(host)
  out({ peerId: host.peerId, multiaddrs: host.multiaddrs() })
  process.stdin.resume()
  process.stdin.on('end', () => { host.stop().finally(() => process.exit(0)) })
} else {
  // Two hosts in this process talk over webrtc-direct only: node-datachannel may abort the process on stop
  // (upstream, TOOLCHAIN.md), so this runs here and the parent reads the result, not the exit code.
  const server = await startNodeMeshHost({ wsPort: false })
  await serve(server)
  const client = await startNodeMeshHost({ wsPort: false, relayServer: false })
  const rtc = server.multiaddrs().find(a => a.includes('/webrtc-direct/'))
  if (rtc === undefined) throw new Error('no webrtc-direct address')
  await client.dial(rtc, 10_000)
  const echoed = new TextDecoder().decode(await client.request(server.peerId, '/gem/1/echo', new TextEncoder().encode('over webrtc-direct')))
  const N = 20_000
  const started = performance.now()
  for (let i = 0; i < N; i++) void client.send(server.peerId, '/gem/1/bulk', new Uint8Array(32))
  let count = 0
  while (count < N && performance.now() - started < 30_000) {
    count = Number(new TextDecoder().decode(await client.request(server.peerId, '/gem/1/count', new Uint8Array(0))))
  }
  const secs = (performance.now() - started) / 1000
  const conn = client.node.getConnections()[0]
  out({ echoed, count, framesPerSecond: Math.round(count / secs), transport: conn?.remoteAddr.toString() })
  await Promise.allSettled([client.stop(), server.stop()])
  process.exit(0)
}
