// `gem start`: runs one node (from an already validated configuration) until SIGINT/SIGTERM, then stops it gracefully.
// Owns the process lifecycle (signals, the human "listening" line); the node itself is node.ts.
import { relative, isAbsolute } from 'node:path'
import type { GemConfig } from '../config.ts'
import { createLogger } from '../logger.ts'
import { startNode } from '../node.ts'

/** A stop that takes longer than this is stuck (a hung connection or disk); exit rather than hang forever. */
const STOP_DEADLINE_MS = 20_000

export async function startCommand (config: GemConfig): Promise<number> {
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
