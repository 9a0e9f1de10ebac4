// `gem start`: runs one node (from an already validated configuration) until SIGINT/SIGTERM, then stops it gracefully.
// Owns the process lifecycle (signals, the human "listening" line); the node itself is node.ts.
import { relative, isAbsolute } from 'node:path'
import type { GemConfig } from '../config.ts'
import { createLogger } from '../logger.ts'
import { startNode } from '../node.ts'

/** A stop that takes longer than this is stuck (a hung connection or disk); exit rather than hang forever. */
const STOP_DEADLINE_MS = 20_000

/**
 * V8 flags a node runs with unless `GEM_NODE_V8_FLAGS` says otherwise (an empty value: none).
 * A node keeps its recent traffic alive for seconds (the idempotency window's ids, the encoded in-memory tail),
 * so most of what a young-generation GC finds alive is promoted, and each scavenge pauses for time proportional
 * to what was published since the previous one. V8 grows the young generation to 32 MiB semi-spaces on a busy
 * node (a 2-4 ms pause about twice a second at 5k msg/s on 2 cores); 8 MiB semi-spaces make the pauses about
 * four times as frequent and about 1 ms each, which is what a publish->delivery tail of a few ms can absorb.
 */
export const DEFAULT_NODE_V8_FLAGS = '--max-semi-space-size=8 --min-semi-space-size=8'

/**
 * Replaces this process (same pid, same stdio: process.execve) with one that runs with the node's V8 flags, which
 * only take effect at startup. A flag already given to node (e.g. `node --max-semi-space-size=16 main.ts start`) wins.
 */
function execWithV8Flags (): void {
  // Only when `gem start` is this process's own command line, never for a runCli() call inside another program.
  if (process.argv[2] !== 'start') return
  const wanted = (process.env.GEM_NODE_V8_FLAGS ?? DEFAULT_NODE_V8_FLAGS).split(/\s+/).filter(f => f !== '')
  const missing = wanted.filter(f => !process.execArgv.some(a => a.split('=')[0] === f.split('=')[0]))
  if (missing.length === 0 || typeof process.execve !== 'function') return
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...missing, ...process.argv.slice(1)], process.env)
}

export async function startCommand (config: GemConfig): Promise<number> {
  execWithV8Flags()
  const logger = createLogger({ level: config.logLevel })

  // Handlers go in before the node starts so that a signal during startup still ends in a clean stop.
  let signalled: NodeJS.Signals | undefined
  let onStopRequest: (() => void) | undefined
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled !== undefined) {
      process.stderr.write(`received ${sig} again while stopping; exiting now\n`)
      process.exit(130)
    }
    signalled = sig
    logger.info({ signal: sig }, 'signal received, stopping')
    onStopRequest?.()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const node = await startNode(config, { logger })
  const shown = relative(process.cwd(), node.dataDir)
  const dataDir = shown === '' ? '.' : shown.startsWith('..') || isAbsolute(shown) ? node.dataDir : shown
  process.stderr.write(`GEM node ${node.nodeId} listening on ${node.url} (data: ${dataDir})\n`)

  await new Promise<void>(resolve => {
    onStopRequest = resolve
    if (signalled !== undefined) resolve()
  })
  const deadline = setTimeout(() => {
    logger.error({ deadlineMs: STOP_DEADLINE_MS }, 'graceful stop did not finish in time; exiting')
    process.exit(1)
  }, STOP_DEADLINE_MS)
  deadline.unref()
  try {
    await node.stop()
    return 0
  } catch (err) {
    logger.error({ err }, 'stop failed')
    return 1
  } finally {
    clearTimeout(deadline)
  }
}
