// `gem bench [args...]`: runs the repository's benchmark harness (bench/run.ts) with the same Node and the given arguments.
// The harness itself lives in bench/; this only finds and launches it.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { constants } from 'node:os'
import { GemError } from '@gem-mesh/core'

export const BENCH_SCRIPT = fileURLToPath(new URL('../../../../bench/run.ts', import.meta.url))

export async function benchCommand (args: string[]): Promise<number> {
  if (!existsSync(BENCH_SCRIPT)) {
    throw new GemError('UNAVAILABLE', `benchmark harness not found at ${BENCH_SCRIPT} (it ships with the repository, not the npm package)`)
  }
  const child = spawn(process.execPath, [BENCH_SCRIPT, ...args], { stdio: 'inherit' })
  // Ctrl-C reaches the child through the terminal's process group; a plain kill of this process is passed on.
  const forward = (sig: NodeJS.Signals) => { child.kill(sig) }
  process.on('SIGINT', forward)
  process.on('SIGTERM', forward)
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (code, signal) => {
        resolve(code ?? 128 + (signal !== null ? (constants.signals[signal] ?? 0) : 0))
      })
    })
  } finally {
    process.off('SIGINT', forward)
    process.off('SIGTERM', forward)
  }
}
