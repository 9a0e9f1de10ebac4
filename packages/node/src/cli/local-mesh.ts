// `gem local-mesh` (what `npm start` runs): N nodes of one mesh on this machine, each a `gem start` child process
// with its own data directory, joined to the first; prints every gateway URL and stops them all on SIGINT/SIGTERM.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { GemError } from '@gem-mesh/core'
import { startEmbeddedS3 } from '../storage/embedded-s3.ts'
import { prepareDashboard } from './dashboard-build.ts'

export interface LocalMeshFlags {
  nodes?: string
  dataDir?: string
  httpPort?: string
  /** Extra flags handed to every `gem start`. */
  passThrough?: string[]
}

const CLI = resolve(import.meta.dirname, 'main.ts')
const START_TIMEOUT_MS = 60_000

export async function localMeshCommand (flags: LocalMeshFlags): Promise<number> {
  const count = Number(flags.nodes ?? 3)
  const basePort = Number(flags.httpPort ?? 8080)
  const root = resolve(flags.dataDir ?? '.gem-data')
  if (!Number.isInteger(count) || count < 1 || count > 16) throw new GemError('BAD_REQUEST', '--nodes must be an integer from 1 to 16')
  if (!Number.isInteger(basePort) || basePort < 0 || basePort > 65535 - count) throw new GemError('BAD_REQUEST', '--http-port must be a port number')
  mkdirSync(root, { recursive: true })
  const dashboard = await prepareDashboard(line => process.stderr.write(line + '\n'))
  // One S3 stand-in for the whole mesh, in this process (so it ends with it), a prefix per node; unless S3 is configured.
  const pass = flags.passThrough ?? []
  const s3Configured = pass.some(a => a === '--s3' || a.startsWith('--s3-') || a.startsWith('--s3=')) ||
    ['GEM_S3', 'GEM_S3_ENDPOINT', 'GEM_S3_BUCKET'].some(k => (process.env[k] ?? '') !== '')
  const s3 = s3Configured ? undefined : await startEmbeddedS3({ dir: join(root, 's3') })
  if (s3 !== undefined) process.stderr.write(`S3 stand-in (fauxqs): ${s3.endpoint}  (data: ${join(root, 's3')})\n`)

  const children: ChildProcess[] = []
  let stopping = false
  const stopAll = (sig: NodeJS.Signals): void => {
    if (stopping) { for (const c of children) c.kill('SIGKILL'); return }
    stopping = true
    process.stderr.write(`stopping ${children.length} node(s)\n`)
    for (const c of children) if (c.exitCode === null) c.kill(sig)
  }
  process.on('SIGINT', () => stopAll('SIGINT'))
  process.on('SIGTERM', () => stopAll('SIGTERM'))
  // If the launcher itself dies, its nodes must not linger.
  process.on('exit', () => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL') })

  const urls: string[] = []
  for (let i = 1; i <= count && !stopping; i++) {
    const dataDir = join(root, `node-${i}`)
    const s3Args = s3 === undefined ? [] : ['--s3-endpoint', s3.endpoint, '--s3-bucket', 'gem', '--s3-prefix', `node-${i}`, '--s3-access-key-id', s3.credentials.accessKeyId, '--s3-secret-access-key', s3.credentials.secretAccessKey]
    const args = [CLI, 'start', '--data-dir', dataDir, '--http-port', String(basePort === 0 ? 0 : basePort + i - 1), ...(urls.length > 0 ? ['--join', urls[0]] : []), ...s3Args, ...pass]
    rmSync(join(dataDir, 'node.json'), { force: true })
    if (!args.includes('--log-level') && process.env.GEM_LOG_LEVEL === undefined) args.push('--log-level', 'warn')
    // Its own process group: Ctrl-C reaches only this launcher, which then stops each node exactly once.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], detached: true })
    children.push(child)
    const url = await waitForNode(dataDir, child)
    urls.push(url)
    process.stderr.write(`node ${i} of ${count}: ${url}  (data: ${dataDir})\n`)
  }
  if (!stopping) {
    process.stderr.write(`GEM local mesh of ${count} node(s) is up. Gateways: ${urls.join('  ')}\n` +
      `Try: curl -s ${urls[0]}/cluster    npx gem status --url ${urls[urls.length - 1]}    Ctrl-C stops every node.\n` +
      (dashboard ? `Dashboard: ${urls[0]}/dashboard/  (served by every node)\n` : ''))
  }
  const codes = await Promise.all(children.map(c => c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise<number | null>(r => c.once('exit', code => r(code)))))
  await s3?.stop()
  return stopping && codes.every(c => c === 0 || c === null) ? 0 : 1
}

/** Resolves with the node's gateway url once its node.json names this child; rejects if it exits first. */
async function waitForNode (dataDir: string, child: ChildProcess): Promise<string> {
  const file = join(dataDir, 'node.json')
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new GemError('UNAVAILABLE', `the node in ${dataDir} exited during start (${child.exitCode ?? child.signalCode})`)
    if (existsSync(file)) {
      try {
        const info = JSON.parse(readFileSync(file, 'utf8')) as { pid?: number, httpUrl?: string }
        if (info.pid === child.pid && typeof info.httpUrl === 'string') return info.httpUrl
      } catch { /* being written: look again */ }
    }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new GemError('TIMEOUT', `the node in ${dataDir} did not start within ${START_TIMEOUT_MS} ms`) }
    await new Promise(r => setTimeout(r, 50))
  }
}
