// Structured logs for a node: pino, one JSON object per line on stdout, a child logger per component.
// It only formats and writes log lines; it never decides what is worth logging.
import { pino } from 'pino'
import type { Logger as PinoLogger, DestinationStream } from 'pino'

export type Logger = PinoLogger
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'

export interface LoggerOptions {
  level?: LogLevel
  /** Where lines go. Default: stdout, written synchronously so the last lines survive process.exit(). */
  destination?: DestinationStream
  /** Fields on every line (e.g. nodeId). */
  base?: Record<string, unknown>
}

export function createLogger (opts: LoggerOptions = {}): Logger {
  return pino({
    level: opts.level ?? 'info',
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names, not numbers: the log is read by people and by jq alike.
    formatters: { level: label => ({ level: label }) },
    serializers: { err: pino.stdSerializers.err },
  }, opts.destination ?? pino.destination({ dest: 1, sync: true }))
}

/** A child logger for one component (`gateway`, `broker`, `storage`, ...). */
export function componentLogger (parent: Logger, component: string): Logger {
  return parent.child({ component })
}

/** A logger that drops everything: for tests and embedders that bring their own. */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
