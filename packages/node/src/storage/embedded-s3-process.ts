// The embedded S3 stand-in in a child process of its own: what `gem start` runs when no S3 is configured, so that
// fauxqs's objects, buffers and event loop are not the node's. It owns that child's lifetime; it never faces a network.
//
// The child (run as `node embedded-s3-process.ts <dir>`) prints {"endpoint"} once listening and exits when its stdin
// closes, which happens however the parent ends (SIGKILL included), or on SIGTERM/SIGINT. It has its own process group:
// a Ctrl-C reaches only the node, which stops it after its own last offload.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { GemError } from '@gem-mesh/core'
import { EMBEDDED_S3_CREDENTIALS, startEmbeddedS3 } from './embedded-s3.ts'
import type { EmbeddedS3 } from './embedded-s3.ts'

const START_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000

export interface EmbeddedS3Process extends EmbeddedS3 {
  pid: number
}

export async function startEmbeddedS3Process (opts: { dir: string }): Promise<EmbeddedS3Process> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), opts.dir], { stdio: ['pipe', 'pipe', 'inherit'], detached: true })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  let endpoint: string
  try {
    endpoint = await new Promise<string>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new GemError('UNAVAILABLE', `the embedded S3 stand-in did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
      child.stdout!.on('data', d => {
        out += String(d)
        const nl = out.indexOf('\n')
        if (nl < 0) return
        clearTimeout(timer)
        try { resolve((JSON.parse(out.slice(0, nl)) as { endpoint: string }).endpoint) } catch { reject(new GemError('UNAVAILABLE', `the embedded S3 stand-in said ${JSON.stringify(out.slice(0, nl))}`)) }
      })
      child.once('error', err => { clearTimeout(timer); reject(new GemError('UNAVAILABLE', `the embedded S3 stand-in did not start: ${err.message}`)) })
      child.once('exit', code => { clearTimeout(timer); reject(new GemError('UNAVAILABLE', `the embedded S3 stand-in exited while starting (${code})`)) })
    })
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  let stopped: Promise<void> | undefined
  return {
    endpoint,
    port: Number(new URL(endpoint).port),
    pid: child.pid!,
    credentials: EMBEDDED_S3_CREDENTIALS,
    stop: () => {
      stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
        try { await exited } finally { clearTimeout(timer) }
      })()
      return stopped
    },
  }
}

async function childMain (dir: string): Promise<void> {
  const s3 = await startEmbeddedS3({ dir })
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    void s3.stop().finally(() => process.exit(0))
  }
  // The parent holds our stdin: when it goes (even killed), so do we.
  process.stdin.on('end', stop)
  process.stdin.on('error', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdout.write(JSON.stringify({ endpoint: s3.endpoint }) + '\n')
}

if (import.meta.main) await childMain(process.argv[2] ?? '.')
