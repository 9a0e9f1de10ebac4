#!/usr/bin/env node
// The `gem` executable: a plain-JS shim that runs the TypeScript CLI (src/cli/main.ts) on a Node that strips types.
// On an older Node it re-runs itself with the workspace's Node 24 (node_modules/.bin/node) when one is installed.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const [major, minor] = process.versions.node.split('.').map(Number)
const stripsTypes = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)

if (stripsTypes) {
  // Caches compiled (and type-stripped) modules on disk: halves the start-up time of every later `gem` command.
  const { enableCompileCache } = await import('node:module')
  enableCompileCache?.()
  const { main } = await import('../src/cli/main.ts')
  await main()
} else {
  let dir = dirname(fileURLToPath(import.meta.url))
  let node
  for (;;) {
    const candidate = join(dir, 'node_modules', '.bin', 'node')
    if (existsSync(candidate)) { node = candidate; break }
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  // GEM_NODE_REEXEC guards against a loop when the Node found there is old too.
  if (node === undefined || process.env.GEM_NODE_REEXEC === '1') {
    process.stderr.write(`error UNAVAILABLE: gem needs Node >= 22.18 (type stripping); this is Node ${process.versions.node}\n`)
    process.exit(1)
  }
  const r = spawnSync(node, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, GEM_NODE_REEXEC: '1' },
  })
  process.exit(r.status ?? 1)
}
